//! Tests of KMeans training on both backends (the candle backend runs on the CPU device).

use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;

use super::candle_backend::CandleBackend;
use super::cpu::CpuBackend;
use super::pq::{PqParams, ProductQuantizer};
use super::*;

/// `per` points around each of `centres` (row-major), spread `sigma`.
fn blobs(centres: &[f32], dim: usize, per: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut out = vec![];
    for _ in 0..per {
        for c in centres.chunks(dim) {
            out.extend(
                c.iter()
                    .map(|m| m + sigma * rng.sample::<f32, _>(StandardNormal)),
            );
        }
    }
    out
}

fn far_centres(k: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    (0..k * dim)
        .map(|_| rng.random_range(-20.0..20.0))
        .collect()
}

fn backends() -> Vec<Box<dyn Backend>> {
    vec![
        Box::new(CpuBackend),
        Box::new(CandleBackend::new(Device::Cpu, "candle-cpu", 1 << 20)),
    ]
}

fn quiet() -> impl FnMut(&IterationInfo) {
    |_| {}
}

#[test]
fn recovers_known_centres_on_separable_clusters() {
    let (k, dim) = (8, 16);
    let centres = far_centres(k, dim, 1);
    let data = blobs(&centres, dim, 200, 0.5, 2);
    for backend in backends() {
        let mut params = KMeansParams::new(k);
        params.init = Init::KMeansPlusPlus;
        let model = train(backend.as_ref(), &data, dim, &params, &mut quiet()).unwrap();
        for c in centres.chunks(dim) {
            let nearest = model
                .centroids
                .chunks(dim)
                .map(|m| vecfusion_kernels::distance::l2_squared(c, m))
                .fold(f32::MAX, f32::min);
            // The mean of 200 points with σ = 0.5 is within ~0.04 per dimension.
            assert!(
                nearest < 0.2,
                "{}: centre missed by {nearest}",
                backend.name()
            );
        }
    }
}

#[test]
fn same_seed_same_centroids_and_engines_agree() {
    let (k, dim) = (16, 12);
    let data = blobs(&far_centres(k, dim, 3), dim, 200, 2.0, 4);
    let mut params = KMeansParams::new(k);
    params.max_iterations = 10;
    params.tolerance = 0.0;
    let a = train(&CpuBackend, &data, dim, &params, &mut quiet()).unwrap();
    let b = train(&CpuBackend, &data, dim, &params, &mut quiet()).unwrap();
    assert_eq!(a.centroids, b.centroids);
    // Chunked (a tiny budget: many chunks) and unchunked candle runs, and the CPU backend,
    // take the same path to within float rounding.
    let small = CandleBackend::new(Device::Cpu, "small", 64 << 10);
    let large = CandleBackend::new(Device::Cpu, "large", 1 << 30);
    assert!(small.chunk_rows(Layout::coarse(dim, k)) < data.len() / dim / 4);
    let c = train(&small, &data, dim, &params, &mut quiet()).unwrap();
    let d = train(&large, &data, dim, &params, &mut quiet()).unwrap();
    for (x, y) in [(&a, &c), (&c, &d)] {
        for (u, v) in x.centroids.iter().zip(&y.centroids) {
            assert!((u - v).abs() < 1e-3, "{u} vs {v}");
        }
        let (ox, oy) = (x.objectives.last().unwrap(), y.objectives.last().unwrap());
        assert!((ox - oy).abs() / ox < 1e-4);
    }
}

#[test]
fn the_gpu_budget_is_a_share_of_free_memory_capped_by_the_option() {
    use super::candle_backend::{DEFAULT_MEMORY_BUDGET_BYTES, memory_budget};
    let gib = 1usize << 30;
    // No word from the device (Metal, the CPU device) and no cap: the fixed default.
    assert_eq!(memory_budget(None, None), DEFAULT_MEMORY_BUDGET_BYTES);
    // 80 % of what is free; the option caps it, never raises it.
    assert_eq!(memory_budget(Some(10 * gib), None), 8 * gib);
    assert_eq!(memory_budget(Some(10 * gib), Some(gib)), gib);
    assert_eq!(
        memory_budget(Some(gib), Some(10 * gib)),
        (gib as f64 * 0.8) as usize
    );
    assert_eq!(memory_budget(None, Some(5 << 20)), 5 << 20);
    assert_eq!(memory_budget(Some(0), None), 1);
}

