//! Storing verified deliveries: one database round trip stores every message and status of a
//! delivery (`whatsapp_ingest`: dedupe on wamid, opens the 24 h window, routes by
//! phone_number_id to the org), and concurrent deliveries of this process share it.
//!
//! Group commit ([`GroupCommit`]): a delivery arriving while no batch is being stored is stored
//! at once (no added wait when idle); those arriving meanwhile queue up and are stored together,
//! in one `whatsapp_ingest_batch` transaction, as soon as the running one ends, by one of their
//! own requests. Each delivery gets its own result only once its batch has committed; a batch
//! that fails fails every delivery in it (each is answered 503 and redelivered by Meta).

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::Delivery;

/// What the delivery added.
#[derive(Clone, Debug, Deserialize)]
pub struct Ingested {
    /// Messages stored for the first time: to be processed.
    pub new_message_ids: Vec<Uuid>,
    pub statuses_applied: u64,
    /// Items for a business number no org has (ignored).
    pub unknown_numbers: u64,
}

/// Why a delivery was not stored (nothing of its batch was: answer 503, Meta redelivers).
#[derive(Clone, Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the delivery's batch was not stored: {0}")]
    Store(Arc<DbError>),
    #[error("the request storing the delivery's batch was cancelled")]
    Abandoned,
}

type Answer = oneshot::Sender<Result<Ingested, IngestError>>;

/// The deliveries of this process waiting to be stored, and whether a batch is being stored.
pub struct GroupCommit {
    /// At most this many deliveries per transaction (`WEBHOOK_MAX_BATCH`), oldest first.
    max_batch: usize,
    queue: Mutex<Queue>,
    /// Signalled whenever a batch ends: a waiting request may then store the next one.
    ended: Notify,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(Value, Answer)>,
    storing: bool,
}

impl GroupCommit {
    pub fn new(max_batch: usize) -> Self {
        Self {
            max_batch: max_batch.max(1),
            queue: Mutex::default(),
            ended: Notify::new(),
        }
    }

    /// Stores `delivery`, received at `received_at` (its acknowledgement latency is recorded
    /// from then), with whatever other deliveries are waiting; returns once its own batch has
    /// committed.
    pub async fn ingest(
        &self,
        db: &Postgrest,
        delivery: &Delivery,
        received_at: DateTime<Utc>,
    ) -> Result<Ingested, IngestError> {
        let (answer, mut result) = oneshot::channel();
        let item = json!({
            "id": delivery.id, "messages": delivery.messages, "statuses": delivery.statuses,
            "account_events": delivery.account_events, "received_at": received_at,
        });
        self.lock().waiting.push((item, answer));
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if let Ok(outcome) = result.try_recv() {
                return outcome;
            }
            if let Some(batch) = self.next_batch() {
                let _storing = Storing(self);
                store(db, batch).await;
                continue;
            }
            tokio::select! {
                outcome = &mut result => return outcome.unwrap_or(Err(IngestError::Abandoned)),
                () = &mut ended => {}
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The waiting deliveries, when none is being stored (the caller then stores them).
    fn next_batch(&self) -> Option<Vec<(Value, Answer)>> {
        let mut queue = self.lock();
        if queue.storing || queue.waiting.is_empty() {
            return None;
        }
        queue.storing = true;
        let n = queue.waiting.len().min(self.max_batch);
        Some(queue.waiting.drain(..n).collect())
    }
}

/// Marks the end of a batch, also when the request storing it is cancelled.
struct Storing<'a>(&'a GroupCommit);

impl Drop for Storing<'_> {
    fn drop(&mut self) {
        self.0.lock().storing = false;
        self.0.ended.notify_waiters();
    }
}

/// Stores one batch in one transaction and answers each of its deliveries.
async fn store(db: &Postgrest, batch: Vec<(Value, Answer)>) {
    let (items, answers): (Vec<Value>, Vec<Answer>) = batch.into_iter().unzip();
    let stored = db
        .rpc("whatsapp_ingest_batch", Caller::Service)
        .args(&json!({"p_deliveries": items}))
        .fetch::<Vec<Ingested>>()
        .await
        .map(|answer| answer.data)
        .and_then(|results| {
            (results.len() == answers.len())
                .then_some(results)
                .ok_or_else(|| DbError::Decode("one result per delivery expected".into()))
        });
    match stored {
        Ok(results) => {
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(Ok(result));
            }
        }
        Err(error) => {
            let error = IngestError::Store(Arc::new(error));
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}
