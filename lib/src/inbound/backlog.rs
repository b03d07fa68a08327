//! Bounds the in-process background work so that processing never slows acknowledgements.
//!
//! New messages wait in a bounded queue drained by at most `concurrency` workers. A message
//! that does not fit stays stored (`received`) and is picked up by the retry cron; the ones in
//! the queue are processed while any worker of this instance runs. A message is taken no
//! sooner than `COALESCE_MS` after it was queued, so that the bubbles of a burst, stored
//! meanwhile, are claimed together as one turn. The messages of a turn processed meanwhile
//! are [forgotten](Backlog::forget): no worker claims them again (a claim round trip that
//! would find them processed).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::Pipeline;

/// A bounded queue of stored message ids and the permits of the workers draining it.
pub struct Backlog {
    queue: Mutex<Queue>,
    max_queued: usize,
    workers: Arc<Semaphore>,
}

/// Message ids in arrival order, with when they were queued, and the ids still waiting (an
/// entry whose id is no longer waiting was forgotten: it is skipped, and dropped when
/// reached or when such entries outnumber the waiting ones).
#[derive(Default)]
struct Queue {
    order: VecDeque<(Uuid, Instant)>,
    waiting: HashSet<Uuid>,
}

impl Backlog {
    pub fn new(max_queued: usize, concurrency: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            max_queued,
            workers: Arc::new(Semaphore::new(concurrency)),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a message; `false` when the queue is full (it stays stored for the cron).
    pub fn push(&self, id: Uuid) -> bool {
        let mut queue = self.queue();
        if queue.waiting.len() >= self.max_queued {
            return false;
        }
        if queue.waiting.insert(id) {
            queue.order.push_back((id, Instant::now()));
        }
        true
    }

    /// The next queued message, and when it was queued.
    pub fn pop(&self) -> Option<(Uuid, Instant)> {
        let mut queue = self.queue();
        while let Some((id, queued)) = queue.order.pop_front() {
            if queue.waiting.remove(&id) {
                return Some((id, queued));
            }
        }
        None
    }

    /// Drops queued messages that were processed in a turn meanwhile (every message of a turn
    /// that ended `processed`; those not queued here are ignored).
    pub fn forget(&self, ids: &[Uuid]) {
        let mut queue = self.queue();
        let Queue { order, waiting } = &mut *queue;
        let forgotten = ids.iter().filter(|id| waiting.remove(id)).count();
        if forgotten > 0 && order.len() > 2 * waiting.len() + 64 {
            order.retain(|(id, _)| waiting.contains(id));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue().waiting.is_empty()
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
pub async fn drain(pipeline: &Pipeline, mut permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let (backlog, deadlines) = (&pipeline.backlog, pipeline.deadlines);
    loop {
        while deadlines.fits(started) {
            let Some((message_id, queued)) = backlog.pop() else {
                break;
            };
            let coalesce = pipeline.settings.coalesce;
            tokio::time::sleep_until((queued + coalesce).into()).await;
            pipeline.process(message_id, started).await;
        }
        drop(permit);
        if backlog.is_empty() || !deadlines.fits(started) {
            return;
        }
        match backlog.worker() {
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

    #[test]
    fn forgotten_messages_are_never_taken_and_free_their_place() {
        let backlog = Backlog::new(2, 1);
        let (first, second, third) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(backlog.push(first) && backlog.push(second));
        backlog.forget(&[first, Uuid::new_v4()]);
        assert!(backlog.push(third), "a forgotten message frees its place");
        assert_eq!(backlog.pop().map(|(id, _)| id), Some(second));
        assert_eq!(backlog.pop().map(|(id, _)| id), Some(third));
        assert!(backlog.pop().is_none() && backlog.is_empty());
    }
}
