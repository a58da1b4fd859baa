//! Building vector indexes: options, the build pipeline, its plan node and exec, and the
//! index statements (`CREATE`/`DROP VECTOR INDEX`, `SHOW VECTOR INDEXES`). The files it
//! writes are described in `crate::index_format`.

pub mod exec;
pub mod inverted_lists;
pub mod node;
pub mod options;
pub mod pipeline;
pub mod progress;
pub mod statements;

pub use options::IndexOptions;
pub use progress::{ProgressEvent, ProgressHook};
