//! `vecfusion.dataset(path)`: a vecfusion dataset for the `datafusion` Python package, through
//! datafusion-ffi's table-provider capsule (scan with filter pushdown, statistics, INSERT).

use std::ffi::CStr;
use std::sync::Arc;

use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::table_provider::FFI_TableProvider;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods};
use vecfusion::dataset::{Dataset, DatasetLocation};
use vecfusion::provider::{VecfusionTable, VersionTarget};

use crate::runtime::{runtime, to_py, wait};

const PROVIDER: &CStr = c"datafusion_table_provider";
const CODEC: &CStr = c"datafusion_logical_extension_codec";

/// A dataset handle exposing `__datafusion_table_provider__`.
#[pyclass(module = "vecfusion._native", frozen)]
pub struct DatasetProvider {
    table: Arc<VecfusionTable>,
}

#[pymethods]
impl DatasetProvider {
    /// Opens the dataset at `path` (a directory or `file://` URL), at `version` if given.
    #[new]
    #[pyo3(signature = (path, version = None))]
    fn new(py: Python<'_>, path: &str, version: Option<u64>) -> PyResult<Self> {
        let location =
            DatasetLocation::local(path.strip_prefix("file://").unwrap_or(path)).map_err(to_py)?;
        let dataset = wait(py, async move {
            let dataset = Dataset::open(location).await?;
            match version {
                Some(v) => dataset.checkout_version(v).await,
                None => Ok(dataset),
            }
        })?;
        let target = match version {
            Some(v) => VersionTarget::Version(v),
            None => VersionTarget::Latest,
        };
        Ok(Self {
            table: Arc::new(VecfusionTable::with_target(dataset, target)),
        })
    }

    /// The capsule the `datafusion` package asks for in `SessionContext.register_table`.
    fn __datafusion_table_provider__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let codec_capsule = session.call_method0("__datafusion_logical_extension_codec__")?;
        let codec_capsule = codec_capsule.cast::<PyCapsule>()?;
        let codec = codec_capsule
            .pointer_checked(Some(CODEC))?
            .cast::<FFI_LogicalExtensionCodec>();
        // SAFETY: the capsule's name says it holds an FFI_LogicalExtensionCodec, which we clone.
        let codec = unsafe { codec.as_ref() }.clone();
        let provider = FFI_TableProvider::new_with_ffi_codec(
            self.table.clone(),
            true,
            Some(runtime().handle().clone()),
            codec,
        );
        PyCapsule::new_with_value(py, provider, PROVIDER)
    }

    fn __repr__(&self) -> String {
        let ds = self.table.cached();
        format!(
            "vecfusion.dataset('{}', version={})",
            ds.uri(),
            ds.version()
        )
    }
}
