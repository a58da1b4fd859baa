//! Living indexes: appends encoded into new segments by `OPTIMIZE VECTOR INDEX`, segments
//! merged and retrained, the build's blocks run on fragment subsets, and concurrent
//! maintenance — all on real datasets through SQL and the public Rust API.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float32Type, Int64Type, UInt32Type, UInt64Type};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use vecfusion::dataset::{Dataset, DatasetLocation};
use vecfusion::index::IndexOptions;
use vecfusion::index::blocks::{self, BuildPlan, BuildSpec, Sample};
use vecfusion::index_format::{IndexModel, SegmentFile};
use vecfusion::kmeans::{Backend, cpu::CpuBackend};
use vecfusion::provider::VecfusionScanExec;
use vecfusion::quantizer::IndexKind;
use vecfusion::search::{PreparedSearch, SearchOutput, SearchRequest};

use crate::common::*;

const DIM: usize = 32;
/// `random_vectors` rows `[from, to)` of one distribution (same seed, same clusters).
fn rows(from: usize, to: usize) -> String {
    format!("SELECT * FROM random_vectors({to}, {DIM}, 16, 7) WHERE id >= {from} AND id < {to}")
}

async fn latest(dir: &Path) -> Dataset {
    Dataset::open(DatasetLocation::local(dir).unwrap())
        .await
        .unwrap()
}

/// Held-out queries from the data's distribution.
async fn queries(ctx: &SessionContext, n: usize) -> Vec<f32> {
    let b = sql(
        ctx,
        &format!(
            "SELECT vector FROM random_vectors({}, {DIM}, 16, 7) WHERE id >= 100000",
            100_000 + n
        ),
    )
    .await;
    b.iter()
        .flat_map(|b| {
            let l = b.column(0).as_fixed_size_list();
            l.values().as_primitive::<Float32Type>().values().to_vec()
        })
        .collect()
}

/// Ids of the top 10 of every query, per query.
async fn top10(
    ctx: &SessionContext,
    dataset: Dataset,
    queries: &[f32],
    use_index: bool,
    nprobes: usize,
) -> Vec<BTreeSet<i64>> {
    let mut request = SearchRequest::new(queries.to_vec(), 10).column("embedding");
    request.use_index = Some(use_index);
    request.nprobes = Some(nprobes);
    // Candidates re-ranked exactly, as PQ searches are run: recall then measures the IVF
    // partitioning and the codes' ranking, not the codebooks' training-set size.
    request.refine_factor = Some(10);
    let search = PreparedSearch::new(&ctx.state(), dataset, request)
        .await
        .unwrap();
    let output = SearchOutput {
        projection: Some(vec![0]),
        with_distance: false,
        with_query_index: true,
    };
    let batch = search.collect(ctx.task_ctx(), &output).await.unwrap();
    let mut out = vec![BTreeSet::new(); queries.len() / DIM];
    let q = batch.column(0).as_primitive::<UInt32Type>();
    let id = batch.column(1).as_primitive::<Int64Type>();
    for i in 0..batch.num_rows() {
        out[q.value(i) as usize].insert(id.value(i));
    }
    out
}

