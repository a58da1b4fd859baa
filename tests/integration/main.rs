//! Integration tests: real datasets on disk, real SQL, real child processes.

mod cleanup;
mod common;
mod compaction;
mod corruption;
mod dataset_api;
mod embeddings;
mod format_one;
mod fuzz_corpus;
mod index_build;
mod s3;
mod schema_evolution;
mod search;
mod segments;
mod sql;
