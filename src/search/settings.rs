//! vecfusion's session settings for vector search — `SET vecfusion.nprobes = 20`,
//! `vecfusion.refine_factor`, `vecfusion.use_index` — and the parameters a search runs with.

use datafusion::catalog::Session;
use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

extensions_options! {
    /// Settings of vector search, under the `vecfusion.` prefix.
    pub struct SearchSettings {
        /// IVF partitions probed per query (more: better recall, slower). Probing widens
        /// automatically when a filter leaves fewer than k matching rows in the probed ones.
        pub nprobes: usize, default = 20
        /// Candidates kept per requested row and re-ranked by exact distance (1: the k best
        /// approximate candidates are returned, exactly ordered).
        pub refine_factor: usize, default = 1
        /// Whether `ORDER BY <distance> LIMIT k` and `vector_search` may use a vector index
        /// (false: always the exact plan, the ground truth).
        pub use_index: bool, default = true
    }
}

impl ConfigExtension for SearchSettings {
    const PREFIX: &'static str = "vecfusion";
}

impl SearchSettings {
    /// The settings of `session` (the defaults when vecfusion's are not installed).
    pub fn of(session: &dyn Session) -> Self {
        session
            .config_options()
            .extensions
            .get::<SearchSettings>()
            .cloned()
            .unwrap_or_default()
    }
}

/// How one top-k search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    pub k: usize,
    /// Partitions probed at least (more while fewer than k allowed rows were found).
    pub nprobes: usize,
    /// Approximate candidates kept per result row for exact re-ranking.
    pub refine_factor: usize,
}
