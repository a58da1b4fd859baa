//! `search`: recall@k and latency of vecfusion's ANN search on a dataset made by `load`, per
//! (nprobes, refine_factor): single-query latency through the Rust API (one thread) and
//! through SQL (`ORDER BY l2_distance(...) LIMIT k`, as text and as a prepared statement), and
//! batched throughput.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;
use serde_json::json;
use vecfusion::VecfusionContext;
use vecfusion::dataset::{Dataset, DatasetLocation};
use vecfusion::metric::DistanceFunction;
use vecfusion::search::{PreparedSearch, SearchOutput, SearchRequest};

use crate::npy;
use crate::table::session_with_table;

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
                .map_err(|e| exec_datafusion_err!("{v}: {e}"))
        })
        .collect()
}

/// The `p`-quantile of `v`; `None` when nothing was timed (`--sql-queries 0`).
fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    let last = v.len().checked_sub(1)?;
    Some(v[(last as f64 * p).round() as usize])
}

/// Passes over all queries whose median is the batched throughput (as `bench/search.py` times
/// faiss's).
const BATCH_PASSES: usize = 5;

pub async fn run(args: SearchArgs) -> Result<()> {
    let (queries, nq, dim) = npy::read_f32(&args.queries)?;
    let (gt, _, gt_k) = npy::read_f32(&args.groundtruth)?;
    let ctx = session_with_table(&args.dataset, None).await?;
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
    // One session state and task context for every query, as a program searching
    // repeatedly would hold them (each `ctx.state()` copies the session's registries).
    let (state, task) = (ctx.state(), ctx.task_ctx());
    let q = |i: usize| &queries[i * dim..(i + 1) * dim];
    let recall_of = |i: usize, ids: &[i64]| {
        let truth: std::collections::HashSet<i64> = gt[i * gt_k..i * gt_k + args.k]
            .iter()
            .map(|v| *v as i64)
            .collect();
        ids.iter().filter(|id| truth.contains(id)).count() as f64 / args.k as f64
    };
    // The ids of the rows found, as any API caller would fetch them.
    let ids_only = SearchOutput {
        projection: Some(vec![0]),
        with_distance: false,
        with_query_index: false,
    };
    let (refines, probes) = (list(&args.refine)?, list(&args.nprobes)?);
    // Warm-up, not timed: one batched pass at the widest nprobes reads every partition a
    // timed query will, as a long-running process already has (the memory-mapped file's
    // pages, each partition's checksum, 4-bit codes packed for the fast scan). The figures
    // are that steady state, as faiss's are of an index already in memory.
    let search_of = |nprobes: usize, refine: usize, queries: Vec<f32>| SearchRequest {
        nprobes: Some(nprobes),
        refine_factor: Some(refine),
        use_index: Some(true),
        ..SearchRequest::new(queries, args.k)
            .column("embedding")
            .function(DistanceFunction::L2)
    };
    let widest = probes.iter().max().copied().unwrap_or(1);
    PreparedSearch::new(
        &state,
        dataset.clone(),
        search_of(widest, 1, queries.clone()),
    )
    .await?
    .collect(task.clone(), &ids_only)
    .await?;
    for &refine in &refines {
        for &nprobes in &probes {
            let request = |queries: Vec<f32>| search_of(nprobes, refine, queries);
            // One query at a time through the Rust API: prepare, search, fetch the ids.
            let mut latencies = Vec::with_capacity(nq);
            let mut recall = 0.0;
            for i in 0..nq {
                let t = Instant::now();
                let search =
                    PreparedSearch::new(&state, dataset.clone(), request(q(i).to_vec())).await?;
                let rows = search.collect(task.clone(), &ids_only).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                let ids = rows.column(0).as_primitive::<Int64Type>().values().to_vec();
                recall += recall_of(i, &ids);
            }
            // Batched: every query in one call, on every core; the median of BATCH_PASSES
            // passes (one pass lasts milliseconds, so a single one is at the mercy of the
            // machine's noise).
            let mut passes = Vec::with_capacity(BATCH_PASSES);
            for _ in 0..BATCH_PASSES {
                let t = Instant::now();
                let search =
                    PreparedSearch::new(&state, dataset.clone(), request(queries.clone())).await?;
                search.collect(task.clone(), &ids_only).await?;
                passes.push(nq as f64 / t.elapsed().as_secs_f64());
            }
            let qps = percentile(&mut passes, 0.5);
            ctx.vf_sql(&format!("SET vecfusion.nprobes = {nprobes}"))
                .await?
                .collect()
                .await?;
            ctx.vf_sql(&format!("SET vecfusion.refine_factor = {refine}"))
                .await?
                .collect()
                .await?;
            // Through SQL, as text and through a prepared statement (its first EXECUTE plans;
            // the next ones reuse that physical plan with their own vector).
            ctx.vf_sql(&format!(
                "PREPARE knn AS SELECT id FROM t ORDER BY l2_distance(embedding, $1) LIMIT {}",
                args.k
            ))
            .await?
            .collect()
            .await?;
            // One pass of each form over the same queries (a query right after the same one
            // would find its partitions in the cache), the texts written beforehand.
            let surface_queries = args.sql_queries.min(nq);
            let literals: Vec<String> = (0..surface_queries)
                .map(|i| {
                    let numbers: Vec<String> = q(i).iter().map(|v| format!("{v:?}")).collect();
                    numbers.join(",")
                })
                .collect();
            let (mut sql_lat, mut prepared_lat) = (vec![], vec![]);
            for (latencies, prepared) in [(&mut sql_lat, false), (&mut prepared_lat, true)] {
                for lit in &literals {
                    let text = match prepared {
                        false => format!(
                            "SELECT id FROM t ORDER BY l2_distance(embedding, [{lit}]) LIMIT {}",
                            args.k
                        ),
                        true => format!("EXECUTE knn([{lit}])"),
                    };
                    let t = Instant::now();
                    ctx.vf_sql(&text).await?.collect().await?;
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            // The API's median over those same queries, for the ratios.
            let mut same_queries = latencies[..surface_queries].to_vec();
            ctx.vf_sql("DEALLOCATE knn").await?.collect().await?;
            let row = json!({
                "nprobes": nprobes, "refine_factor": refine, "recall": recall / nq as f64,
                "p50_ms": percentile(&mut latencies, 0.5), "p99_ms": percentile(&mut latencies, 0.99),
                "p50_ms_surface_queries": percentile(&mut same_queries, 0.5),
                "sql_p50_ms": percentile(&mut sql_lat, 0.5),
                "sql_prepared_p50_ms": percentile(&mut prepared_lat, 0.5), "qps_batch": qps,
                "build_seconds": build_seconds,
            });
            println!("{row}");
        }
    }
    Ok(())
}
