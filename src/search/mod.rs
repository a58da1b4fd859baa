//! Vector search: the one search API ([`SearchRequest`] → [`PreparedSearch`]), the session
//! settings, opened indexes, the top-k search with its exactness rules, the prefilter, the
//! `AnnSearchExec` plan, and the optimizer rule that routes `ORDER BY distance LIMIT k` to it.
//!
//! Files, top (surfaces) to bottom:
//! - [`rule`] (`AnnRewrite`) → [`node`] (`AnnSearch`, its physical planning) → [`exec`]
//!   (`AnnSearchExec`) → [`request`] (the API every surface calls) → [`prefilter`] and
//!   [`searcher`] (the top-k over one version) → [`version_vectors`] (what searches of one
//!   version read, gathered once) → [`loaded`] (an index opened for search);
//! - [`settings`] and [`query_vector`] are read by all of them.

pub mod exec;
pub mod loaded;
pub mod node;
pub mod prefilter;
pub mod query_vector;
pub mod request;
pub mod rule;
pub mod searcher;
pub mod settings;
pub mod version_vectors;

pub use exec::AnnSearchExec;
pub use node::AnnSearchNode;
pub use prefilter::AllowedRows;
pub use request::{
    DISTANCE_COLUMN, PreparedSearch, QUERY_INDEX_COLUMN, SearchOutput, SearchRequest,
};
pub use rule::AnnRewrite;
pub use searcher::{SearchOutcome, SearchStats};
pub use settings::{SearchParams, SearchSettings};
