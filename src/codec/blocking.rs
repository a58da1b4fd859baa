//! Decoding is synchronous in DataFusion's codec traits, but making a node again opens a
//! dataset version, which is I/O (async). This runs such a future to completion from the
//! synchronous decode.

use std::future::Future;

use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `future` to completion. On a multi-threaded tokio runtime (Ballista's scheduler and
/// executors decode on one) the current worker lends itself to the future, so it uses that
/// runtime's I/O drivers and the object-store clients registered on it; elsewhere (a
/// current-thread runtime, or none) it runs on a scoped thread with a runtime of its own,
/// because blocking the only worker of a runtime on itself would deadlock.
pub fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    if let Ok(handle) = Handle::try_current()
        && handle.runtime_flavor() == RuntimeFlavor::MultiThread
    {
        return Ok(tokio::task::block_in_place(|| handle.block_on(future)));
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| exec_datafusion_err!("cannot start a runtime to decode: {e}"))?;
                Ok(runtime.block_on(future))
            })
            .join()
            .map_err(|_| exec_datafusion_err!("decoding a vecfusion plan node panicked"))?
    })
}
