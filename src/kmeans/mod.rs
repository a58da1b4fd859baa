//! KMeans training: coarse (IVF) centroids and product-quantizer codebooks, trained on the
//! CPU or, through candle, on a GPU.
//!
//! Independent of SQL: the index builder, benchmarks and (later) distributed builds call it.
//!
//! - [`accelerator`]: choosing the device from `'cpu' | 'cuda[:N]' | 'mps' | 'auto'`;
//!   [`cuda_libraries`]: the CUDA libraries a CUDA build loads at run time, looked for first.
//! - [`backend`]: the two passes (assign + accumulate, assign) every algorithm here is made of,
//!   implemented by [`cpu::CpuBackend`] (fused GEMM + argmin kernels) and
//!   [`candle_backend::CandleBackend`] (tensor programs for CUDA/Metal).
//! - [`lloyd`]: Lloyd iterations with empty-cluster repair and a relative-change stop.
//! - [`pq`]: product-quantizer codebooks (`crate::quantizer` turns them into an index kind).

pub mod accelerator;
pub mod backend;
pub mod cancel;
pub mod candle_backend;
pub mod cpu;
pub mod cuda_libraries;
mod hierarchical;
pub mod init;
pub mod lloyd;
pub mod pq;

use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use vecfusion_kernels::distance::first_non_finite;

pub use accelerator::{Accelerator, AcceleratorRequest};
pub use backend::{Assignment, Backend, DeviceMemory, Layout};
pub use cancel::{Cancel, CancelOnDrop};
pub use hierarchical::train_hierarchical;
pub use init::Init;
pub use lloyd::{IterationInfo, LloydOptions};

use crate::metric::{Metric, normalize_rows};

/// The backend for a selected device: the fused CPU kernels for the CPU, candle otherwise,
/// planning device memory from what the device has free now, capped by
/// `gpu_memory_budget_bytes` (the `gpu_memory_budget_mb` option) when given.
pub fn backend_for(
    accelerator: &Accelerator,
    gpu_memory_budget_bytes: Option<usize>,
) -> Box<dyn Backend> {
    if accelerator.is_cpu() {
        Box::new(cpu::CpuBackend)
    } else {
        Box::new(candle_backend::CandleBackend::new(
            accelerator.device.clone(),
            accelerator.name.clone(),
            candle_backend::memory_budget(accelerator.free_memory(), gpu_memory_budget_bytes),
        ))
    }
}

/// Options of a KMeans run.
#[derive(Debug, Clone)]
pub struct KMeansParams {
    pub k: usize,
    pub max_iterations: usize,
    /// Relative objective change below which training stops (0 = always run every iteration).
    pub tolerance: f64,
    pub metric: Metric,
    pub init: Init,
    pub seed: u64,
    /// Stops training between iterations when cancelled.
    pub cancel: Cancel,
}

impl KMeansParams {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            max_iterations: 50,
            tolerance: 1e-4,
            metric: Metric::L2,
            init: Init::Random,
            seed: 42,
            cancel: Cancel::default(),
        }
    }
}

/// Trained centroids.
#[derive(Debug, Clone)]
pub struct KMeansModel {
    pub dim: usize,
    pub k: usize,
    pub metric: Metric,
    /// Row-major `k × dim`; unit length for `Metric::Cosine`.
    pub centroids: Vec<f32>,
    /// Objective after each iteration.
    pub objectives: Vec<f64>,
}

impl KMeansModel {
    /// Nearest centroid of every row and its distance (squared L2 for l2/cosine, negated
    /// inner product for dot). Rows must already be normalised for cosine.
    pub fn assign(&self, backend: &dyn Backend, rows: &[f32]) -> Result<Assignment> {
        check_rows(rows, self.dim)?;
        backend.assign(
            rows,
            Layout::coarse(self.dim, self.k),
            &self.centroids,
            self.metric,
        )
    }
}

/// Checks that `data` is whole rows of finite values.
pub fn check_rows(data: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return exec_err!(
            "the data has {} values, which is not a whole number of {dim}-dimensional rows",
            data.len()
        );
    }
    if let Some(pos) = first_non_finite(data) {
        return exec_err!(
            "row {} holds a non-finite value ({}); KMeans needs finite vectors (skip or fix \
             NaN/Inf rows first)",
            pos / dim,
            data[pos]
        );
    }
    Ok(data.len() / dim)
}

/// Trains `params.k` centroids on `data` (row-major, `dim` columns).
pub fn train(
    backend: &dyn Backend,
    data: &[f32],
    dim: usize,
    params: &KMeansParams,
    progress: &mut dyn FnMut(&IterationInfo),
) -> Result<KMeansModel> {
    let n = check_rows(data, dim)?;
    if params.k == 0 {
        return plan_err!("KMeans needs k ≥ 1");
    }
    if n < params.k {
        return plan_err!(
            "KMeans with k = {} needs at least {} rows, got {n}; use fewer partitions or more data",
            params.k,
            params.k
        );
    }
    let normalized;
    let data = if params.metric == Metric::Cosine {
        let mut copy = data.to_vec();
        normalize_rows(&mut copy, dim);
        normalized = copy;
        &normalized[..]
    } else {
        data
    };
    let layout = Layout::coarse(dim, params.k);
    let mut initial = match params.init {
        Init::Random => init::random_rows(data, layout, params.seed),
        Init::KMeansPlusPlus => init::kmeans_plus_plus(data, dim, params.k, params.seed),
    };
    if params.metric == Metric::Cosine {
        normalize_rows(&mut initial, dim);
    }
    let options = LloydOptions {
        max_iterations: params.max_iterations,
        tolerance: params.tolerance,
        seed: params.seed,
        cancel: params.cancel.clone(),
    };
    let result = lloyd::lloyd(
        backend,
        data,
        layout,
        initial,
        params.metric,
        options,
        progress,
    )?;
    Ok(KMeansModel {
        dim,
        k: params.k,
        metric: params.metric,
        centroids: result.centroids,
        objectives: result.objectives,
    })
}

#[cfg(test)]
mod tests;
