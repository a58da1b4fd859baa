//! The candle backend: the same passes as tensor programs, for CUDA and Metal devices.
//!
//! Per chunk of rows: one batched matmul of the rows' sub-vectors with every codebook,
//! `bias − dots`, `argmin`/`min` along the centroid axis, and `index_add` of the rows and of
//! ones into per-centroid sums and counts, all on the device; only the `m × k × sub_dim` sums
//! come back to the host per iteration. Chunks are sized from a memory budget so that the
//! `rows × k` score matrix never exceeds it, whatever the number of rows.
//!
//! The training sample is uploaded once and kept on the device across the iterations of one
//! backend when it fits in half the budget; otherwise every pass streams it chunk by chunk.
//! (A backend lives for one index build.)
//!
//! The backend also runs on `Device::Cpu`, which is how CI tests it against the CPU backend.

use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use datafusion::error::{DataFusionError, Result};

use super::backend::{Assignment, Backend, Layout, StepOutput};
use crate::metric::Metric;

fn err(e: candle_core::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Device memory the backend plans for by default (the score matrix of one chunk plus the
/// resident sample).
pub const DEVICE_MEMORY_BUDGET_BYTES: usize = 2 << 30;

/// Device copies of a host slice, identified by its address, length and layout.
struct Resident {
    key: (usize, usize, Layout),
    chunks: Vec<Tensor>,
}

pub struct CandleBackend {
    device: Device,
    name: String,
    budget_bytes: usize,
    /// Chunks of the last data slice uploaded.
    resident: Mutex<Option<Resident>>,
}

impl std::fmt::Debug for CandleBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleBackend")
            .field("name", &self.name)
            .finish()
    }
}

impl CandleBackend {
    pub fn new(device: Device, name: impl Into<String>, budget_bytes: usize) -> Self {
        Self {
            device,
            name: name.into(),
            budget_bytes,
            resident: Mutex::new(None),
        }
    }

    /// Rows per chunk: scores and dots (`m × rows × k` each) plus the rows themselves fit in
    /// a quarter of the budget.
    pub fn chunk_rows(&self, layout: Layout) -> usize {
        let per_row = 4 * (layout.dim + 3 * layout.subspaces * layout.k);
        (self.budget_bytes / 4 / per_row).max(256)
    }

    /// The data as device tensors `(m, rows, sub_dim)`, one per chunk. With `keep`, the
    /// upload is remembered for the next call with the same slice: Lloyd iterations pass the
    /// same training slice every time. Encode passes (a new buffer per chunk, possibly at a
    /// recycled address) never use it.
    fn chunks(&self, data: &[f32], layout: Layout, keep: bool) -> Result<Vec<Tensor>> {
        let key = (data.as_ptr() as usize, data.len(), layout);
        if keep
            && let Some(r) = self.resident.lock().expect("lock").as_ref()
            && r.key == key
        {
            return Ok(r.chunks.clone());
        }
        let rows = self.chunk_rows(layout);
        let (m, ds) = (layout.subspaces, layout.sub_dim());
        let chunks = data
            .chunks(rows * layout.dim)
            .map(|c| {
                let n = c.len() / layout.dim;
                Tensor::from_slice(c, (n, m, ds), &self.device)?
                    .transpose(0, 1)?
                    .contiguous()
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)?;
        if keep && data.len() * 4 <= self.budget_bytes / 2 {
            *self.resident.lock().expect("lock") = Some(Resident {
                key,
                chunks: chunks.clone(),
            });
        }
        Ok(chunks)
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

    fn step(
        &self,
        data: &[f32],
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> Result<StepOutput> {
        let chunks = self.chunks(data, layout, true)?;
        let run = || -> candle_core::Result<StepOutput> {
            let (m, k, ds) = (layout.subspaces, layout.k, layout.sub_dim());
            let (cb_t, bias) = self.prepare(layout, centroids, metric)?;
            let offsets = Tensor::arange(0u32, m as u32, &self.device)?
                .affine(k as f64, 0.0)?
                .unsqueeze(1)?;
            let mut sums = Tensor::zeros((m * k, ds), DType::F32, &self.device)?;
            let mut counts = Tensor::zeros(m * k, DType::F32, &self.device)?;
            let mut objective = 0.0f64;
            for x in &chunks {
                let rows = x.dim(1)?;
                let (codes, dist) = Self::nearest(x, &cb_t, &bias, metric)?;
                objective += dist.sum_all()?.to_scalar::<f32>()? as f64;
                let global = codes.broadcast_add(&offsets)?.flatten_all()?;
                sums = sums.index_add(&global, &x.reshape((m * rows, ds))?, 0)?;
                let ones = Tensor::ones(m * rows, DType::F32, &self.device)?;
                counts = counts.index_add(&global, &ones, 0)?;
            }
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
        let chunks = self.chunks(data, layout, false)?;
        let run = || -> candle_core::Result<Assignment> {
            let (cb_t, bias) = self.prepare(layout, centroids, metric)?;
            let mut out = Assignment::default();
            for x in &chunks {
                let (codes, dist) = Self::nearest(x, &cb_t, &bias, metric)?;
                // (m, rows) -> row-major (rows, m)
                out.codes
                    .extend(codes.t()?.contiguous()?.flatten_all()?.to_vec1::<u32>()?);
                out.distances
                    .extend(dist.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?);
            }
            Ok(out)
        };
        run().map_err(err)
    }
}
