//! One tokio runtime per process, and running futures from Python without holding the GIL.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vecfusion")
            .build()
            .expect("tokio runtime")
    })
}

/// The error Python sees for a DataFusion/vecfusion error: the message as Rust wrote it.
pub fn to_py(e: datafusion::error::DataFusionError) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// Runs `fut` to completion with the GIL released. Every 100 ms the GIL is taken back to look
/// for a pending signal (Ctrl-C, a Jupyter interrupt); if there is one the future is dropped —
/// which cancels the statement — and the signal's exception is raised.
pub fn wait<T: Send>(
    py: Python<'_>,
    fut: impl Future<Output = datafusion::error::Result<T>> + Send,
) -> PyResult<T> {
    let outcome = py.detach(|| {
        runtime().block_on(async {
            let interrupted = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        return e;
                    }
                }
            };
            tokio::select! {
                r = fut => Ok(r),
                e = interrupted => Err(e),
            }
        })
    });
    match outcome {
        Ok(result) => result.map_err(to_py),
        Err(signal) => Err(signal),
    }
}
