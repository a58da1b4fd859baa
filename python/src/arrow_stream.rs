//! Record batches to and from Python through the Arrow C stream interface.

use std::ffi::CStr;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods};

const STREAM: &CStr = c"arrow_array_stream";

/// A capsule holding an `ArrowArrayStream` over `batches` (for `__arrow_c_stream__`).
pub fn export<'py>(
    py: Python<'py>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Bound<'py, PyCapsule>> {
    let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
        batches.into_iter().map(Ok),
        schema,
    ));
    PyCapsule::new_with_value(py, FFI_ArrowArrayStream::new(reader), STREAM)
}

/// Reads every batch of a Python object implementing `__arrow_c_stream__` (a pyarrow Table or
/// RecordBatchReader, a polars DataFrame, ...).
pub fn import(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    if !obj.hasattr("__arrow_c_stream__")? {
        return Err(PyTypeError::new_err(format!(
            "expected Arrow data (an object with __arrow_c_stream__, e.g. a pyarrow.Table), got {}",
            obj.get_type().name()?
        )));
    }
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let ptr = capsule
        .pointer_checked(Some(STREAM))?
        .cast::<FFI_ArrowArrayStream>();
    // SAFETY: the capsule holds an ArrowArrayStream (checked by name); `from_raw` moves the
    // stream out and leaves a released one behind, as the C stream interface specifies.
    let reader = unsafe { ArrowArrayStreamReader::from_raw(ptr.as_ptr()) }
        .map_err(|e| PyTypeError::new_err(e.to_string()))?;
    let schema: SchemaRef = Arc::new(reader.schema().as_ref().clone());
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyTypeError::new_err(e.to_string()))?;
    Ok((schema, batches))
}
