//! Numeric kernels of vecfusion.
//!
//! This crate holds the loops that run once per vector or per vector component: distance
//! functions, and (as the index grows) quantizer encode/scan loops. It has no dependencies and
//! the workspace compiles it with `opt-level = 3` even in the dev profile, so the tests, the
//! README quickstart and the benchmarks all run these loops auto-vectorised while the large
//! DataFusion dependency graph stays cheap to compile.

pub mod distance;
pub mod nearest;
pub mod scan;
pub mod topk;