fn recall(found: &[BTreeSet<i64>], exact: &[BTreeSet<i64>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(exact)
        .map(|(f, e)| f.intersection(e).count())
        .sum();
    hits as f64 / exact.iter().map(|e| e.len()).sum::<usize>() as f64
}

fn u64_at(b: &[RecordBatch], column: &str) -> u64 {
    let c = b[0].column(b[0].schema().index_of(column).unwrap());
    c.as_primitive::<UInt64Type>().value(0)
}

fn text_at(b: &[RecordBatch], column: &str) -> String {
    let c = b[0].column(b[0].schema().index_of(column).unwrap());
    c.as_string::<i32>().value(0).to_string()
}

const INDEX: &str = "USING IVF_PQ WITH (num_partitions = 32, num_sub_vectors = 8, seed = 3)";

#[tokio::test]
async fn three_appends_optimized_into_segments_recall_like_one_build() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Table a: a build over the first third, then two appends, each OPTIMIZEd.
    let ctx = table_at(a.path(), DIM).await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(0, 8000))).await;
    sql(
        &ctx,
        &format!("CREATE VECTOR INDEX idx ON t (embedding) {INDEX}"),
    )
    .await;
    for (from, to) in [(8000, 16000), (16000, 24000)] {
        sql(&ctx, &format!("INSERT INTO t {}", rows(from, to))).await;
        let r = sql(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await;
        assert_eq!(u64_at(&r, "rows_encoded"), 8000);
        assert_eq!(
            u64_at(&r, "segments_after"),
            u64_at(&r, "segments_before") + 1
        );
        let drift = r[0]
            .column(4)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        // Same distribution: the new rows sit as close to their centroids as the old ones.
        assert!(
            (0.8..1.25).contains(&drift.value(0)),
            "drift {}",
            drift.value(0)
        );
    }
    let segmented = latest(a.path()).await;
    let index = segmented.manifest().index("idx").unwrap();
    assert_eq!(index.segments.len(), 3);
    assert_eq!(index.rows_indexed(), 24_000);
    let shown = sql(&ctx, "SHOW VECTOR INDEXES FROM t").await;
    assert_eq!(u64_at(&shown, "segments"), 3);
    assert_eq!(u64_at(&shown, "rows_not_indexed"), 0);

    // Table b: one build over all rows.
    let one = table_at(b.path(), DIM).await;
    sql(&one, &format!("INSERT INTO t {}", rows(0, 24000))).await;
    sql(
        &one,
        &format!("CREATE VECTOR INDEX idx ON t (embedding) {INDEX}"),
    )
    .await;
    let whole = latest(b.path()).await;

    let q = queries(&ctx, 300).await;
    let exact = top10(&ctx, segmented.clone(), &q, false, 1).await;
    assert_eq!(exact, top10(&one, whole.clone(), &q, false, 1).await);
    for nprobes in [2, 8] {
        let r_seg = recall(
            &top10(&ctx, segmented.clone(), &q, true, nprobes).await,
            &exact,
        );
        let r_one = recall(&top10(&one, whole.clone(), &q, true, nprobes).await, &exact);
        eprintln!("nprobes {nprobes}: recall@10 {r_seg:.3} (3 segments) vs {r_one:.3} (one build)");
        assert!(
            (r_seg - r_one).abs() <= 0.01 || r_seg > r_one,
            "nprobes {nprobes}: recall@10 {r_seg:.3} with 3 segments vs {r_one:.3} with one build"
        );
    }
}

