//! `vecfusion._native`: the Rust half of the `vecfusion` Python package.
//!
//! Everything crosses the boundary in Arrow form through the Arrow PyCapsule interface
//! (`__arrow_c_stream__`), so pyarrow, pandas (through pyarrow) and polars read results without
//! copies and no Arrow feature set differs from the Rust crate's (one build of the DataFusion
//! stack serves both). Long calls release the GIL, and give it back every 100 ms to check for
//! Ctrl-C / a kernel interrupt, which cancels the statement (nothing is committed).

mod arrow_stream;
mod provider;
mod runtime;
mod session;

use pyo3::prelude::*;

#[global_allocator]
static GLOBAL: vecfusion::allocator::MiMalloc = vecfusion::allocator::MiMalloc;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    vecfusion::allocator::keep_freed_memory();
    m.add_class::<session::Session>()?;
    m.add_class::<session::QueryResult>()?;
    m.add_class::<provider::DatasetProvider>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
