//! vecfusion: vector indexes for Apache DataFusion.
//!
//! ```no_run
//! use vecfusion::{VecfusionContext, new_session_context};
//! # async fn demo() -> datafusion::error::Result<()> {
//! let ctx = new_session_context();
//! ctx.vf_sql("CREATE EXTERNAL TABLE items (id BIGINT, embedding FLOAT[8]) \
//!             STORED AS VECFUSION LOCATION '/tmp/items'").await?;
//! ctx.vf_sql("INSERT INTO items SELECT * FROM random_vectors(1000, 8)").await?.collect().await?;
//! let nearest = ctx
//!     .vf_sql("SELECT id FROM items ORDER BY l2_distance(embedding, [0,0,0,0,0,0,0,0]) LIMIT 3")
//!     .await?
//!     .collect()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/ARCHITECTURE.md` for the map of modules.

pub mod allocator;
pub mod codec;
pub mod dataset;
pub mod embed;
pub mod index;
pub mod index_format;
pub mod kmeans;
pub mod literal_queries;
pub mod metric;
mod plan_properties;
pub mod planner;
pub mod prepared_queries;
pub mod progress;
pub mod provider;
pub mod quantizer;
pub mod search;
pub mod session;
pub mod sql;
pub mod udf;

#[cfg(test)]
mod test_support;

pub use dataset::{Dataset, DatasetLocation};
pub use provider::{VecfusionTable, VecfusionTableFactory};
pub use session::{
    VecfusionContext, new_session_context, new_session_context_with_config, register_functions,
    session_state_builder,
};
