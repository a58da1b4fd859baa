//! The CPU backend: the fused GEMM + argmin kernel of `vecfusion-kernels`, parallel over rows.
//!
//! Rows are split into chunks handed to rayon's pool; each chunk runs the kernel per
//! sub-space (the per-row loops live in `vecfusion-kernels` too), adding its rows into
//! chunk-local sums that are merged at the end, so threads
//! never share a write. Memory beyond the data is O(threads × k × dim) for the sums.

use datafusion::error::Result;
use rayon::prelude::*;
use vecfusion_kernels::distance::add_assign;
use vecfusion_kernels::nearest::{MC, PackedCentroids, nearest_accumulate, nearest_distances};

use super::backend::{Assignment, Backend, Layout, StepOutput};
use crate::metric::Metric;

#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

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

/// Row blocks `(start, rows)` of a task. With several sub-spaces (PQ) each block is small
/// enough to stay in L2 while every sub-space's codebook passes over it, instead of streaming
/// the whole task from memory once per sub-space.
fn sub_blocks(rows: usize, subspaces: usize) -> impl Iterator<Item = (usize, usize)> {
    let block = if subspaces > 1 { 5 * MC } else { rows.max(1) };
    (0..rows)
        .step_by(block)
        .map(move |s| (s, block.min(rows - s)))
}

impl Backend for CpuBackend {
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
        let l2 = metric != Metric::Dot;
        let out = data
            .par_chunks(task_rows * dim)
            .map(|chunk| {
                let mut local = empty();
                let rows = chunk.len() / dim;
                let (mut idx, mut score) = (vec![0u32; rows], vec![0f32; rows]);
                for (start, n) in sub_blocks(rows, m) {
                    for (s, p) in packed.iter().enumerate() {
                        local.objective += nearest_accumulate(
                            chunk,
                            start * dim + s * ds,
                            dim,
                            n,
                            p,
                            l2,
                            &mut local.sums[s * k * ds..(s + 1) * k * ds],
                            &mut local.counts[s * k..(s + 1) * k],
                            &mut idx,
                            &mut score,
                        );
                    }
                }
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
        let (dim, m, ds) = (layout.dim, layout.subspaces, layout.sub_dim());
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
                let rows = chunk.len() / dim;
                let (mut idx, mut score) = (vec![0u32; rows], vec![0f32; rows]);
                for (start, n) in sub_blocks(rows, m) {
                    for (s, p) in packed.iter().enumerate() {
                        nearest_distances(
                            chunk,
                            start * dim + s * ds,
                            dim,
                            n,
                            p,
                            metric != Metric::Dot,
                            &mut codes[start * m + s..],
                            &mut dists[start * m + s..],
                            m,
                            &mut idx,
                            &mut score,
                        );
                    }
                }
            });
        Ok(out)
    }
}
