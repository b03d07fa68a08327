//! The pipeline's parts, built once in `startup` from what it uses: the database and WhatsApp
//! clients, the assistant, this process's backlog, and the processing settings.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::{Backlog, Deadlines};
use crate::assistant::Assistant;
use crate::configuration::ProcessingSettings;
use crate::supabase::Postgrest;
use crate::whatsapp::WhatsApp;

/// What processing a message takes.
pub struct Pipeline {
    /// `None` without a database configured: nothing is processed.
    pub(super) db: Option<Postgrest>,
    pub(super) whatsapp: WhatsApp,
    pub(super) assistant: Arc<Assistant>,
    pub(super) backlog: Arc<Backlog>,
    pub(super) settings: ProcessingSettings,
    pub(super) deadlines: Deadlines,
}

impl Pipeline {
    pub fn new(
        db: Option<Postgrest>,
        whatsapp: WhatsApp,
        assistant: Arc<Assistant>,
        backlog: Arc<Backlog>,
        settings: ProcessingSettings,
        deadlines: Deadlines,
    ) -> Self {
        Self {
            db,
            whatsapp,
            assistant,
            backlog,
            settings,
            deadlines,
        }
    }

    /// Processes `message_id`'s conversation, turn after turn, while they fit the invocation
    /// begun at `started` (`inbound/process.rs`).
    pub async fn process(&self, message_id: Uuid, started: Instant) {
        super::process::process(self, message_id, started).await;
    }

    /// Drains this process's backlog with a worker's `permit` (`inbound/backlog.rs`).
    pub async fn drain(self: Arc<Self>, permit: OwnedSemaphorePermit) {
        super::backlog::drain(&self, permit).await;
    }
}
