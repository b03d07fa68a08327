//! Bounds the in-process background work so that processing never slows acknowledgements:
//! a message that does not fit stays stored (`received`) for a later run or the retry cron.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `max_backlog` messages wait in this process, `concurrency` of them in progress.
pub struct Backlog {
    waiting: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

impl Backlog {
    pub fn new(max_backlog: usize, concurrency: usize) -> Self {
        Self {
            waiting: Arc::new(Semaphore::new(max_backlog)),
            running: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// A place in the backlog, or `None` when it is full (never waits).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.waiting.clone().try_acquire_owned().ok()
    }

    /// Waits for a processing slot.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.running.clone().acquire_owned().await.ok()
    }
}
