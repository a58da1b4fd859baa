//! Stopping work on a blocking thread from outside. Training (and a batch of searches) runs
//! on a blocking thread, which keeps going when the statement that started it is cancelled
//! (its future dropped, e.g. Ctrl-C in the shell) — and a runtime waits for its blocking
//! threads before it shuts down. The statement holds a [`CancelOnDrop`] while it awaits the
//! work; the Lloyd loop checks the [`Cancel`] token before every iteration (a batch search
//! before every query) and stops with an error once the guard is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A token a Lloyd loop checks between iterations; the default is never cancelled.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<Arc<AtomicBool>>);

/// Cancels its token when dropped.
#[derive(Debug)]
pub struct CancelOnDrop(Arc<AtomicBool>);

impl Cancel {
    /// A token and the guard whose drop cancels it.
    pub fn on_drop() -> (Self, CancelOnDrop) {
        let flag = Arc::new(AtomicBool::new(false));
        (Self(Some(flag.clone())), CancelOnDrop(flag))
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