#[tokio::test]
async fn one_new_row_is_one_row_encoded_and_nothing_new_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(0, 5000))).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_SQ WITH (num_partitions = 8)",
    )
    .await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(5000, 5001))).await;
    let shown = sql(&ctx, "SHOW VECTOR INDEXES FROM t").await;
    assert_eq!(u64_at(&shown, "rows_not_indexed"), 1);
    assert_eq!(u64_at(&shown, "segments"), 1);

    let r = sql(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await;
    assert_eq!(u64_at(&r, "rows_encoded"), 1);
    assert_eq!(
        (u64_at(&r, "segments_before"), u64_at(&r, "segments_after")),
        (1, 2)
    );
    let version = u64_at(&r, "version");
    let ds = latest(dir.path()).await;
    assert_eq!(ds.version(), version);
    assert_eq!(ds.manifest().operation.kind, "OPTIMIZE INDEX");
    let index = ds.manifest().index("idx").unwrap();
    assert_eq!(index.segments[1].rows, 1);
    assert_eq!(index.segments[1].fragments, vec![ds.fragments()[1].id]);
    let shown = sql(&ctx, "SHOW VECTOR INDEXES FROM t").await;
    assert_eq!(u64_at(&shown, "rows_not_indexed"), 0);
    assert_eq!(u64_at(&shown, "segments"), 2);
    assert_eq!(u64_at(&shown, "rows_indexed"), 5001);

    // The new row is found through its segment: with every partition probed, the index
    // answers like the exact plan.
    sql(&ctx, "SET vecfusion.nprobes = 8").await;
    let q = sql(&ctx, "SELECT embedding FROM t WHERE id = 5000").await;
    let v = q[0].column(0).as_fixed_size_list().value(0);
    let v = v.as_primitive::<Float32Type>().values().to_vec();
    let literal = format!(
        "[{}]",
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let plan = sql(
        &ctx,
        &format!(
            "EXPLAIN ANALYZE SELECT id FROM t ORDER BY l2_distance(embedding, {literal}) LIMIT 1"
        ),
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    // One exact distance (the refined candidate): the new row was scored from its segment,
    // not searched exactly as an unindexed fragment.
    assert!(
        text.contains("index=idx") && text.contains("rows_exact=1, "),
        "{text}"
    );
    let nearest = column_i64(
        &ctx,
        &format!("SELECT id FROM t ORDER BY l2_distance(embedding, {literal}) LIMIT 1"),
    )
    .await;
    assert_eq!(nearest, vec![5000]);

    // Nothing new: no commit, and a message that says so.
    let r = sql(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await;
    assert_eq!(u64_at(&r, "rows_encoded"), 0);
    assert_eq!(u64_at(&r, "version"), version);
    assert!(
        text_at(&r, "message").contains("nothing to do"),
        "{}",
        text_at(&r, "message")
    );
    assert_eq!(latest(dir.path()).await.version(), version);
}

#[tokio::test]
async fn merged_segments_keep_every_row_and_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(0, 4000))).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8)",
    )
    .await;
    for i in 0..3 {
        let from = 4000 + i * 500;
        sql(&ctx, &format!("INSERT INTO t {}", rows(from, from + 500))).await;
        sql(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await;
    }
    sql(&ctx, "DELETE FROM t WHERE id % 10 = 0").await;
    let before = latest(dir.path()).await;
    assert_eq!(before.manifest().index("idx").unwrap().segments.len(), 4);
    let q = queries(&ctx, 50).await;
    let answers = top10(&ctx, before.clone(), &q, true, 8).await;
    assert_eq!(answers, top10(&ctx, before.clone(), &q, false, 1).await);

    // Merge the three small segments: codes are copied, nothing is encoded.
    let r = sql(
        &ctx,
        "OPTIMIZE VECTOR INDEX idx ON t WITH (merge_segments = 3)",
    )
    .await;
    assert_eq!(u64_at(&r, "rows_encoded"), 0);
    assert_eq!(
        (u64_at(&r, "segments_before"), u64_at(&r, "segments_after")),
        (4, 2)
    );
    let after = latest(dir.path()).await;
    let index = after.manifest().index("idx").unwrap();
    assert_eq!(index.rows_indexed(), 5500);
    let model = IndexModel::open(after.location(), &index.model.file)
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for s in &index.segments {
        let file = SegmentFile::open(after.location(), &s.file, &model)
            .await
            .unwrap();
        for p in 0..model.num_partitions {
            for a in file.partition(p).unwrap().0.iter() {
                assert!(seen.insert(*a), "row {a:#x} in two segments");
            }
        }
    }
    assert_eq!(seen.len(), 5500);
    assert_eq!(top10(&ctx, after.clone(), &q, true, 8).await, answers);

    // Merge everything; then there is nothing left to merge.
    sql(
        &ctx,
        "OPTIMIZE VECTOR INDEX idx ON t WITH (merge_segments = 10)",
    )
    .await;
    let r = sql(
        &ctx,
        "OPTIMIZE VECTOR INDEX idx ON t WITH (merge_segments = 2)",
    )
    .await;
    assert!(
        text_at(&r, "message").contains("nothing to do"),
        "{}",
        text_at(&r, "message")
    );
    assert_eq!(
        latest(dir.path())
            .await
            .manifest()
            .index("idx")
            .unwrap()
            .segments
            .len(),
        1
    );
    assert_eq!(
        top10(&ctx, latest(dir.path()).await, &q, true, 8).await,
        answers
    );
}

