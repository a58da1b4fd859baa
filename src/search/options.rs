//! vecfusion's session settings: `SET vecfusion.nprobes = 20`, `vecfusion.refine_factor`,
//! `vecfusion.use_index`.

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

extensions_options! {
    /// Settings of vector search, under the `vecfusion.` prefix.
    pub struct VecfusionOptions {
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

impl ConfigExtension for VecfusionOptions {
    const PREFIX: &'static str = "vecfusion";
}
