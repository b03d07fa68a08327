//! Bounds the in-process background work so that processing never slows acknowledgements.
//!
//! New messages wait in a bounded queue drained by at most `concurrency` workers. A message
//! that does not fit stays stored (`received`) and is picked up by the retry cron; the ones in
//! the queue are processed while any worker of this instance runs. A message is taken no
//! sooner than `COALESCE_MS` after it was queued, so that the bubbles of a burst, stored
//! meanwhile, are claimed together as one turn.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::startup::AppState;

/// A bounded queue of stored message ids and the permits of the workers draining it.
pub struct Backlog {
    /// Message ids, with when they were queued.
    queue: Mutex<VecDeque<(Uuid, Instant)>>,
    max_queued: usize,
    workers: Arc<Semaphore>,
}

impl Backlog {
    pub fn new(max_queued: usize, concurrency: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            max_queued,
            workers: Arc::new(Semaphore::new(concurrency)),
        }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<(Uuid, Instant)>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a message; `false` when the queue is full (it stays stored for the cron).
    pub fn push(&self, id: Uuid) -> bool {
        let mut queue = self.queue();
        if queue.len() >= self.max_queued {
            return false;
        }
        queue.push_back((id, Instant::now()));
        true
    }

    /// The next queued message, and when it was queued.
    pub fn pop(&self) -> Option<(Uuid, Instant)> {
        self.queue().pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    /// A worker's permit, when fewer than `concurrency` workers run (never waits).
    pub fn worker(&self) -> Option<OwnedSemaphorePermit> {
        self.workers.clone().try_acquire_owned().ok()
    }
}

/// Processes queued messages until the queue is empty, each turn begun only while its worst
/// case still ends within the function's `maxDuration` ([`super::Deadlines`]): what is left
/// waits for the next delivery's worker, or the retry cron. A message queued while this worker
/// was giving up its permit is not stranded: the worker looks again after releasing it.
pub async fn drain(state: Arc<AppState>, mut permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let deadlines = super::Deadlines::new(&state.settings);
    loop {
        while deadlines.fits(started) {
            let Some((message_id, queued)) = state.backlog.pop() else {
                break;
            };
            let coalesce = state.settings.processing.coalesce;
            tokio::time::sleep_until((queued + coalesce).into()).await;
            super::process(&state, message_id, started).await;
        }
        drop(permit);
        if state.backlog.is_empty() || !deadlines.fits(started) {
            return;
        }
        match state.backlog.worker() {
            Some(next) => permit = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_and_the_workers_are_bounded() {
        let backlog = Backlog::new(2, 1);
        assert!(backlog.push(Uuid::new_v4()));
        assert!(backlog.push(Uuid::new_v4()));
        assert!(
            !backlog.push(Uuid::new_v4()),
            "a full queue turns messages away"
        );
        let worker = backlog.worker();
        assert!(worker.is_some());
        assert!(backlog.worker().is_none(), "one worker at most");
        drop(worker);
        assert!(backlog.worker().is_some());
        assert!(backlog.pop().is_some() && backlog.pop().is_some() && backlog.is_empty());
    }
}
