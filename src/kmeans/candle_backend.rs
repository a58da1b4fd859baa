//! The candle backend: the same passes as tensor programs, for CUDA and Metal devices.
//!
//! Per chunk of rows: one batched matmul of the rows' sub-vectors with every codebook,
//! `bias − dots`, `argmin`/`min` along the centroid axis, and `index_add` of the rows and of
//! ones into per-centroid sums and counts, all on the device; only the `m × k × sub_dim` sums
//! come back to the host per iteration.
//!
//! Device memory is planned from a budget ([`memory_budget`]): a share of the memory the
//! device says is free, capped by the index option `gpu_memory_budget_mb`. The training
//! sample is uploaded once and stays on the device across the Lloyd iterations whenever it
//! fits in the budget beside one chunk's score matrices; otherwise (data larger than the
//! device) every pass streams it, one chunk on the device at a time. Chunks are sized so that
//! their `rows × k` score matrices fit in what the budget leaves. (A backend lives for one
//! index build.)
//!
//! The backend also runs on `Device::Cpu`, which is how CI tests it against the CPU backend,
//! chunked and streamed paths included (with tiny budgets).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor};
use datafusion::error::{DataFusionError, Result};

use super::backend::{Assignment, Backend, DeviceMemory, Layout, StepOutput};
use crate::metric::Metric;

fn err(e: candle_core::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The budget when the device cannot say how much memory is free (Metal, the CPU device
/// in tests) and the user set none.
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 2 << 30;

/// The share of the device's free memory a build plans for. The rest is left for what the
/// budget does not count: candle's temporaries inside one operation (matmul workspaces,
/// argmin outputs), the allocator's rounding, and other work on the same GPU.
pub const FREE_MEMORY_SHARE: f64 = 0.8;

/// Fewest rows in a chunk: below this, kernel launches cost more than the work they do.
pub const MIN_CHUNK_ROWS: usize = 256;

/// The device memory a backend plans for: [`FREE_MEMORY_SHARE`] of `free` (what the device
/// reports), never more than `cap` (the `gpu_memory_budget_mb` option), and
/// [`DEFAULT_MEMORY_BUDGET_BYTES`] (or `cap`) when the device reports nothing.
pub fn memory_budget(free: Option<usize>, cap: Option<usize>) -> usize {
    let from_device = free.map(|f| (f as f64 * FREE_MEMORY_SHARE) as usize);
    match (from_device, cap) {
        (Some(d), Some(c)) => d.min(c),
        (Some(d), None) => d,
        (None, Some(c)) => c,
        (None, None) => DEFAULT_MEMORY_BUDGET_BYTES,
    }
    .max(1)
}

/// How one pass lays out on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassPlan {
    /// The data is uploaded once and kept for the next pass over the same slice.
    pub resident: bool,
    pub chunk_rows: usize,
}

/// Device copies of a host slice, identified by its address, length and layout.
struct Resident {
    key: (usize, usize, Layout),
    chunks: Vec<Tensor>,
}

pub struct CandleBackend {
    device: Device,
    name: String,
    budget_bytes: usize,
    /// Chunks of the training slice kept on the device; released when a pass over other data
    /// begins.
    resident: Mutex<Option<Resident>>,
    /// Bytes copied from the host to the device so far (rows only; codebooks are small).
    uploaded_bytes: AtomicU64,
}

impl std::fmt::Debug for CandleBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleBackend")
            .field("name", &self.name)
            .field("budget_bytes", &self.budget_bytes)
            .finish()
    }
}

impl CandleBackend {
    pub fn new(device: Device, name: impl Into<String>, budget_bytes: usize) -> Self {
        Self {
            device,
            name: name.into(),
            budget_bytes: budget_bytes.max(1),
            resident: Mutex::new(None),
            uploaded_bytes: AtomicU64::new(0),
        }
    }

