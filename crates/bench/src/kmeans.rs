//! `kmeans`: vecfusion's KMeans on a `.npy` training set, timed per iteration, with the
//! assignment step's achieved GFLOP/s. `bench/kmeans.py` runs faiss on the same file and
//! computes both models' objective on the full data.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::error::Result;
use serde_json::json;
use vecfusion::kmeans::{Accelerator, KMeansParams, Layout, backend_for, train};

use crate::npy;
use crate::report::{append_jsonl, median};

#[derive(Debug, Args)]
pub struct KMeansArgs {
    /// Training rows (float32 .npy, rows × dim).
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    k: usize,
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    #[arg(long, default_value = "cpu")]
    accelerator: String,
    /// Caps the GPU memory the candle backend plans for (default: a share of the free memory).
    #[arg(long)]
    gpu_memory_budget_mb: Option<usize>,
    /// Where to write the centroids (.npy).
    #[arg(long)]
    centroids_out: Option<PathBuf>,
    /// Dataset label for the results.
    #[arg(long, default_value = "")]
    label: String,
    #[arg(long, default_value = "bench/results/kmeans.jsonl")]
    out: PathBuf,
}

pub async fn run(args: KMeansArgs) -> Result<()> {
    let (data, n, dim) = npy::read_f32(&args.data)?;
    let accelerator = Accelerator::from_spec(&args.accelerator)?;
    let budget = args
        .gpu_memory_budget_mb
        .map(|mb| mb.saturating_mul(1 << 20));
    let backend = backend_for(&accelerator, budget);
    let mut params = KMeansParams::new(args.k);
    params.max_iterations = args.iterations;
    params.tolerance = 0.0;
    params.seed = args.seed;
    let mut per_iteration = vec![];
    let start = Instant::now();
    let model = train(backend.as_ref(), &data, dim, &params, &mut |i| {
        per_iteration.push(i.seconds)
    })?;
    let total = start.elapsed().as_secs_f64();
    // The assignment step alone (the GEMM + argmin), best of three.
    let layout = Layout::coarse(dim, args.k);
    let mut assign = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        backend.assign(&data, layout, &model.centroids, model.metric)?;
        assign = assign.min(t.elapsed().as_secs_f64());
    }
    let gflops = 2.0 * n as f64 * args.k as f64 * dim as f64 / assign / 1e9;
    if let Some(path) = &args.centroids_out {
        npy::write_f32(path, &model.centroids, args.k, dim)?;
    }
    let row = json!({
        "bench": "kmeans", "backend": "vecfusion", "dataset": args.label, "device": backend.name(),
        "n": n, "dim": dim, "k": args.k, "iterations": model.objectives.len(),
        "seconds_total": total, "seconds_per_iteration_median": median(&per_iteration),
        "assign_seconds": assign, "assign_gflops": gflops,
        "objective_last": model.objectives.last(), "threads": rayon::current_num_threads(),
        "device_memory_budget_bytes": backend.device_memory().map(|d| d.budget_bytes),
        "device_bytes_uploaded": backend.device_memory().map(|d| d.uploaded_bytes),
    });
    println!("{row}");
    append_jsonl(&args.out, &[row])
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    Ok(())
}
