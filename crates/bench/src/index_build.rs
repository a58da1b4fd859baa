//! `build`: one timed `CREATE VECTOR INDEX` on a dataset made by `load`, in its own process so
//! that its peak RSS is the build's.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::error::Result;
use serde_json::Value;

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
}

/// Runs `CREATE VECTOR INDEX bench_idx ON t (embedding) <index>` and prints its result row
/// plus wall seconds and peak RSS as JSON.
pub async fn build(args: BuildArgs) -> Result<()> {
    let ctx = session_with_table(&args.dataset, None).await?;
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
    if !args.keep {
        sql(&ctx, "DROP VECTOR INDEX bench_idx ON t").await?;
    }
    println!("{}", Value::Object(row));
    Ok(())
}
