//! The inbound-message pipeline ([`Pipeline`], built in `startup` from its parts): a verified
//! delivery is stored in one round trip, shared with the deliveries arriving meanwhile
//! ([`GroupCommit`]), each new message is queued in this process ([`Backlog`], drained by
//! [`Pipeline::drain`]) and processed in the background ([`Pipeline::process`]: claim, decide,
//! answer, record, send, finish or fail). The retry cron and the admin replay re-drive a
//! message through the same [`Pipeline::process`]. Each message's processing, wherever it
//! runs, is [`isolated`]: a panic is that message's failure (dead-lettered as "processing
//! panicked").

mod backlog;
mod claim;
mod deadline;
mod decide;
mod ingest;
mod isolate;
mod pipeline;
mod process;

pub use backlog::Backlog;
pub use deadline::Deadlines;
pub use ingest::{GroupCommit, IngestError, Ingested};
pub use isolate::{isolated, Panicked};
pub use pipeline::Pipeline;
