//! Building and maintaining vector indexes: options, the building blocks (sample, train,
//! encode, merge, commit), `CREATE VECTOR INDEX` (a plan of stages, one exec per block) and
//! `OPTIMIZE VECTOR INDEX` made of them, their plan nodes and execs, and the index statements (`CREATE`/`DROP`/`OPTIMIZE VECTOR
//! INDEX`, `SHOW VECTOR INDEXES`). The files it writes are described in `crate::index_format`.

pub mod blocks;
pub mod compact;
pub mod inverted_lists;
pub mod node;
pub mod optimize;
pub mod optimize_exec;
pub mod optimize_node;
pub mod options;
pub mod stages;
pub mod statements;

pub use options::IndexOptions;