#[test]
fn a_sample_that_fits_stays_on_the_device_and_a_larger_one_streams() {
    let (k, dim, iterations) = (16, 12, 6);
    let data = blobs(&far_centres(k, dim, 3), dim, 200, 2.0, 4);
    let (rows, data_bytes) = (data.len() / dim, (data.len() * 4) as u64);
    let mut params = KMeansParams::new(k);
    params.max_iterations = iterations;
    params.tolerance = 0.0;

    // 1 MiB holds the 150 KiB sample beside its score matrices: uploaded once, kept.
    let fits = CandleBackend::new(Device::Cpu, "fits", 1 << 20);
    let plan = fits.plan(rows, Layout::coarse(dim, k), true);
    assert!(plan.resident && plan.chunk_rows >= rows, "{plan:?}");
    let a = train(&fits, &data, dim, &params, &mut quiet()).unwrap();
    assert_eq!(a.objectives.len(), iterations);
    assert_eq!(fits.device_memory().unwrap().uploaded_bytes, data_bytes);
    assert_eq!(fits.resident_bytes(), Some(data.len() * 4));

    // 64 KiB is less than the sample itself (data larger than the device): every iteration
    // streams it in chunks, and nothing stays behind.
    let streams = CandleBackend::new(Device::Cpu, "streams", 64 << 10);
    let plan = streams.plan(rows, Layout::coarse(dim, k), true);
    assert!(!plan.resident && plan.chunk_rows < rows / 4, "{plan:?}");
    let b = train(&streams, &data, dim, &params, &mut quiet()).unwrap();
    let uploaded = streams.device_memory().unwrap().uploaded_bytes;
    assert_eq!(uploaded, iterations as u64 * data_bytes);
    assert_eq!(streams.resident_bytes(), None);

    // Both paths train the same centroids.
    for (u, v) in a.centroids.iter().zip(&b.centroids) {
        assert!((u - v).abs() < 1e-3, "{u} vs {v}");
    }
    // A pass over other rows (an encode) releases the kept sample.
    let other = data[..64 * dim].to_vec();
    fits.assign(&other, Layout::coarse(dim, k), &a.centroids, Metric::L2)
        .unwrap();
    assert_eq!(fits.resident_bytes(), None);
    // The CPU backend works in host memory and reports no device.
    assert!(CpuBackend.device_memory().is_none());
}

#[test]
fn empty_clusters_are_reseeded_by_splitting_the_largest() {
    let dim = 4;
    let data = blobs(&far_centres(4, dim, 5), dim, 100, 0.3, 6);
    // Three of four starting centroids lie far from every point: they start empty.
    let mut init = data[..dim].to_vec();
    init.extend(std::iter::repeat_n(1e4f32, 3 * dim));
    let mut seen_empty = 0;
    let result = lloyd::lloyd(
        &CpuBackend,
        &data,
        Layout::coarse(dim, 4),
        init,
        Metric::L2,
        LloydOptions {
            max_iterations: 30,
            tolerance: 0.0,
            seed: 1,
            cancel: Default::default(),
        },
        &mut |i: &IterationInfo| seen_empty += i.empty_clusters,
    )
    .unwrap();
    assert!(seen_empty >= 3);
    let final_step = CpuBackend
        .step(&data, Layout::coarse(dim, 4), &result.centroids, Metric::L2)
        .unwrap();
    assert!(
        final_step.counts.iter().all(|c| *c > 0),
        "{:?}",
        final_step.counts
    );
    // It ends at the four true clusters: the objective is about n · dim · σ².
    let per_point = final_step.objective / 400.0;
    assert!(per_point < 4.0 * 0.3 * 0.3 * 1.5, "{per_point}");
}