#[tokio::test]
async fn retrain_builds_a_new_model_over_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(0, 3000))).await;
    sql(&ctx, "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_PQ WITH (num_partitions = 8, num_sub_vectors = 4)").await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(3000, 4000))).await;
    sql(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await;
    let old = latest(dir.path())
        .await
        .manifest()
        .index("idx")
        .unwrap()
        .clone();
    let r = sql(
        &ctx,
        "OPTIMIZE VECTOR INDEX idx ON t WITH (retrain = true, accelerator = 'cpu')",
    )
    .await;
    assert_eq!(u64_at(&r, "rows_encoded"), 4000);
    assert_eq!(u64_at(&r, "segments_before"), 2);
    let new = latest(dir.path())
        .await
        .manifest()
        .index("idx")
        .unwrap()
        .clone();
    assert_ne!(new.model.id, old.model.id);
    assert_eq!(new.kind, IndexKind::IvfPq);
    assert_eq!(new.params["num_sub_vectors"], 4);
    // A fresh build's segments: one per group of whole fragments, covering both.
    assert_eq!(u64_at(&r, "segments_after") as usize, new.segments.len());
    let mut covered: Vec<u32> = new
        .segments
        .iter()
        .flat_map(|s| s.fragments.clone())
        .collect();
    covered.sort_unstable();
    assert_eq!(covered.len(), 2);
    assert_eq!(new.segments.iter().map(|s| s.rows).sum::<u64>(), 4000);
}

#[tokio::test]
async fn bad_optimize_statements_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(0, 1000))).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_FLAT WITH (num_partitions = 4)",
    )
    .await;
    for (stmt, want) in [
        (
            "OPTIMIZE VECTOR INDEX nope ON t",
            "there is no vector index 'nope'",
        ),
        (
            "OPTIMIZE VECTOR INDEX idx ON t WITH (colour = 1)",
            "unknown option 'colour'",
        ),
        (
            "OPTIMIZE VECTOR INDEX idx ON t WITH (merge_segments = 1)",
            "at least 2",
        ),
        (
            "OPTIMIZE VECTOR INDEX idx ON t WITH (merge_segments = -3)",
            "at least 2",
        ),
        (
            "OPTIMIZE VECTOR INDEX idx ON t WITH (retrain = 'yes')",
            "true or false",
        ),
        (
            "OPTIMIZE VECTOR INDEX idx ON t WITH (retrain = true, merge_segments = 2)",
            "does not apply",
        ),
        (
            "OPTIMIZE VECTOR INDEX idx ON t WITH (accelerator = 'tpu')",
            "unknown accelerator 'tpu'",
        ),
        ("OPTIMIZE VECTOR INDEX idx ON nowhere", "nowhere"),
    ] {
        let err = sql_err(&ctx, stmt).await;
        assert!(err.contains(want), "{stmt}: {err}");
    }
    assert_eq!(latest(dir.path()).await.version(), 3);
}

#[tokio::test]
async fn explain_analyze_optimize_shows_its_phases() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(0, 2000))).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_SQ WITH (num_partitions = 4)",
    )
    .await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(2000, 2300))).await;
    let version = latest(dir.path()).await.version();
    let plan = sql(&ctx, "EXPLAIN OPTIMIZE VECTOR INDEX idx ON t").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(
        text.contains("OptimizeVectorIndexExec: name=idx segments=1 new_fragments=1"),
        "{text}"
    );
    assert_eq!(
        latest(dir.path()).await.version(),
        version,
        "EXPLAIN changes nothing"
    );
    let plan = sql(&ctx, "EXPLAIN ANALYZE OPTIMIZE VECTOR INDEX idx ON t").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    for metric in [
        "rows_encoded=300",
        "time_encode=",
        "time_write=",
        "accelerator=cpu",
    ] {
        assert!(text.contains(metric), "{metric}: {text}");
    }
}

#[tokio::test]
async fn concurrent_optimizes_of_one_index_never_both_commit() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(0, 3000))).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8)",
    )
    .await;
    sql(&ctx, &format!("INSERT INTO t {}", rows(3000, 6000))).await;
    let other = table_at(dir.path(), DIM).await;
    let (a, b) = tokio::join!(
        async { try_sql(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await },
        async { try_sql(&other, "OPTIMIZE VECTOR INDEX idx ON t").await }
    );
    let outcomes = [a, b];
    assert!(outcomes.iter().any(|o| o.is_ok()), "{outcomes:?}");
    for o in &outcomes {
        if let Err(e) = o {
            assert!(e.contains("commit conflict"), "{e}");
        }
    }
    let index = latest(dir.path())
        .await
        .manifest()
        .index("idx")
        .unwrap()
        .clone();
    assert_eq!(index.segments.len(), 2);
    assert_eq!(index.rows_indexed(), 6000);
}

