//! Progress of long work (index builds, ADD COLUMN, INSERT), reported to whoever installed a
//! hook in the session: the shell draws a progress bar, Python a tqdm bar.

use std::fmt;
use std::sync::Arc;

/// One progress report: `done` of `total` units of `phase` (rows, or iterations).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressEvent {
    /// `sample`, `train_ivf`, `train_quantizer`, `encode`, `merge`, `write`, `commit` (the
    /// phases `EXPLAIN ANALYZE` times as `time_<phase>`).
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
    /// What `done` counts (`rows`, `iterations`, `partitions`).
    pub unit: &'static str,
}

/// A session-config extension carrying the progress callback
/// (`SessionConfig::with_extension(Arc::new(ProgressHook::new(...)))`).
#[derive(Clone)]
pub struct ProgressHook(Arc<dyn Fn(&ProgressEvent) + Send + Sync>);

impl ProgressHook {
    pub fn new(f: impl Fn(&ProgressEvent) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn report(&self, event: &ProgressEvent) {
        (self.0)(event)
    }
}

/// Reports `done` of `total` `unit`s of `phase` to `hook`, if there is one.
pub fn report(
    hook: Option<&ProgressHook>,
    phase: &'static str,
    done: u64,
    total: u64,
    unit: &'static str,
) {
    if let Some(h) = hook {
        h.report(&ProgressEvent {
            phase,
            done,
            total,
            unit,
        });
    }
}

impl fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressHook")
    }
}
