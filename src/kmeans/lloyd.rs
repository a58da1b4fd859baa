//! Lloyd iterations over a codebook set (one coarse quantizer, or all PQ sub-spaces at once).

use std::time::Instant;

use datafusion::common::exec_err;
use datafusion::error::Result;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::backend::{Backend, Layout};
use super::cancel::Cancel;
use crate::metric::{Metric, normalize_rows};

/// What a progress callback hears after every iteration.
#[derive(Debug, Clone)]
pub struct IterationInfo {
    /// 1-based.
    pub iteration: usize,
    pub max_iterations: usize,
    /// Objective of the assignment made in this iteration (sum of squared distances; for
    /// `dot`, the sum of negated inner products).
    pub objective: f64,
    /// Empty clusters re-seeded in this iteration.
    pub empty_clusters: usize,
    pub seconds: f64,
}

/// Stopping rule and seed of a Lloyd loop.
#[derive(Debug, Clone)]
pub struct LloydOptions {
    pub max_iterations: usize,
    /// Stop when the relative objective change falls below this (0 = run every iteration).
    pub tolerance: f64,
    pub seed: u64,
    /// Checked before every iteration: a cancelled run stops with an error.
    pub cancel: Cancel,
}

/// Result of a Lloyd loop.
#[derive(Debug, Clone)]
pub struct LloydResult {
    pub centroids: Vec<f32>,
    pub objectives: Vec<f64>,
}

/// Runs Lloyd iterations from `centroids`. For `Metric::Cosine` the data must already be
/// normalised; centroids are kept on the unit sphere.
pub fn lloyd(
    backend: &dyn Backend,
    data: &[f32],
    layout: Layout,
    mut centroids: Vec<f32>,
    metric: Metric,
    options: LloydOptions,
    progress: &mut dyn FnMut(&IterationInfo),
) -> Result<LloydResult> {
    let mut rng = Pcg64Mcg::seed_from_u64(options.seed ^ 0x5EED_5EED);
    let mut objectives = vec![];
    let ds = layout.sub_dim();
    for iteration in 1..=options.max_iterations {
        if options.cancel.is_cancelled() {
            return exec_err!(
                "KMeans training was cancelled (after {} iterations)",
                iteration - 1
            );
        }
        let start = Instant::now();
        let step = backend.step(data, layout, &centroids, metric)?;
        let mut counts = step.counts;
        for (c, (centroid, sum)) in centroids
            .chunks_exact_mut(ds)
            .zip(step.sums.chunks_exact(ds))
            .enumerate()
        {
            if counts[c] > 0 {
                let inv = 1.0 / counts[c] as f32;
                centroid.iter_mut().zip(sum).for_each(|(v, s)| *v = s * inv);
            }
        }
        let mut empty = 0;
        for s in 0..layout.subspaces {
            let range = s * layout.k..(s + 1) * layout.k;
            empty += split_empty_clusters(
                &mut centroids[range.start * ds..range.end * ds],
                &mut counts[range],
                ds,
                &mut rng,
            );
        }
        if metric == Metric::Cosine {
            normalize_rows(&mut centroids, ds);
        }
        objectives.push(step.objective);
        progress(&IterationInfo {
            iteration,
            max_iterations: options.max_iterations,
            objective: step.objective,
            empty_clusters: empty,
            seconds: start.elapsed().as_secs_f64(),
        });
        if let [.., prev, last] = objectives.as_slice() {
            let change = (prev - last).abs() / last.abs().max(f64::MIN_POSITIVE);
            if options.tolerance > 0.0 && empty == 0 && change < options.tolerance {
                break;
            }
        }
    }
    Ok(LloydResult {
        centroids,
        objectives,
    })
}

/// Re-seeds every empty cluster by splitting the currently largest one in two slightly
/// perturbed copies (Faiss's rule), so no centroid is wasted. Returns how many were empty.
fn split_empty_clusters(
    centroids: &mut [f32],
    counts: &mut [u64],
    dim: usize,
    rng: &mut Pcg64Mcg,
) -> usize {
    const EPS: f32 = 1.0 / 1024.0;
    let mut empty = 0;
    for j in 0..counts.len() {
        if counts[j] > 0 {
            continue;
        }
        empty += 1;
        let largest = (0..counts.len()).max_by_key(|&i| counts[i]).unwrap_or(0);
        if counts[largest] <= 1 {
            continue;
        }
        for d in 0..dim {
            let v = centroids[largest * dim + d];
            let (a, b) = if rng.random::<bool>() {
                (v * (1.0 + EPS), v * (1.0 - EPS))
            } else {
                (v * (1.0 - EPS), v * (1.0 + EPS))
            };
            centroids[j * dim + d] = a;
            centroids[largest * dim + d] = b;
        }
        counts[j] = counts[largest] / 2;
        counts[largest] -= counts[j];
    }
    empty
}
