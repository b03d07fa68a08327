//! One item's work run so that a panic inside it becomes that item's failure, not the end of
//! the batch, the worker or the cron run carrying it: [`isolated`] wraps the one item's future
//! (an inbound message's processing, a reminder's send, a dead letter entry's re-drive) in
//! `catch_unwind`. The release profile keeps `panic = "unwind"` for this (Cargo.toml).
//!
//! A panic's message may quote what the item held (a message's text): it is never logged nor
//! stored. The callers record a fixed reason ("processing panicked"); the panic hook logs the
//! location of a panic inside an isolated item only.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use futures_util::FutureExt;

/// The item's work panicked (its message is not kept: see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("panicked")]
pub struct Panicked;

/// Runs `work` (one item's future); a panic inside it is caught and answered as [`Panicked`].
pub async fn isolated<F: Future>(work: F) -> Result<F::Output, Panicked> {
    install_hook();
    AssertUnwindSafe(Marked(Box::pin(work)))
        .catch_unwind()
        .await
        .map_err(|_| Panicked)
}

thread_local! {
    /// Whether this thread is polling an isolated item's future right now.
    static IN_ITEM: Cell<bool> = const { Cell::new(false) };
}

/// Marks the thread as inside an item while the inner future is polled (a panic then happens
/// on this thread, before unwinding out of `poll`).
struct Marked<F>(Pin<Box<F>>);

impl<F: Future> Future for Marked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = IN_ITEM.with(|flag| flag.replace(true));
        // Restored on the way out, also when the poll unwinds.
        let _restore = Restore(outer);
        self.0.as_mut().poll(cx)
    }
}

struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        IN_ITEM.with(|flag| flag.set(self.0));
    }
}

/// Once per process: a panic inside an isolated item is logged with its location only (no
/// message, which may quote the item's data); any other panic goes to the previous hook.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_ITEM.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_else(|| "unknown".into());
                tracing::error!(%location, "an item's work panicked; recorded as its failure");
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_future_is_that_items_failure_and_the_next_item_runs() {
        let secret = String::from("a message text that must not be logged");
        let panicking = isolated(async move {
            tokio::task::yield_now().await;
            if !secret.is_empty() {
                panic!("boom: {secret}");
            }
            1
        })
        .await;
        assert_eq!(panicking, Err(Panicked));
        assert!(
            !IN_ITEM.with(Cell::get),
            "the mark is cleared after the unwind"
        );

        let fine = isolated(async { 2 }).await;
        assert_eq!(fine, Ok(2), "the next item is not affected");
        assert_eq!(Panicked.to_string(), "panicked");
    }

    #[tokio::test]
    async fn nested_items_restore_the_outer_mark() {
        let outer = isolated(async {
            let inner = isolated(async { panic!("inner") }).await;
            (inner, IN_ITEM.with(Cell::get))
        })
        .await;
        assert_eq!(outer, Ok((Err(Panicked), true)));
        assert!(!IN_ITEM.with(Cell::get));
    }
}
