//! Integration tests: real datasets on disk, real SQL, real child processes.

mod common;
mod dataset_api;
mod index_build;
mod search;
mod sql;
