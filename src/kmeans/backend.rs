//! The two operations every Lloyd iteration and every encode pass is made of, on a device.
//!
//! A *codebook set* is `m` independent codebooks of `k` centroids over the `m` equal slices
//! ("sub-spaces") of each row: an IVF coarse quantizer is `m = 1`, a product quantizer is
//! `m = num_sub_vectors`. Treating both the same way means one implementation trains and
//! encodes both, and product-quantizer training assigns all sub-spaces in one pass (one
//! batched matmul on a GPU) instead of running `m` separate KMeans loops.
//!
//! - [`Backend::step`]: assign every row (of every sub-space) to its nearest centroid and
//!   accumulate per-centroid sums and counts, plus the objective (sum of squared distances).
//! - [`Backend::assign`]: the nearest centroid and its distance for every row and sub-space.

use datafusion::error::Result;

use crate::metric::Metric;

/// The shape of a codebook set over rows of `dim` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub dim: usize,
    /// Number of sub-spaces `m`; `dim % m == 0`.
    pub subspaces: usize,
    /// Centroids per sub-space.
    pub k: usize,
}

impl Layout {
    pub fn coarse(dim: usize, k: usize) -> Self {
        Self {
            dim,
            subspaces: 1,
            k,
        }
    }

    /// Width of one sub-space.
    pub fn sub_dim(&self) -> usize {
        self.dim / self.subspaces
    }

    /// Floats in the centroids of all sub-spaces (`m × k × sub_dim`).
    pub fn centroid_len(&self) -> usize {
        self.subspaces * self.k * self.sub_dim()
    }
}

/// Result of one accumulation pass.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Per sub-space, per centroid sums (`m × k × sub_dim`).
    pub sums: Vec<f32>,
    /// Per sub-space, per centroid row counts (`m × k`).
    pub counts: Vec<u64>,
    /// Sum over rows and sub-spaces of the squared distance to the assigned centroid
    /// (for `Metric::Dot`: the sum of negated inner products).
    pub objective: f64,
}

/// Result of an assignment pass: row-major `n × m`.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    pub codes: Vec<u32>,
    /// Squared L2 distance (L2, cosine) or negated inner product (dot).
    pub distances: Vec<f32>,
}

/// What a GPU backend planned for and moved: shown with every build, so a slow build that
/// streams its sample each iteration is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Device memory the backend plans for (see `candle_backend::memory_budget`).
    pub budget_bytes: u64,
    /// Rows copied from the host to the device so far.
    pub uploaded_bytes: u64,
}

/// A device that runs the passes. Implementations must give the same assignments for the
/// same inputs up to floating-point ties.
pub trait Backend: Send + Sync {
    /// Human-readable device name (`cpu`, `cuda:0`, ...).
    fn name(&self) -> &str;

    /// The device memory budget and traffic; `None` for the CPU backend (host memory).
    fn device_memory(&self) -> Option<DeviceMemory> {
        None
    }

    fn step(
        &self,
        data: &[f32],
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> Result<StepOutput>;

    fn assign(
        &self,
        data: &[f32],
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> Result<Assignment>;
}