    /// Plans a pass over `rows` rows: resident when `keep` asks for it and the rows fit in the
    /// budget beside the score matrices of one chunk of [`MIN_CHUNK_ROWS`]; chunks as large as
    /// the rest of the budget allows. Per row a chunk holds its dots and scores against every
    /// centroid of every sub-space, and a third such matrix for the temporaries in between,
    /// plus the row itself when it is streamed.
    pub fn plan(&self, rows: usize, layout: Layout, keep: bool) -> PassPlan {
        let scores_per_row = 4 * 3 * layout.subspaces.saturating_mul(layout.k);
        let row_bytes = 4 * layout.dim;
        let data_bytes = rows.saturating_mul(row_bytes);
        let first_chunk = scores_per_row.saturating_mul(rows.min(MIN_CHUNK_ROWS));
        if keep && data_bytes.saturating_add(first_chunk) <= self.budget_bytes {
            let left = self.budget_bytes - data_bytes;
            PassPlan {
                resident: true,
                chunk_rows: (left / scores_per_row.max(1)).max(MIN_CHUNK_ROWS),
            }
        } else {
            PassPlan {
                resident: false,
                chunk_rows: (self.budget_bytes / (scores_per_row + row_bytes).max(1))
                    .max(MIN_CHUNK_ROWS),
            }
        }
    }

    /// Rows per chunk of a streamed pass (the data not kept on the device).
    pub fn chunk_rows(&self, layout: Layout) -> usize {
        self.plan(usize::MAX, layout, false).chunk_rows
    }

    /// Whether a training slice is on the device now, and its size in bytes.
    pub fn resident_bytes(&self) -> Option<usize> {
        let resident = self.resident.lock().expect("lock");
        resident.as_ref().map(|r| r.key.1 * 4)
    }

    /// One chunk `(m, rows, sub_dim)` of host rows, uploaded.
    fn upload(&self, rows: &[f32], layout: Layout) -> candle_core::Result<Tensor> {
        let (m, ds) = (layout.subspaces, layout.sub_dim());
        let n = rows.len() / layout.dim;
        self.uploaded_bytes
            .fetch_add(std::mem::size_of_val(rows) as u64, Ordering::Relaxed);
        Tensor::from_slice(rows, (n, m, ds), &self.device)?
            .transpose(0, 1)?
            .contiguous()
    }

    /// Calls `f` on every chunk of `data` on the device. With `keep` (Lloyd iterations pass
    /// the same training slice every time), the upload is kept for the next call with the
    /// same slice when it fits; otherwise one chunk at a time is uploaded, used and dropped,
    /// so data larger than the device still works. Encode passes (a new buffer per chunk,
    /// possibly at a recycled address) never keep.
    fn for_each_chunk(
        &self,
        data: &[f32],
        layout: Layout,
        keep: bool,
        mut f: impl FnMut(&Tensor) -> candle_core::Result<()>,
    ) -> Result<()> {
        let key = (data.as_ptr() as usize, data.len(), layout);
        let mut resident = self.resident.lock().expect("lock");
        if keep && let Some(r) = resident.as_ref().filter(|r| r.key == key) {
            return r.chunks.iter().try_for_each(&mut f).map_err(err);
        }
        // A pass over other data: the old training slice is not needed any more.
        *resident = None;
        let plan = self.plan(data.len() / layout.dim, layout, keep);
        let step = plan.chunk_rows.saturating_mul(layout.dim);
        let mut run = || -> candle_core::Result<Option<Resident>> {
            if plan.resident {
                let chunks = data
                    .chunks(step)
                    .map(|c| self.upload(c, layout))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                chunks.iter().try_for_each(&mut f)?;
                Ok(Some(Resident { key, chunks }))
            } else {
                for c in data.chunks(step) {
                    f(&self.upload(c, layout)?)?;
                }
                Ok(None)
            }
        };
        *resident = run().map_err(err)?;
        Ok(())
    }

