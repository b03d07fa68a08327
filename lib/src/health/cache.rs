//! The last health report, kept briefly so that a burst of checks costs one.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::HealthReport;

/// The last report and when it was made; one refresh at a time.
pub struct HealthCache {
    ttl: Duration,
    slot: Mutex<Option<(Instant, Arc<HealthReport>)>>,
}

impl HealthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// The cached report while fresh; otherwise `refresh` (concurrent callers wait for the one
    /// refresh instead of starting their own).
    pub async fn get(&self, refresh: impl Future<Output = HealthReport>) -> Arc<HealthReport> {
        let mut slot = self.slot.lock().await;
        if let Some((made, report)) = slot.as_ref() {
            if made.elapsed() < self.ttl {
                return report.clone();
            }
        }
        let report = Arc::new(refresh.await);
        *slot = Some((Instant::now(), report.clone()));
        report
    }
}
