//! The inbound-message pipeline: a verified delivery is stored in one round trip
//! ([`ingest`]), each new message is queued in this process ([`Backlog`], drained by
//! [`drain`]) and processed in the background ([`process`]: claim, decide, answer, record,
//! send, finish or fail). The retry cron and the admin replay re-drive a message through the
//! same [`process`].

mod backlog;
mod claim;
mod decide;
mod ingest;
mod process;

pub use backlog::{drain, Backlog};
pub use ingest::{ingest, Ingested};
pub use process::process;
