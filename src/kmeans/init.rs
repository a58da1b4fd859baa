//! Initial centroids: seeded random rows (Faiss's default) or k-means++.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;
use vecfusion_kernels::distance::l2_squared;

use super::backend::Layout;

/// How the first centroids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// `k` distinct rows drawn uniformly (the same rows for every sub-space).
    Random,
    /// k-means++ (D² sampling): better starts, but `k` sequential passes over the data, so it
    /// costs about one Lloyd iteration of memory traffic per 16 centroids. Coarse quantizer only.
    KMeansPlusPlus,
}

/// `k` distinct random rows, copied as the centroids of every sub-space.
pub fn random_rows(data: &[f32], layout: Layout, seed: u64) -> Vec<f32> {
    let n = data.len() / layout.dim;
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let rows = sample(&mut rng, n, layout.k).into_vec();
    let ds = layout.sub_dim();
    let mut out = Vec::with_capacity(layout.centroid_len());
    for s in 0..layout.subspaces {
        for &r in &rows {
            let start = r * layout.dim + s * ds;
            out.extend_from_slice(&data[start..start + ds]);
        }
    }
    out
}

/// k-means++ over whole rows (one sub-space).
pub fn kmeans_plus_plus(data: &[f32], dim: usize, k: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.random_range(0..n);
    centroids.extend_from_slice(&data[first * dim..(first + 1) * dim]);
    let mut closest = vec![f32::INFINITY; n];
    for _ in 1..k {
        let last = &centroids[centroids.len() - dim..];
        closest
            .par_iter_mut()
            .zip(data.par_chunks_exact(dim))
            .for_each(|(best, row)| *best = best.min(l2_squared(row, last)));
        let total: f64 = closest.iter().map(|d| *d as f64).sum();
        let pick = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            let mut chosen = n - 1;
            for (i, d) in closest.iter().enumerate() {
                target -= *d as f64;
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            rng.random_range(0..n)
        };
        centroids.extend_from_slice(&data[pick * dim..(pick + 1) * dim]);
    }
    centroids
}
