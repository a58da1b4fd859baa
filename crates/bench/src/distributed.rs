//! `distributed`: the same `CREATE VECTOR INDEX` in-process and on local clusters of 1 and 2
//! executors (`vecfusion-scheduler` / `vecfusion-executor` from this binary's directory), on
//! one dataset: what running on a cluster costs over running in the client.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};
use vecfusion::new_session_context;
use vecfusion_cluster::local::LocalCluster;
use vecfusion_cluster::remote_session_context;

use crate::report::first_row_json;
use crate::table::sql;

#[derive(Debug, Args)]
pub struct DistributedArgs {
    #[arg(long)]
    dataset: PathBuf,
    /// The USING kind and WITH (...) options, e.g. "USING IVF_PQ WITH (num_partitions = 1024)".
    #[arg(long)]
    index: String,
    /// Executor counts to run on; 0 is the in-process session.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    executors: Vec<usize>,
    /// Task slots per executor.
    #[arg(long, default_value_t = 2)]
    vcores: usize,
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

/// One JSON line per timed build: `executors`, `rep`, `wall_seconds` and the statement's
/// result row (seconds per phase).
pub async fn run(args: DistributedArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().expect("a binary lives in a directory");
    for &executors in &args.executors {
        // Kept alive while its session is used.
        let (ctx, _cluster) = session(bin, executors, args.vcores).await?;
        sql(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}'",
                args.dataset.display()
            ),
        )
        .await?;
        for rep in 0..args.repeat {
            let start = Instant::now();
            let batches = sql(
                &ctx,
                &format!(
                    "CREATE VECTOR INDEX bench_idx ON t (embedding) {}",
                    with_replace(&args.index)
                ),
            )
            .await?;
            let seconds = start.elapsed().as_secs_f64();
            let mut row = first_row_json(&batches)?;
            row.insert("executors".into(), json!(executors));
            row.insert("rep".into(), json!(rep));
            row.insert("wall_seconds".into(), json!(seconds));
            println!("{}", Value::Object(row));
        }
        sql(&ctx, "DROP VECTOR INDEX bench_idx ON t").await?;
    }
    Ok(())
}

async fn session(
    bin: &std::path::Path,
    executors: usize,
    vcores: usize,
) -> Result<(SessionContext, Option<LocalCluster>)> {
    if executors == 0 {
        return Ok((new_session_context(), None));
    }
    let cluster = LocalCluster::start(bin, executors, vcores)?;
    let ctx = remote_session_context(&cluster.url()).await?;
    Ok((ctx, Some(cluster)))
}

/// `index` with `replace = true` added to its WITH options, so every repetition builds anew.
fn with_replace(index: &str) -> String {
    match index.rfind(')') {
        Some(end) => format!("{}, replace = true)", &index[..end]),
        None => format!("{index} WITH (replace = true)"),
    }
}
