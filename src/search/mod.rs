//! Vector search: session settings, opened indexes, the top-k search with its exactness
//! rules, the `AnnSearchExec` plan, and the optimizer rule that routes
//! `ORDER BY distance LIMIT k` to it.

pub mod engine;
pub mod exec;
pub mod loaded;
pub mod options;
pub mod plan;
pub mod rule;

pub use engine::{AllowedRows, SearchOutcome, SearchParams, search};
pub use exec::{AnnQuery, AnnSearchExec, DISTANCE_COLUMN};
pub use options::VecfusionOptions;
pub use rule::{AnnRewrite, AnnSearchNode};
