//! The WhatsApp Cloud API: webhook deliveries in, Graph API messages out.

pub mod account;
pub mod graph;
pub mod outbound;
pub mod payload;
pub mod pricing;
pub mod rich;
#[cfg(any(test, feature = "dev-tools"))]
pub mod sample;
pub mod signature;

pub use graph::{GraphAction, GraphError, Outgoing, Sent, WhatsApp};
pub use outbound::{Delivered, DeliveryError, Recipient, SendStatus, Template};
pub use payload::{Delivery, InboundMessage, StatusUpdate};
pub use rich::{Choice, Rich, RichError, Row};