/// Block-by-block on fragment subsets, committed together, is the same index as one CREATE.
#[tokio::test]
async fn blocks_on_fragment_subsets_make_the_same_index_as_one_create() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    for (from, to) in [(0, 3000), (3000, 5000), (5000, 9000)] {
        sql(&ctx, &format!("INSERT INTO t {}", rows(from, to))).await;
    }
    sql(&ctx, "CREATE VECTOR INDEX whole ON t (embedding) USING IVF_PQ WITH (num_partitions = 16, num_sub_vectors = 8, seed = 5)").await;
    let dataset = latest(dir.path()).await;
    let ids: Vec<u32> = dataset.fragments().iter().map(|f| f.id).collect();
    let mut options = IndexOptions::defaults(IndexKind::IvfPq);
    options.num_partitions = Some(16);
    options.num_sub_vectors = Some(8);
    options.seed = 5;
    let plan = BuildPlan {
        spec: BuildSpec {
            name: "parts".into(),
            column: "embedding".into(),
            options,
        },
        dim: DIM,
        rows: dataset.count_rows(),
    };
    let state = ctx.state();
    let scan = |fragments: Vec<u32>| {
        let (state, dataset) = (state.clone(), dataset.clone());
        async move {
            let exec = VecfusionScanExec::fragment_groups(&state, dataset, 1, Some(fragments))
                .await
                .unwrap();
            datafusion::physical_plan::execute_stream(
                Arc::new(exec) as Arc<dyn ExecutionPlan>,
                state.task_ctx(),
            )
            .unwrap()
        }
    };
    // Sample the subsets {0, 2} and {1} separately and merge.
    let groups = [vec![ids[0], ids[2]], vec![ids[1]]];
    let mut sample = Sample::empty(DIM);
    for g in &groups {
        sample.merge(
            blocks::sample(&plan, scan(g.clone()).await, None)
                .await
                .unwrap(),
        );
    }
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend);
    let model = blocks::train(&plan, sample, backend.clone(), dataset.location(), None)
        .await
        .unwrap();
    let mut segments = vec![];
    for g in &groups {
        segments.push(
            blocks::encode(
                &model.model,
                g.clone(),
                scan(g.clone()).await,
                backend.clone(),
                64 << 20,
                dataset.location(),
                0,
                None,
            )
            .await
            .unwrap(),
        );
    }
    // Overlapping coverage is refused at commit.
    let overlapping = [segments[0].clone(), segments[0].clone()];
    let err = blocks::commit(
        &dataset,
        &plan,
        &model.summary(),
        &overlapping,
        serde_json::json!({}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("in two segments"), "{err}");
    blocks::commit(
        &dataset,
        &plan,
        &model.summary(),
        &segments,
        serde_json::json!({}),
    )
    .await
    .unwrap();

    let ds = latest(dir.path()).await;
    let codes = |name: &str| {
        let index = ds.manifest().index(name).unwrap().clone();
        let ds = ds.clone();
        async move {
            let model = IndexModel::open(ds.location(), &index.model.file)
                .await
                .unwrap();
            let mut rows: HashMap<u64, (usize, Vec<u8>)> = HashMap::new();
            for s in &index.segments {
                let file = SegmentFile::open(ds.location(), &s.file, &model)
                    .await
                    .unwrap();
                for p in 0..model.num_partitions {
                    let (addrs, codes) = file.partition(p).unwrap();
                    for (i, a) in addrs.iter().enumerate() {
                        rows.insert(*a, (p, codes[i * 8..(i + 1) * 8].to_vec()));
                    }
                }
            }
            (model, rows)
        }
    };
    let (whole_model, whole) = codes("whole").await;
    let (parts_model, parts) = codes("parts").await;
    assert_eq!(whole_model.centroids, parts_model.centroids);
    assert_eq!(
        whole_model.quantizer.sections()[0].1,
        parts_model.quantizer.sections()[0].1
    );
    assert_eq!(whole.len(), 9000);
    assert_eq!(
        whole, parts,
        "every row in the same partition with the same code"
    );
}
