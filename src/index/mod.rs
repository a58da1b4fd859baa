//! Vector indexes: options, the build pipeline, the on-disk format, and planning of the
//! index statements (`CREATE`/`DROP VECTOR INDEX`, `SHOW VECTOR INDEXES`).

pub mod build;
pub mod exec;
pub mod format;
pub mod options;
pub mod partitions;
pub mod plan;
pub mod progress;
pub mod statements;

pub use options::{IndexKind, IndexOptions};
pub use progress::{ProgressEvent, ProgressHook};
