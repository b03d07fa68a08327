//! The WhatsApp Cloud API: webhook deliveries in, Graph API messages out.

pub mod deliver;
pub mod graph;
pub mod payload;
pub mod sample;
pub mod signature;

pub use deliver::{DeliveryError, Template};
pub use graph::{GraphAction, GraphError, Outgoing, Sent, WhatsApp};
pub use payload::{Delivery, InboundMessage, StatusUpdate};
