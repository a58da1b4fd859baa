//! Hierarchical KMeans: many centroids for the arithmetic of few.
//!
//! A Lloyd iteration over `k` centroids costs `n·k·d` multiply-adds, so 4,096 IVF partitions
//! cost 16× what 256 do. Trained in two levels — `t ≈ √k` centroids over all rows, then each
//! top-level cluster's rows split into a share of the `k` proportional to its size — an
//! iteration costs about `2·n·√k·d`: 32× less at `k = 4096`. (Lance trains its IVF this way
//! above 256 partitions.) The price is a coarser fit: a row can only join a child of its
//! top-level cluster during training, so the centroids minimise a constrained objective.
//! Rows are still *assigned* to the nearest of all `k` centroids when the index is encoded,
//! so the index itself is an ordinary IVF; `bench/run.py build` shows what the coarser
//! centroids cost in recall.

use datafusion::error::Result;

use super::{Backend, IterationInfo, KMeansModel, KMeansParams, check_rows, train};
use crate::metric::{Metric, normalize_rows};

/// Trains `params.k` centroids on `data` in two levels (see the module documentation).
/// Each level runs `params.max_iterations` Lloyd iterations; progress counts both levels
/// (`2 × max_iterations` steps: the top level's iterations, then the children's share done).
pub fn train_hierarchical(
    backend: &dyn Backend,
    data: &[f32],
    dim: usize,
    params: &KMeansParams,
    progress: &mut dyn FnMut(&IterationInfo),
) -> Result<KMeansModel> {
    let n = check_rows(data, dim)?;
    let top = top_level(params.k);
    if top <= 1 || n < params.k {
        // Too few centroids to split, or too few rows: flat training says why.
        return train(backend, data, dim, params, progress);
    }
    let steps = params.max_iterations.saturating_mul(2);
    let top_params = KMeansParams {
        k: top,
        ..params.clone()
    };
    let mut report_top = |i: &IterationInfo| {
        progress(&IterationInfo {
            max_iterations: steps,
            ..i.clone()
        })
    };
    let coarse = train(backend, data, dim, &top_params, &mut report_top)?;
    // The rows of every top-level cluster (cosine: compared normalised, as trained).
    let assigned = if params.metric == Metric::Cosine {
        let mut copy = data.to_vec();
        normalize_rows(&mut copy, dim);
        coarse.assign(backend, &copy)?.codes
    } else {
        coarse.assign(backend, data)?.codes
    };
    let mut members: Vec<Vec<usize>> = vec![vec![]; top];
    for (row, c) in assigned.iter().enumerate() {
        members[*c as usize].push(row);
    }
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let shares = split(params.k, &sizes);

    let mut centroids = Vec::with_capacity(params.k.saturating_mul(dim));
    let mut objective = 0.0f64;
    let mut rows = vec![];
    let groups = shares.iter().filter(|s| **s > 0).count().max(1);
    let mut done = 0usize;
    for (c, (rows_of, share)) in members.iter().zip(&shares).enumerate() {
        if *share == 0 {
            continue;
        }
        rows.clear();
        for r in rows_of {
            rows.extend_from_slice(&data[r * dim..(r + 1) * dim]);
        }
        let child = KMeansParams {
            k: *share,
            seed: params.seed.wrapping_add(1 + c as u64),
            ..params.clone()
        };
        let model = train(backend, &rows, dim, &child, &mut |_| {})?;
        objective += model.objectives.last().copied().unwrap_or(0.0);
        centroids.extend_from_slice(&model.centroids);
        done += 1;
        progress(&IterationInfo {
            iteration: params.max_iterations + params.max_iterations * done / groups,
            max_iterations: steps,
            objective,
            empty_clusters: 0,
            seconds: 0.0,
        });
    }
    Ok(KMeansModel {
        dim,
        k: params.k,
        metric: params.metric,
        centroids,
        // The children's objectives together: the sum over all rows of the distance to
        // their centroid within their top-level cluster.
        objectives: vec![objective],
    })
}

