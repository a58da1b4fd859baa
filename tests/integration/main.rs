//! Integration tests: real datasets on disk, real SQL, real child processes.

mod common;
mod compaction;
mod dataset_api;
mod format_one;
mod index_build;
mod search;
mod segments;
mod sql;