#[test]
fn cosine_keeps_centroids_on_the_sphere_and_dot_prefers_long_vectors() {
    let dim = 8;
    let data = blobs(&far_centres(4, dim, 7), dim, 50, 1.0, 8);
    let mut params = KMeansParams::new(4);
    params.metric = Metric::Cosine;
    for backend in backends() {
        let model = train(backend.as_ref(), &data, dim, &params, &mut quiet()).unwrap();
        for c in model.centroids.chunks(dim) {
            let norm = vecfusion_kernels::distance::norm_squared(c).sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
    }
    // Dot: a row is assigned to the centroid with the largest inner product, not the closest.
    let centroids = vec![1.0, 0.0, 10.0, 0.0];
    let rows = vec![1.0, 0.0];
    for backend in backends() {
        let a = backend
            .assign(&rows, Layout::coarse(2, 2), &centroids, Metric::Dot)
            .unwrap();
        assert_eq!(a.codes, vec![1]);
        assert_eq!(a.distances, vec![-10.0]);
    }
}

#[test]
fn bad_input_is_refused_with_reasons() {
    let p = KMeansParams::new(10);
    let err = train(&CpuBackend, &[0.0; 8], 4, &p, &mut quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs at least 10 rows, got 2"), "{err}");
    let err = train(&CpuBackend, &[], 4, &p, &mut quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("got 0"), "{err}");
    let mut nan = vec![0.0; 80];
    nan[45] = f32::NAN;
    let err = train(&CpuBackend, &nan, 4, &KMeansParams::new(2), &mut quiet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 11") && err.contains("non-finite"),
        "{err}"
    );
    let err = train(
        &CpuBackend,
        &[0.0; 10],
        4,
        &KMeansParams::new(1),
        &mut quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("not a whole number of 4-dimensional rows"),
        "{err}"
    );
    if !cfg!(feature = "cuda") {
        assert!(Accelerator::from_spec("cuda").is_err());
    }
}

#[test]
fn product_quantizer_reconstructs_well_below_the_data_variance() {
    let dim = 32;
    let data = blobs(&far_centres(20, dim, 9), dim, 100, 1.0, 10);
    let params = PqParams {
        num_sub_vectors: 8,
        num_bits: 8,
        max_iterations: 20,
        tolerance: 0.0,
        seed: 1,
        cancel: Default::default(),
    };
    for backend in backends() {
        let pq =
            ProductQuantizer::train(backend.as_ref(), &data, dim, &params, &mut |_| {}).unwrap();
        let codes = pq.encode(backend.as_ref(), &data).unwrap();
        assert_eq!(codes.len(), data.len() / dim * 8);
        let decoded = pq.decode(&codes);
        let err: f64 = data
            .iter()
            .zip(&decoded)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / data.len() as f64;
        let mean: f64 = data.iter().map(|v| *v as f64).sum::<f64>() / data.len() as f64;
        let var: f64 =
            data.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / data.len() as f64;
        assert!(
            err < var * 0.05,
            "{}: mse {err} vs variance {var}",
            backend.name()
        );
    }
    let err = ProductQuantizer::train(
        &CpuBackend,
        &data,
        dim,
        &PqParams {
            num_sub_vectors: 5,
            ..params.clone()
        },
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("32 % 5 != 0") && err.contains("1, 2, 4, 8, 16, 32"),
        "{err}"
    );
}

#[test]
fn a_cancelled_token_stops_training_before_the_next_iteration() {
    let dim = 8;
    let data = blobs(&far_centres(4, dim, 3), dim, 50, 1.0, 5);
    let (cancel, guard) = crate::kmeans::Cancel::on_drop();
    let mut params = KMeansParams::new(4);
    params.tolerance = 0.0;
    params.max_iterations = 100;
    params.cancel = cancel;
    let mut seen = 0;
    let mut guard = Some(guard);
    let err = train(
        &CpuBackend,
        &data,
        dim,
        &params,
        &mut |i: &IterationInfo| {
            seen = i.iteration;
            if i.iteration == 3 {
                guard.take(); // what dropping the statement's future does
            }
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cancelled (after 3 iterations)"), "{err}");
    assert_eq!(seen, 3);
}