/// Top-level centroids for `k` in all: `√k` rounded, so both levels have about as many.
fn top_level(k: usize) -> usize {
    ((k as f64).sqrt().round() as usize).clamp(1, k)
}

/// Splits `k` centroids among clusters of `sizes` rows in proportion to their size (largest
/// remainders first), every non-empty cluster getting at least one and none more than its
/// rows. Needs `k ≤ Σ sizes` and at most `k` non-empty clusters; the shares sum to `k`.
fn split(k: usize, sizes: &[usize]) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    let mut shares: Vec<usize> = sizes
        .iter()
        .map(|s| {
            let exact = (*s as u128 * k as u128 / n.max(1) as u128) as usize;
            if *s == 0 { 0 } else { exact.clamp(1, *s) }
        })
        .collect();
    // Hand out (or take back) the difference one centroid at a time, by remainder.
    let remainder = |i: usize| sizes[i] as u128 * k as u128 % n.max(1) as u128;
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|a, b| remainder(*b).cmp(&remainder(*a)).then(a.cmp(b)));
    let mut total: usize = shares.iter().sum();
    while total < k {
        let before = total;
        for &i in &order {
            if total < k && shares[i] < sizes[i] {
                shares[i] += 1;
                total += 1;
            }
        }
        if total == before {
            break; // every cluster is full: k > Σ sizes, refused by the caller
        }
    }
    while total > k {
        let before = total;
        for &i in order.iter().rev() {
            if total > k && shares[i] > 1 {
                shares[i] -= 1;
                total -= 1;
            }
        }
        if total == before {
            break; // one each already: more non-empty clusters than k
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::cpu::CpuBackend;

    #[test]
    fn shares_follow_cluster_sizes_and_sum_to_k() {
        assert_eq!(split(10, &[50, 30, 20]), vec![5, 3, 2]);
        assert_eq!(split(4, &[1, 1, 100]), vec![1, 1, 2]);
        assert_eq!(split(6, &[0, 3, 3]), vec![0, 3, 3]);
        // No cluster gets more centroids than rows.
        assert_eq!(split(5, &[1, 100, 4]), vec![1, 3, 1]);
        for (k, sizes) in [
            (4096, vec![100usize; 64]),
            (64, vec![1, 2, 3, 500, 7, 9, 11, 13]),
            (7, vec![2, 2, 2, 2]),
        ] {
            let s = split(k, &sizes);
            assert_eq!(s.iter().sum::<usize>(), k, "{k} {sizes:?}");
            assert!(
                s.iter()
                    .zip(&sizes)
                    .all(|(a, b)| a <= b && (*b == 0 || *a >= 1))
            );
        }
    }

    #[test]
    fn hierarchical_centroids_fit_clustered_data_almost_as_well_as_flat_ones() {
        // 64 well-separated clusters in 16 dimensions, 40 rows each.
        let (dim, clusters, per) = (16, 64, 40);
        let mut data = vec![];
        let mut state = 7u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for c in 0..clusters {
            let centre: Vec<f32> = (0..dim).map(|d| ((c * 31 + d * 7) % 17) as f32).collect();
            for _ in 0..per {
                data.extend(centre.iter().map(|x| x + 0.05 * noise()));
            }
        }
        let mut params = KMeansParams::new(clusters);
        params.max_iterations = 20;
        let backend = CpuBackend;
        let mut steps = vec![];
        let model = train_hierarchical(&backend, &data, dim, &params, &mut |i| {
            steps.push(i.iteration)
        })
        .unwrap();
        assert_eq!((model.k, model.centroids.len()), (clusters, clusters * dim));
        // Progress runs over both levels and ends at its total.
        assert_eq!(steps.last(), Some(&40));
        let flat = train(&backend, &data, dim, &params, &mut |_| {}).unwrap();
        let mse = |m: &KMeansModel| {
            m.assign(&backend, &data)
                .unwrap()
                .distances
                .iter()
                .map(|d| *d as f64)
                .sum::<f64>()
                / (clusters * per) as f64
        };
        let (h, f) = (mse(&model), mse(&flat));
        assert!(h <= f * 1.5 + 1e-3, "hierarchical {h} vs flat {f}");
    }
}
