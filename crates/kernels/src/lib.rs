//! Numeric kernels of vecfusion.
//!
//! This crate holds the loops that run once per vector or per vector component: distance
//! functions, nearest-centroid search, quantizer scans and top-k selection. It has no
//! dependencies and the workspace compiles it with `opt-level = 3` even in the dev profile, so
//! the tests, the README quickstart and the benchmarks all run these loops at full speed while
//! the large DataFusion dependency graph stays cheap to compile. Each kernel is compiled for
//! every instruction set in [`path::KernelPath`] and picks the widest the CPU has at run time.

pub mod distance;
pub mod fast_scan;
pub mod nearest;
pub mod path;
pub mod prefetch;
pub mod scan;
pub mod topk;
