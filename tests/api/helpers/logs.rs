//! The log lines of this test binary, captured by the library's own subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use super::lib::log_subscriber;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary: one process-wide subscriber (per-thread subscribers
/// race with tracing's callsite cache when tests run in parallel).
pub fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = log_subscriber("debug", move || writer.clone());
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        capture
    })
}

/// The logged lines that contain `marker`.
pub fn lines_with(marker: &str) -> Vec<String> {
    let text = String::from_utf8(logs().0.lock().unwrap().clone()).unwrap();
    text.lines()
        .filter(|l| l.contains(marker))
        .map(str::to_owned)
        .collect()
}

/// The lines containing `marker` that `emit` logs.
pub fn captured(marker: &str, emit: impl FnOnce()) -> String {
    logs();
    emit();
    lines_with(marker).join("\n")
}
