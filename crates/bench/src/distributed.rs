//! `distributed`: the same `CREATE VECTOR INDEX` in-process and on local clusters of 1 and 2
//! executors (`vecfusion-scheduler` / `vecfusion-executor` from this binary's directory), on
//! one dataset: what running on a cluster costs over running in the client, and, on a
//! cluster, each stage of the build (its tasks, its slowest task, the bytes it hands on) from
//! the executors' logs and work directories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::arrow::util::pretty::pretty_format_batches;
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

/// One JSON line per timed build: `executors`, `rep`, `wall_seconds`, the statement's result
/// row (seconds per phase) and, on a cluster, `stages`: per stage its name, tasks, slowest
/// task and the bytes it wrote for the next.
pub async fn run(args: DistributedArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().expect("a binary lives in a directory");
    for &executors in &args.executors {
        // Kept alive while its session is used.
        let (ctx, cluster) = session(bin, executors, args.vcores).await?;
        if executors > 0 {
            // A partition per task slot of the cluster, so that every executor gets work.
            let slots = executors * args.vcores;
            let set = format!("SET datafusion.execution.target_partitions = {slots}");
            sql(&ctx, &set).await?;
        }
        sql(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}'",
                args.dataset.display()
            ),
        )
        .await?;
        let build = format!(
            "CREATE VECTOR INDEX bench_idx ON t (embedding) {}",
            with_replace(&args.index)
        );
        let names = match &cluster {
            Some(_) => {
                let plan = sql(&ctx, &format!("EXPLAIN {build}")).await?;
                stage_names(&pretty_format_batches(&plan)?.to_string())
            }
            None => BTreeMap::new(),
        };
        for rep in 0..args.repeat {
            let before = cluster.as_ref().map(jobs).unwrap_or_default();
            let start = Instant::now();
            let batches = sql(&ctx, &build).await?;
            let seconds = start.elapsed().as_secs_f64();
            let mut row = first_row_json(&batches)?;
            row.insert("executors".into(), json!(executors));
            row.insert("rep".into(), json!(rep));
            row.insert("wall_seconds".into(), json!(seconds));
            if let Some(cluster) = &cluster {
                row.insert("stages".into(), stages(cluster, &before, &names));
            }
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

/// Stage ids of a distributed `EXPLAIN` of a build, named for the build exec each runs.
fn stage_names(explained: &str) -> BTreeMap<usize, String> {
    let execs = [
        ("IndexSampleExec", "sample"),
        ("IndexTrainExec", "train"),
        ("IndexEncodeExec", "encode"),
        ("IndexCommitExec", "commit"),
    ];
    explained
        .split("Stage[stage_id=")
        .skip(1)
        .filter_map(|stage| {
            let id = stage.split('.').next()?.parse().ok()?;
            let (_, name) = execs.iter().find(|(exec, _)| stage.contains(exec))?;
            Some((id, name.to_string()))
        })
        .collect()
}

/// Jobs the executors of `cluster` have run tasks of.
fn jobs(cluster: &LocalCluster) -> BTreeSet<String> {
    cluster
        .finished_tasks()
        .into_iter()
        .map(|t| t.job)
        .collect()
}

/// The stages of the one job `cluster` ran that is not among `before`.
fn stages(
    cluster: &LocalCluster,
    before: &BTreeSet<String>,
    names: &BTreeMap<usize, String>,
) -> Value {
    let tasks = cluster.finished_tasks();
    let mut by_stage: BTreeMap<usize, (Vec<f64>, u64)> = BTreeMap::new();
    for t in tasks.iter().filter(|t| !before.contains(&t.job)) {
        let entry = by_stage.entry(t.stage).or_default();
        entry.0.push(t.seconds);
        entry.1 += t.bytes_out;
    }
    by_stage
        .into_iter()
        .map(|(stage, (seconds, bytes))| {
            json!({
                "stage": stage,
                "name": names.get(&stage).map_or("?", String::as_str),
                "tasks": seconds.len(),
                "slowest_task_seconds": seconds.iter().copied().fold(0.0, f64::max),
                "task_seconds": seconds,
                "bytes_out": bytes,
            })
        })
        .collect()
}
