//! `build`: one timed `CREATE VECTOR INDEX` on a dataset made by `load`, in its own process so
//! that its peak RSS is the build's.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::Result;
use serde_json::{Map, Value};
use vecfusion::VecfusionContext;

use crate::table::session_with_table;

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(long)]
    dataset: PathBuf,
    /// The WITH (...) options and USING kind, e.g. "USING IVF_PQ WITH (num_partitions = 256)".
    #[arg(long)]
    index: String,
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `CREATE VECTOR INDEX bench_idx ON t (embedding) <index>` and prints its result row
/// plus wall seconds and peak RSS as JSON.
pub async fn build(args: BuildArgs) -> Result<()> {
    let ctx = session_with_table(&args.dataset, None).await?;
    let start = Instant::now();
    let batches = ctx
        .vf_sql(&format!(
            "CREATE VECTOR INDEX bench_idx ON t (embedding) {}",
            args.index
        ))
        .await?
        .collect()
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    let mut row = Map::new();
    let options = FormatOptions::default();
    for b in &batches {
        for (f, c) in b.schema().fields().iter().zip(b.columns()) {
            let text = ArrayFormatter::try_new(c.as_ref(), &options)?
                .value(0)
                .to_string();
            let value = text
                .parse::<f64>()
                .map(Value::from)
                .unwrap_or(Value::String(text));
            row.insert(f.name().clone(), value);
        }
    }
    row.insert("wall_seconds".into(), seconds.into());
    row.insert("peak_rss_mb".into(), peak_rss_mb().into());
    // Leave the dataset as it was for the next repetition.
    ctx.vf_sql("DROP VECTOR INDEX bench_idx ON t")
        .await?
        .collect()
        .await?;
    println!("{}", Value::Object(row));
    Ok(())
}