    /// Codebooks transposed for the matmul `(m, sub_dim, k)` and the bias `(m, 1, k)`.
    fn prepare(
        &self,
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (m, k, ds) = (layout.subspaces, layout.k, layout.sub_dim());
        let cb = Tensor::from_slice(centroids, (m, k, ds), &self.device)?;
        let cb_t = cb.transpose(1, 2)?.contiguous()?;
        let bias = match metric {
            Metric::Dot => Tensor::zeros((m, 1, k), DType::F32, &self.device)?,
            Metric::L2 | Metric::Cosine => (cb.sqr()?.sum_keepdim(2)? * 0.5)?
                .transpose(1, 2)?
                .contiguous()?,
        };
        Ok((cb_t, bias))
    }

    /// Codes `(m, rows)` and distances `(m, rows)` of one chunk `(m, rows, ds)`.
    fn nearest(
        x: &Tensor,
        cb_t: &Tensor,
        bias: &Tensor,
        metric: Metric,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let dots = x.matmul(cb_t)?;
        let scores = bias.broadcast_sub(&dots)?;
        let codes = scores.argmin(2)?;
        let best = scores.min(2)?;
        let dist = match metric {
            Metric::Dot => best,
            Metric::L2 | Metric::Cosine => (x.sqr()?.sum(2)? + (best * 2.0)?)?.relu()?,
        };
        Ok((codes, dist))
    }
}

impl Backend for CandleBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn device_memory(&self) -> Option<DeviceMemory> {
        Some(DeviceMemory {
            budget_bytes: self.budget_bytes as u64,
            uploaded_bytes: self.uploaded_bytes.load(Ordering::Relaxed),
        })
    }

    fn step(
        &self,
        data: &[f32],
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> Result<StepOutput> {
        let (m, k, ds) = (layout.subspaces, layout.k, layout.sub_dim());
        let (cb_t, bias) = self.prepare(layout, centroids, metric).map_err(err)?;
        let offsets = Tensor::arange(0u32, m as u32, &self.device)
            .and_then(|t| t.affine(k as f64, 0.0)?.unsqueeze(1))
            .map_err(err)?;
        let mut sums = Tensor::zeros((m * k, ds), DType::F32, &self.device).map_err(err)?;
        let mut counts = Tensor::zeros(m * k, DType::F32, &self.device).map_err(err)?;
        let mut objective = 0.0f64;
        self.for_each_chunk(data, layout, true, |x| {
            let rows = x.dim(1)?;
            let (codes, dist) = Self::nearest(x, &cb_t, &bias, metric)?;
            objective += dist.sum_all()?.to_scalar::<f32>()? as f64;
            let global = codes.broadcast_add(&offsets)?.flatten_all()?;
            sums = sums.index_add(&global, &x.reshape((m * rows, ds))?, 0)?;
            let ones = Tensor::ones(m * rows, DType::F32, &self.device)?;
            counts = counts.index_add(&global, &ones, 0)?;
            Ok(())
        })?;
        let run = || -> candle_core::Result<StepOutput> {
            Ok(StepOutput {
                sums: sums.flatten_all()?.to_vec1::<f32>()?,
                counts: counts
                    .to_vec1::<f32>()?
                    .into_iter()
                    .map(|c| c as u64)
                    .collect(),
                objective,
            })
        };
        run().map_err(err)
    }

    fn assign(
        &self,
        data: &[f32],
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> Result<Assignment> {
        let (cb_t, bias) = self.prepare(layout, centroids, metric).map_err(err)?;
        let mut out = Assignment::default();
        self.for_each_chunk(data, layout, false, |x| {
            let (codes, dist) = Self::nearest(x, &cb_t, &bias, metric)?;
            // (m, rows) -> row-major (rows, m)
            out.codes
                .extend(codes.t()?.contiguous()?.flatten_all()?.to_vec1::<u32>()?);
            out.distances
                .extend(dist.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?);
            Ok(())
        })?;
        Ok(out)
    }
}
