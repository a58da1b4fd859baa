//! The CPU engine: the fused GEMM + argmin kernel of `vecfusion-kernels`, parallel over rows.
//!
//! Rows are split into chunks handed to rayon's pool; each chunk runs the kernel per
//! sub-space, then adds its rows into chunk-local sums that are merged at the end, so threads
//! never share a write. Memory beyond the data is O(threads × k × dim) for the sums.

use datafusion::error::Result;
use rayon::prelude::*;
use vecfusion_kernels::distance::{add_assign, norm_squared};
use vecfusion_kernels::nearest::{MC, PackedCentroids, nearest};

use super::engine::{Assignment, Engine, Layout, StepOutput};
use crate::metric::Metric;

#[derive(Debug, Default, Clone, Copy)]
pub struct CpuEngine;

fn pack(layout: Layout, centroids: &[f32], metric: Metric) -> Vec<PackedCentroids> {
    let ds = layout.sub_dim();
    centroids
        .chunks_exact(layout.k * ds)
        .map(|c| match metric {
            Metric::Dot => PackedCentroids::for_inner_product(c, ds),
            Metric::L2 | Metric::Cosine => PackedCentroids::for_l2(c, ds),
        })
        .collect()
}

/// Rows per parallel task: a few tasks per thread for balance, whole kernel blocks each.
fn rows_per_task(n: usize) -> usize {
    let tasks = rayon::current_num_threads() * 4;
    n.div_ceil(tasks).div_ceil(MC).max(1) * MC
}

/// Runs the kernel on rows `[0, rows)` of `chunk` for every sub-space; calls `visit(row,
/// subspace, code, distance)`.
fn assign_chunk(
    chunk: &[f32],
    layout: Layout,
    packed: &[PackedCentroids],
    metric: Metric,
    mut visit: impl FnMut(usize, usize, u32, f32),
) {
    let (dim, ds) = (layout.dim, layout.sub_dim());
    let rows = chunk.len() / dim;
    let mut idx = vec![0u32; rows];
    let mut score = vec![0f32; rows];
    for (s, p) in packed.iter().enumerate() {
        nearest(chunk, s * ds, dim, rows, p, &mut idx, &mut score);
        for r in 0..rows {
            let d = match metric {
                Metric::Dot => score[r],
                Metric::L2 | Metric::Cosine => {
                    let sub = &chunk[r * dim + s * ds..r * dim + (s + 1) * ds];
                    (norm_squared(sub) + 2.0 * score[r]).max(0.0)
                }
            };
            visit(r, s, idx[r], d);
        }
    }
}

impl Engine for CpuEngine {
    fn name(&self) -> &str {
        "cpu"
    }

    fn step(
        &self,
        data: &[f32],
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> Result<StepOutput> {
        let packed = pack(layout, centroids, metric);
        let (dim, ds, k, m) = (layout.dim, layout.sub_dim(), layout.k, layout.subspaces);
        let task_rows = rows_per_task(data.len() / dim);
        let empty = || StepOutput {
            sums: vec![0.0; layout.centroid_len()],
            counts: vec![0; m * k],
            objective: 0.0,
        };
        let out = data
            .par_chunks(task_rows * dim)
            .map(|chunk| {
                let mut local = empty();
                assign_chunk(chunk, layout, &packed, metric, |r, s, code, d| {
                    let c = s * k + code as usize;
                    local.counts[c] += 1;
                    local.objective += d as f64;
                    let src = &chunk[r * dim + s * ds..r * dim + (s + 1) * ds];
                    add_assign(&mut local.sums[c * ds..(c + 1) * ds], src);
                });
                local
            })
            .reduce(empty, |mut a, b| {
                add_assign(&mut a.sums, &b.sums);
                a.counts
                    .iter_mut()
                    .zip(&b.counts)
                    .for_each(|(x, y)| *x += y);
                a.objective += b.objective;
                a
            });
        Ok(out)
    }

    fn assign(
        &self,
        data: &[f32],
        layout: Layout,
        centroids: &[f32],
        metric: Metric,
    ) -> Result<Assignment> {
        let packed = pack(layout, centroids, metric);
        let (dim, m) = (layout.dim, layout.subspaces);
        let n = data.len() / dim;
        let mut out = Assignment {
            codes: vec![0; n * m],
            distances: vec![0.0; n * m],
        };
        let task_rows = rows_per_task(n);
        data.par_chunks(task_rows * dim)
            .zip(out.codes.par_chunks_mut(task_rows * m))
            .zip(out.distances.par_chunks_mut(task_rows * m))
            .for_each(|((chunk, codes), dists)| {
                assign_chunk(chunk, layout, &packed, metric, |r, s, code, d| {
                    codes[r * m + s] = code;
                    dists[r * m + s] = d;
                });
            });
        Ok(out)
    }
}
