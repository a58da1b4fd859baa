//! `build`: one timed `CREATE VECTOR INDEX` on a dataset made by `load`, in its own process so
//! that its peak RSS is the build's.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use vecfusion::kmeans::{Accelerator, KMeansParams, backend_for, train};

use crate::report::{first_row_json, peak_rss_mb};
use crate::table::{session_with_table, sql};

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(long)]
    dataset: PathBuf,
    /// The WITH (...) options and USING kind, e.g. "USING IVF_PQ WITH (num_partitions = 256)".
    #[arg(long)]
    index: String,
    /// Keep the index (by default it is dropped, leaving the dataset as it was for the next
    /// repetition).
    #[arg(long)]
    keep: bool,
    /// Open this accelerator and run a small KMeans of the table's dimension on it before the
    /// timed build, so the device's start-up (a CUDA context, candle's kernel modules) is
    /// paid and reported apart (`seconds_warmup`); the build then reuses the open device.
    #[arg(long)]
    warmup: Option<String>,
}

/// Runs `CREATE VECTOR INDEX bench_idx ON t (embedding) <index>` and prints its result row
/// plus wall seconds and peak RSS as JSON.
pub async fn build(args: BuildArgs) -> Result<()> {
    let ctx = session_with_table(&args.dataset, None).await?;
    let warmup = match &args.warmup {
        Some(accelerator) => Some(warm_up(accelerator, vector_dim(&ctx).await?)?),
        None => None,
    };
    let start = Instant::now();
    let batches = sql(
        &ctx,
        &format!(
            "CREATE VECTOR INDEX bench_idx ON t (embedding) {}",
            args.index
        ),
    )
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    let mut row = first_row_json(&batches)?;
    row.insert("wall_seconds".into(), seconds.into());
    row.insert("peak_rss_mb".into(), peak_rss_mb().into());
    row.insert("seconds_warmup".into(), warmup.into());
    if !args.keep {
        sql(&ctx, "DROP VECTOR INDEX bench_idx ON t").await?;
    }
    println!("{}", Value::Object(row));
    Ok(())
}

/// The dimension of `t.embedding`.
async fn vector_dim(ctx: &SessionContext) -> Result<usize> {
    let schema = ctx.table("t").await?.schema().as_arrow().clone();
    match schema.field_with_name("embedding")?.data_type() {
        DataType::FixedSizeList(_, d) => Ok(*d as usize),
        other => plan_err!("t.embedding is {other}, not a vector column"),
    }
}

/// Opens `accelerator` and trains 64 centroids on 4,096 random rows of `dim` values for two
/// iterations, then assigns them: the operations a build runs, so every kernel it needs is
/// loaded. Returns the seconds it took.
fn warm_up(accelerator: &str, dim: usize) -> Result<f64> {
    let start = Instant::now();
    let accelerator = Accelerator::from_spec(accelerator)?;
    let backend = backend_for(&accelerator, None);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    let rows: Vec<f32> = (0..4096 * dim).map(|_| rng.random::<f32>()).collect();
    let mut params = KMeansParams::new(64);
    params.max_iterations = 2;
    params.tolerance = 0.0;
    let model = train(backend.as_ref(), &rows, dim, &params, &mut |_| {})?;
    model.assign(backend.as_ref(), &rows)?;
    Ok(start.elapsed().as_secs_f64())
}
