//! `search`: recall@k and latency of vecfusion's ANN search on a dataset made by `load`, per
//! (nprobes, refine_factor): single-query latency through the Rust API (one thread) and
//! through SQL (`ORDER BY l2_distance(...) LIMIT k`), and batched throughput.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::error::{DataFusionError, Result};
use serde_json::json;
use vecfusion::dataset::{Dataset, DatasetLocation};
use vecfusion::search::{SearchParams, search};
use vecfusion::udf::DistanceFunction;
use vecfusion::{VecfusionContext, new_session_context};

use crate::npy;

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[arg(long)]
    dataset: PathBuf,
    /// Queries (float32 .npy).
    #[arg(long)]
    queries: PathBuf,
    /// Ground truth: row ids of the exact neighbours (float32 .npy written by the harness).
    #[arg(long)]
    groundtruth: PathBuf,
    /// Index to build first if the dataset has none, e.g. "USING IVF_PQ WITH (...)".
    #[arg(long)]
    index: String,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value = "1,5,10,20,50")]
    nprobes: String,
    #[arg(long, default_value = "1,10")]
    refine: String,
    /// Queries timed through SQL (it is slower to run; a subset is enough for a median).
    #[arg(long, default_value_t = 200)]
    sql_queries: usize,
}

fn list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|e| DataFusionError::Execution(format!("{v}: {e}")))
        })
        .collect()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub async fn run(args: SearchArgs) -> Result<()> {
    let (queries, nq, dim) = npy::read_f32(&args.queries)?;
    let (gt, _, gt_k) = npy::read_f32(&args.groundtruth)?;
    let ctx = new_session_context();
    ctx.vf_sql(&format!(
        "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}'",
        args.dataset.display()
    ))
    .await?
    .collect()
    .await?;
    let mut dataset = Dataset::open(DatasetLocation::local(&args.dataset)?).await?;
    let mut build_seconds = 0.0;
    if dataset.manifest().indexes.is_empty() {
        let t = Instant::now();
        ctx.vf_sql(&format!(
            "CREATE VECTOR INDEX idx ON t (embedding) {}",
            args.index
        ))
        .await?
        .collect()
        .await?;
        build_seconds = t.elapsed().as_secs_f64();
        dataset = dataset.checkout_latest().await?;
    }
    let column = dataset.schema().index_of("embedding")?;
    let dataset = Arc::new(dataset);
    let q = |i: usize| &queries[i * dim..(i + 1) * dim];
    let recall_of = |i: usize, ids: &[i64]| {
        let truth: std::collections::HashSet<i64> = gt[i * gt_k..i * gt_k + args.k]
            .iter()
            .map(|v| *v as i64)
            .collect();
        ids.iter().filter(|id| truth.contains(id)).count() as f64 / args.k as f64
    };
    for refine in list(&args.refine)? {
        for nprobes in list(&args.nprobes)? {
            let params = SearchParams {
                k: args.k,
                nprobes,
                refine_factor: refine,
                use_index: true,
            };
            // One query at a time through the Rust API: search + fetch the ids.
            let mut latencies = Vec::with_capacity(nq);
            let mut recall = 0.0;
            for i in 0..nq {
                let t = Instant::now();
                let found =
                    search(&dataset, column, DistanceFunction::L2, q(i), params, None).await?;
                let rows = dataset.take(&found.addresses, Some(&[0])).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                let ids = rows.column(0).as_primitive::<Int64Type>().values().to_vec();
                recall += recall_of(i, &ids);
            }
            // Batched: every query, two at a time (the machine's cores).
            let t = Instant::now();
            let mut tasks = vec![];
            for w in 0..2 {
                let ds = dataset.clone();
                let queries = queries.clone();
                tasks.push(tokio::spawn(async move {
                    for i in (w..nq).step_by(2) {
                        let v = &queries[i * dim..(i + 1) * dim];
                        let found =
                            search(&ds, column, DistanceFunction::L2, v, params, None).await?;
                        ds.take(&found.addresses, Some(&[0])).await?;
                    }
                    Ok::<_, DataFusionError>(())
                }));
            }
            for t in tasks {
                t.await
                    .map_err(|e| DataFusionError::External(Box::new(e)))??;
            }
            let qps = nq as f64 / t.elapsed().as_secs_f64();
            // Through SQL.
            ctx.vf_sql(&format!("SET vecfusion.nprobes = {nprobes}"))
                .await?
                .collect()
                .await?;
            ctx.vf_sql(&format!("SET vecfusion.refine_factor = {refine}"))
                .await?
                .collect()
                .await?;
            let mut sql_lat = vec![];
            for i in 0..args.sql_queries.min(nq) {
                let lit: Vec<String> = q(i).iter().map(|v| format!("{v:?}")).collect();
                let text = format!(
                    "SELECT id FROM t ORDER BY l2_distance(embedding, [{}]) LIMIT {}",
                    lit.join(","),
                    args.k
                );
                let t = Instant::now();
                ctx.vf_sql(&text).await?.collect().await?;
                sql_lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let row = json!({
                "nprobes": nprobes, "refine_factor": refine, "recall": recall / nq as f64,
                "p50_ms": percentile(&mut latencies, 0.5), "p99_ms": percentile(&mut latencies, 0.99),
                "sql_p50_ms": percentile(&mut sql_lat, 0.5), "qps_batch": qps,
                "build_seconds": build_seconds,
            });
            println!("{row}");
        }
    }
    Ok(())
}
