//! ANN queries against the exact plan on real datasets: recall, filters, appends, deletes,
//! time travel, and the explicit `vector_search` form.

use std::collections::HashSet;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float32Type, Int64Type};
use datafusion::prelude::SessionContext;
use vecfusion::VecfusionContext;

use crate::common::*;

const DIM: usize = 32;

fn vector_literal(v: &[f32]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// The stored vector of row `id`.
async fn vector_of(ctx: &SessionContext, id: i64) -> Vec<f32> {
    let b = sql(ctx, &format!("SELECT embedding FROM t WHERE id = {id}")).await;
    let list = b[0].column(0).as_fixed_size_list();
    list.value(0)
        .as_primitive::<Float32Type>()
        .values()
        .to_vec()
}

/// Ids and distances of a top-k query, with or without the index.
async fn top_k(
    ctx: &SessionContext,
    q: &[f32],
    k: usize,
    filter: &str,
    use_index: bool,
) -> (Vec<i64>, Vec<f32>) {
    sql(ctx, &format!("SET vecfusion.use_index = {use_index}")).await;
    let batches = sql(
        ctx,
        &format!(
            "SELECT id, l2_distance(embedding, {}) AS d FROM t {filter} ORDER BY d LIMIT {k}",
            vector_literal(q)
        ),
    )
    .await;
    sql(ctx, "SET vecfusion.use_index = true").await;
    let mut rows: Vec<(f32, i64)> = vec![];
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>().values();
        let ds = b.column(1).as_primitive::<Float32Type>().values();
        rows.extend(ds.iter().copied().zip(ids.iter().copied()));
    }
    // Rows at equal distance (the test data has duplicates) may come in either order.
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|(d, i)| (i, d)).unzip()
}

async fn dataset(dir: &std::path::Path, rows: usize) -> SessionContext {
    let ctx = table_at(dir, DIM).await;
    sql(
        &ctx,
        &format!("INSERT INTO t SELECT * FROM random_vectors({rows}, {DIM}, 24, 11)"),
    )
    .await;
    ctx
}

/// recall@10 of the index's answers against the exact plan's, over the stored vectors of
/// rows `ids` as queries.
async fn recall_at_10(ctx: &SessionContext, ids: impl IntoIterator<Item = i64>) -> f64 {
    let (mut hits, mut total) = (0, 0);
    for id in ids {
        let q = vector_of(ctx, id).await;
        let (approx, _) = top_k(ctx, &q, 10, "", true).await;
        let (exact, _) = top_k(ctx, &q, 10, "", false).await;
        let exact: HashSet<i64> = exact.into_iter().collect();
        hits += approx.iter().filter(|i| exact.contains(i)).count();
        total += 10;
    }
    hits as f64 / total as f64
}

#[tokio::test]
async fn ivf_pq_with_refine_reaches_high_recall_and_flat_full_probe_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dataset(dir.path(), 20_000).await;
    sql(&ctx, "CREATE VECTOR INDEX pq ON t (embedding) USING IVF_PQ WITH (num_partitions = 64, num_sub_vectors = 8)").await;
    sql(&ctx, "SET vecfusion.nprobes = 20").await;
    sql(&ctx, "SET vecfusion.refine_factor = 10").await;
    let q0 = vector_of(&ctx, 0).await;
    let plan = explain(
        &ctx,
        &format!(
            "SELECT id FROM t ORDER BY l2_distance(embedding, {}) LIMIT 10",
            vector_literal(&q0)
        ),
    )
    .await;
    assert!(
        plan.contains("AnnSearchExec") && plan.contains("index=pq (IVF_PQ)"),
        "{plan}"
    );
    let recall = recall_at_10(&ctx, (0..20_000).step_by(400)).await;
    assert!(recall >= 0.95, "recall@10 = {recall}");

    sql(&ctx, "DROP VECTOR INDEX pq ON t").await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX flat ON t (embedding) USING IVF_FLAT WITH (num_partitions = 32)",
    )
    .await;
    sql(&ctx, "SET vecfusion.nprobes = 32").await;
    sql(&ctx, "SET vecfusion.refine_factor = 1").await;
    for id in [3, 777, 19_999] {
        let q = vector_of(&ctx, id).await;
        assert_eq!(
            top_k(&ctx, &q, 10, "", true).await,
            top_k(&ctx, &q, 10, "", false).await
        );
    }
}

#[tokio::test]
async fn four_bit_pq_scanned_with_byte_tables_reaches_high_recall_in_every_segment() {
    // 4-bit codes are packed into scan blocks per partition of each segment when first read,
    // and scored with byte tables: the rows of a second segment (an append OPTIMIZEd in) and
    // deletions must come out as exactly as with 8-bit codes.
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), DIM).await;
    let rows = |from: usize, to: usize| {
        format!(
            "INSERT INTO t SELECT * FROM random_vectors({to}, {DIM}, 24, 11) WHERE id >= {from} AND id < {to}"
        )
    };
    sql(&ctx, &rows(0, 12_000)).await;
    sql(&ctx, "CREATE VECTOR INDEX pq4 ON t (embedding) USING IVF_PQ WITH (num_partitions = 32, num_sub_vectors = 16, num_bits = 4)").await;
    sql(&ctx, &rows(12_000, 20_000)).await;
    sql(&ctx, "OPTIMIZE VECTOR INDEX pq4 ON t").await;
    sql(&ctx, "DELETE FROM t WHERE id % 10 = 3").await;
    sql(&ctx, "SET vecfusion.nprobes = 10").await;
    sql(&ctx, "SET vecfusion.refine_factor = 10").await;
    // Queries from both segments; none of the answers may be a deleted row.
    let queries = (0..20_000)
        .step_by(500)
        .chain((12_001..20_000).step_by(500));
    let recall = recall_at_10(&ctx, queries).await;
    assert!(recall >= 0.95, "recall@10 = {recall}");
    // The answers above came from the index, not the exact plan.
    let q = vector_literal(&vector_of(&ctx, 12_345).await);
    let plan = explain(
        &ctx,
        &format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q}) LIMIT 10"),
    )
    .await;
    assert!(plan.contains("index=pq4 (IVF_PQ)"), "{plan}");
}

#[tokio::test]
async fn filters_apply_before_the_top_k() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dataset(dir.path(), 20_000).await;
    sql(&ctx, "CREATE VECTOR INDEX pq ON t (embedding) USING IVF_PQ WITH (num_partitions = 64, num_sub_vectors = 8)").await;
    sql(&ctx, "SET vecfusion.nprobes = 4").await;
    let q = vector_of(&ctx, 5).await;
    // 50 %, 1 % and 0.01 % of the rows match.
    for (filter, matching) in [
        ("WHERE id % 2 = 0", 10_000),
        ("WHERE id % 100 = 7", 200),
        ("WHERE id IN (13, 19998)", 2),
    ] {
        let plan = explain(
            &ctx,
            &format!(
                "SELECT id FROM t {filter} ORDER BY l2_distance(embedding, {}) LIMIT 10",
                vector_literal(&q)
            ),
        )
        .await;
        assert!(plan.contains("prefilter=yes"), "{plan}");
        let (ids, _) = top_k(&ctx, &q, 10, filter, true).await;
        assert_eq!(ids.len(), 10.min(matching), "{filter}");
        let allowed: HashSet<i64> = column_i64(&ctx, &format!("SELECT id FROM t {filter}"))
            .await
            .into_iter()
            .collect();
        assert!(ids.iter().all(|i| allowed.contains(i)), "{filter}: {ids:?}");
        let (exact, _) = top_k(&ctx, &q, 10, filter, false).await;
        if matching <= 200 {
            // Selective filters are answered exactly.
            assert_eq!(ids, exact, "{filter}");
        }
    }
}

#[tokio::test]
async fn appends_deletes_and_time_travel_match_the_exact_plan() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dataset(dir.path(), 10_000).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX flat ON t (embedding) USING IVF_FLAT WITH (num_partitions = 16)",
    )
    .await;
    sql(&ctx, "SET vecfusion.nprobes = 16").await;
    let q = vector_of(&ctx, 42).await;
    // Rows appended after the build, some of them closer to the query than any indexed row.
    sql(
        &ctx,
        &format!(
            "INSERT INTO t SELECT id + 100000, embedding FROM t WHERE id < 5000 \
         UNION ALL SELECT 999999, {}",
            vector_literal(&q)
        ),
    )
    .await;
    let (ids, d) = top_k(&ctx, &q, 10, "", true).await;
    assert_eq!(
        (ids.clone(), d.clone()),
        top_k(&ctx, &q, 10, "", false).await
    );
    assert!(ids.contains(&999_999) && ids.contains(&100_042), "{ids:?}");
    // Deleted rows never appear.
    sql(&ctx, "DELETE FROM t WHERE id IN (42, 999999)").await;
    let (after, _) = top_k(&ctx, &q, 10, "", true).await;
    assert!(
        !after.contains(&42) && !after.contains(&999_999),
        "{after:?}"
    );
    assert_eq!(after, top_k(&ctx, &q, 10, "", false).await.0);
    // Time travel: version 2 predates the index (exact plan), version 4 has the appended rows.
    let lit = vector_literal(&q);
    let at = |v: u64| {
        format!(
            "SELECT id FROM t VERSION AS OF {v} ORDER BY l2_distance(embedding, {lit}) LIMIT 10"
        )
    };
    assert!(!explain(&ctx, &at(2)).await.contains("AnnSearchExec"));
    let v2 = column_i64(&ctx, &at(2)).await;
    assert_eq!(v2[0], 42);
    let v4 = column_i64(&ctx, &at(4)).await;
    assert!(v4.contains(&999_999) && v4.contains(&42), "{v4:?}");
    assert!(explain(&ctx, &at(4)).await.contains("AnnSearchExec"));
}

#[tokio::test]
async fn the_rewrite_fires_only_for_the_same_query() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = flat_indexed(dir.path()).await;
    let q = vector_literal(&vector_of(&ctx, 1).await);
    let uses = |s: String| s.contains("AnnSearchExec");
    assert!(uses(
        explain(
            &ctx,
            &format!("SELECT id, l2_distance(embedding, {q}) AS d FROM t ORDER BY d LIMIT 5")
        )
        .await
    ));
    assert!(uses(
        explain(
            &ctx,
            &format!("SELECT * FROM t AS x ORDER BY l2_distance(x.embedding, {q}) LIMIT 5")
        )
        .await
    ));
    // Wrong metric, wrong direction, no limit, index disabled: the exact plan.
    assert!(!uses(
        explain(
            &ctx,
            &format!("SELECT id FROM t ORDER BY cosine_distance(embedding, {q}) LIMIT 5")
        )
        .await
    ));
    assert!(!uses(
        explain(
            &ctx,
            &format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q}) DESC LIMIT 5")
        )
        .await
    ));
    assert!(!uses(
        explain(
            &ctx,
            &format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q})")
        )
        .await
    ));
    sql(&ctx, "SET vecfusion.use_index = false").await;
    assert!(!uses(
        explain(
            &ctx,
            &format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q}) LIMIT 5")
        )
        .await
    ));
    sql(&ctx, "SET vecfusion.use_index = true").await;
    // Inner product: descending inner_product, ascending negative_inner_product, with a dot index.
    sql(&ctx, "CREATE VECTOR INDEX dot ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8, metric = 'dot')").await;
    assert!(uses(
        explain(
            &ctx,
            &format!("SELECT id FROM t ORDER BY inner_product(embedding, {q}) DESC LIMIT 5")
        )
        .await
    ));
    assert!(uses(
        explain(
            &ctx,
            &format!("SELECT id FROM t ORDER BY negative_inner_product(embedding, {q}) LIMIT 5")
        )
        .await
    ));
    assert!(!uses(
        explain(
            &ctx,
            &format!("SELECT id FROM t ORDER BY inner_product(embedding, {q}) LIMIT 5")
        )
        .await
    ));
    sql(&ctx, "SET vecfusion.nprobes = 8").await;
    sql(&ctx, "SET vecfusion.use_index = false").await;
    let exact = column_i64(
        &ctx,
        &format!("SELECT id FROM t ORDER BY inner_product(embedding, {q}) DESC LIMIT 5"),
    )
    .await;
    sql(&ctx, "SET vecfusion.use_index = true").await;
    let ann = column_i64(
        &ctx,
        &format!("SELECT id FROM t ORDER BY inner_product(embedding, {q}) DESC LIMIT 5"),
    )
    .await;
    assert_eq!(ann, exact);
}

#[tokio::test]
async fn vector_search_returns_rows_and_distances_like_the_sql_form() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dataset(dir.path(), 5_000).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX flat ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8)",
    )
    .await;
    let q = vector_of(&ctx, 9).await;
    let lit = vector_literal(&q);
    let b = sql(
        &ctx,
        &format!(
            "SELECT id, _distance FROM vector_search('t', 'embedding', {lit}, 10, 8) WHERE id > 100"
        ),
    )
    .await;
    let ids: Vec<i64> = b[0].column(0).as_primitive::<Int64Type>().values().to_vec();
    let d: Vec<f32> = b[0]
        .column(1)
        .as_primitive::<Float32Type>()
        .values()
        .to_vec();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "closest first: {d:?}");
    assert_eq!((ids, d), top_k(&ctx, &q, 10, "WHERE id > 100", false).await);
    let err = sql_err(
        &ctx,
        "SELECT * FROM vector_search('t', 'embedding', [1.0, 2.0], 10)",
    )
    .await;
    assert!(
        err.contains("32-dimensional vectors, the query has 2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_prepared_query_binds_its_vector_and_is_served_by_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = prepared_knn(dir.path()).await;
    for id in [1, 7] {
        let q = vector_of(&ctx, id).await;
        let ((ids, ds), shown) = execute(&ctx, "knn", &q).await;
        assert!(shown.contains("AnnSearchExec"), "{shown}");
        // The index answers with the exact distances, as the unprepared form does.
        assert_eq!(ids[0], id, "a stored vector is its own nearest row");
        assert_eq!(ds[0], 0.0);
        let (_, expected) = top_k(&ctx, &q, 5, "", true).await;
        let mut got = ds;
        got.sort_by(f32::total_cmp);
        assert_eq!(got, expected);
    }
    // A wrong dimension is a clear error, not a panic.
    let err = sql_err(&ctx, "EXECUTE knn([1.0, 2.0])").await;
    assert!(err.contains("dimension"), "{err}");
}

/// A 2,000-row table with an IVF_FLAT index (8 partitions).
async fn flat_indexed(dir: &std::path::Path) -> SessionContext {
    let ctx = dataset(dir, 2_000).await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX flat ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8)",
    )
    .await;
    ctx
}

/// The 5 nearest rows to `q` with their distance `d`, written out.
fn knn_text(q: &[f32]) -> String {
    format!(
        "SELECT id, l2_distance(embedding, {}) AS d FROM t ORDER BY d LIMIT 5",
        vector_literal(q)
    )
}

/// A 2,000-row table with an IVF_FLAT index and `knn` prepared: the 5 nearest rows to `$1`
/// with their distance `d`.
async fn prepared_knn(dir: &std::path::Path) -> SessionContext {
    let ctx = flat_indexed(dir).await;
    sql(
        &ctx,
        "PREPARE knn AS SELECT id, l2_distance(embedding, $1) AS d FROM t ORDER BY d LIMIT 5",
    )
    .await;
    ctx
}

/// The ids and distances of `EXECUTE name(q)`, and the plan it ran.
async fn execute(ctx: &SessionContext, name: &str, q: &[f32]) -> ((Vec<i64>, Vec<f32>), String) {
    let df = ctx
        .vf_sql(&format!("EXECUTE {name}({})", vector_literal(q)))
        .await
        .unwrap();
    let plan = df.clone().create_physical_plan().await.unwrap();
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string();
    (ids_and_distances(&df.collect().await.unwrap()), shown)
}

fn reuses(ctx: &SessionContext) -> u64 {
    vecfusion::prepared_queries::PreparedQueries::of(ctx)
        .unwrap()
        .reuses()
}

#[tokio::test]
async fn a_prepared_query_keeps_its_plan_only_while_what_it_read_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = prepared_knn(dir.path()).await;
    // The first EXECUTE plans; the next ones reuse that plan with their own vector and
    // answer exactly what the same query written out answers.
    for (n, id) in [1i64, 7, 13].into_iter().enumerate() {
        let q = vector_of(&ctx, id).await;
        let (rows, shown) = execute(&ctx, "knn", &q).await;
        assert!(shown.contains("AnnSearchExec"), "{shown}");
        assert_eq!(rows.0[0], id);
        // Planned by DataFusion's own entry point, as written.
        let b = ctx
            .sql(&knn_text(&q))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let ids = b[0].column(0).as_primitive::<Int64Type>().values().to_vec();
        let ds = b[0]
            .column(1)
            .as_primitive::<Float32Type>()
            .values()
            .to_vec();
        assert_eq!(rows, (ids, ds));
        assert_eq!(reuses(&ctx), n as u64);
    }
    let q1 = vector_of(&ctx, 1).await;

    // A row appended from another session (a new version): planned again, the row found.
    let other = open_table(dir.path(), "t").await;
    sql(
        &other,
        "INSERT INTO t SELECT 5000, embedding FROM t WHERE id = 1",
    )
    .await;
    let ((ids, ds), _) = execute(&ctx, "knn", &q1).await;
    assert_eq!(
        reuses(&ctx),
        2,
        "a plan of an older version must not be reused"
    );
    assert_eq!(ds[..2], [0.0, 0.0]);
    assert!(ids[..2].contains(&5000), "{ids:?}");
    execute(&ctx, "knn", &q1).await;
    assert_eq!(reuses(&ctx), 3, "the plan of the new version is kept");

    // A setting changed, even past vecfusion's entry point: planned again with it.
    ctx.sql("SET vecfusion.nprobes = 1").await.unwrap();
    let (_, shown) = execute(&ctx, "knn", &q1).await;
    assert!(shown.contains("nprobes=1"), "{shown}");
    assert_eq!(reuses(&ctx), 3);
    let (_, shown) = execute(&ctx, "knn", &q1).await;
    assert!(shown.contains("nprobes=1"), "{shown}");
    assert_eq!(reuses(&ctx), 4);

    // A wrong dimension through a kept plan is the same clear error.
    let err = sql_err(&ctx, "EXECUTE knn([1.0, 2.0])").await;
    assert!(
        err.contains("32-dimensional vectors, the query has 2"),
        "{err}"
    );

    // The vector used anywhere but as the query of the search: planned every time, and
    // each EXECUTE sees its own vector.
    sql(
        &ctx,
        "PREPARE near AS SELECT id, l2_distance(embedding, $1) AS d FROM t \
         WHERE l2_distance(embedding, $1) < 1000 ORDER BY d LIMIT 5",
    )
    .await;
    sql(
        &ctx,
        "PREPARE echo AS SELECT id, l2_distance(embedding, $1) AS d, $1 AS q FROM t \
         ORDER BY d LIMIT 1",
    )
    .await;
    let before = reuses(&ctx);
    for id in [3i64, 4] {
        let q = vector_of(&ctx, id).await;
        let ((ids, _), _) = execute(&ctx, "near", &q).await;
        assert_eq!(ids[0], id);
        let b = sql(&ctx, &format!("EXECUTE echo({})", vector_literal(&q))).await;
        let echoed = b[0].column(2).as_list::<i32>().value(0);
        let echoed: Vec<f32> = match echoed.as_primitive_opt::<Float32Type>() {
            Some(v) => v.values().to_vec(),
            None => echoed
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .values()
                .iter()
                .map(|v| *v as f32)
                .collect(),
        };
        assert_eq!(echoed, q);
    }
    assert_eq!(reuses(&ctx), before);

    // DEALLOCATE forgets the statement (and its plan).
    sql(&ctx, "DEALLOCATE knn").await;
    let err = sql_err(&ctx, &format!("EXECUTE knn({})", vector_literal(&q1))).await;
    assert!(err.contains("does not exist"), "{err}");
}

/// The rows of a query as vecfusion's entry point runs it and as DataFusion plans it.
async fn both_ways(ctx: &SessionContext, query: &str) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let ours = sql(ctx, query).await;
    let theirs = ctx.sql(query).await.unwrap().collect().await.unwrap();
    (ours, theirs)
}

/// Queries written out with their vector share the plan of their shape (the text with `$1`
/// for the vector) from the second one on, answer exactly what DataFusion's planning of the
/// same text answers, and are planned again when what they read changed.
#[tokio::test]
async fn a_query_written_out_reuses_the_plan_of_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = flat_indexed(dir.path()).await;
    for (n, id) in [1i64, 7, 13, 21].into_iter().enumerate() {
        let q = vector_of(&ctx, id).await;
        let (ours, theirs) = both_ways(&ctx, &knn_text(&q)).await;
        assert_eq!(ours, theirs);
        assert_eq!(ours[0].column(0).as_primitive::<Int64Type>().value(0), id);
        // The first query of the shape is planned as written; the others reuse its plan.
        assert_eq!(reuses(&ctx), n as u64, "query {n}");
    }
    let q1 = vector_of(&ctx, 1).await;

    // A row appended from another session: planned again (and found), then reused again.
    let other = open_table(dir.path(), "t").await;
    sql(
        &other,
        "INSERT INTO t SELECT 5000, embedding FROM t WHERE id = 1",
    )
    .await;
    let before = reuses(&ctx);
    let (ours, theirs) = both_ways(&ctx, &knn_text(&q1)).await;
    assert_eq!(ours, theirs);
    let ids = ours[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert!(ids[..2].contains(&5000), "{ids:?}");
    assert_eq!(
        reuses(&ctx),
        before,
        "a plan of an older version must not be reused"
    );
    sql(&ctx, &knn_text(&q1)).await;
    assert_eq!(reuses(&ctx), before + 1);

    // A setting changed: planned again with it.
    sql(&ctx, "SET vecfusion.nprobes = 1").await;
    let before = reuses(&ctx);
    let (ours, theirs) = both_ways(&ctx, &knn_text(&q1)).await;
    assert_eq!(ours, theirs);
    assert_eq!(reuses(&ctx), before);

    // An unaliased distance in the select list is named after its arguments: that shape
    // would name it after `$1`, so it is refused and the query always planned as written,
    // with DataFusion's column names.
    let unaliased = format!(
        "SELECT id, l2_distance(embedding, {}) FROM t ORDER BY 2 LIMIT 5",
        vector_literal(&q1)
    );
    let before = reuses(&ctx);
    for _ in 0..3 {
        let (ours, theirs) = both_ways(&ctx, &unaliased).await;
        assert_eq!(ours, theirs);
        assert_eq!(ours[0].schema(), theirs[0].schema());
    }
    assert_eq!(reuses(&ctx), before);

    // A wrong dimension through a kept plan is the same clear error as planned as written.
    sql(&ctx, &knn_text(&q1)).await;
    let err = sql_err(
        &ctx,
        "SELECT id, l2_distance(embedding, [1,2,3,4,5,6,7,8]) AS d FROM t ORDER BY d LIMIT 5",
    )
    .await;
    assert!(err.contains("32"), "{err}");
}

/// In a script of several statements (the shell's `-f`, Python's `sql` with `;`), each query
/// of a shape with a kept plan is answered with it, as the query alone would be, whatever text
/// surrounds it (comments, line breaks, non-ASCII characters before it), and answers what
/// DataFusion's planning of the same text answers.
#[tokio::test]
async fn a_script_answers_each_query_with_the_kept_plan_of_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = flat_indexed(dir.path()).await;
    let ids = [1i64, 7, 13, 21];
    let mut queries = vec![];
    for id in ids {
        queries.push(knn_text(&vector_of(&ctx, id).await));
    }
    let mut script = "-- größte Nähe ✓\nSET vecfusion.nprobes = 4;\n".to_string();
    for q in &queries {
        script += &format!("{q};\n  /* é */ ");
    }
    script += "SELECT count(*) AS n FROM t";
    let before = reuses(&ctx);
    let mut run = ctx.vf_script(&script).await.unwrap();
    let mut results = vec![];
    while let Some(df) = run.next().await {
        results.push(df.unwrap().collect().await.unwrap());
    }
    assert_eq!(results.len(), 6, "SET, four queries, the count");
    // The first query of the shape is planned as written; the other three reuse its plan.
    assert_eq!(reuses(&ctx), before + 3);
    for (i, (id, q)) in ids.iter().zip(&queries).enumerate() {
        let ours = &results[i + 1];
        assert_eq!(ours[0].column(0).as_primitive::<Int64Type>().value(0), *id);
        let theirs = ctx.sql(q).await.unwrap().collect().await.unwrap();
        assert_eq!(ours, &theirs, "query {i}");
    }
    let n = results[5][0].column(0).as_primitive::<Int64Type>().value(0);
    assert_eq!(n, 2_000);
}

/// The ids and distances (second column) of `batches`.
fn ids_and_distances(batches: &[RecordBatch]) -> (Vec<i64>, Vec<f32>) {
    let (mut ids, mut ds) = (vec![], vec![]);
    for b in batches {
        ids.extend(b.column(0).as_primitive::<Int64Type>().values());
        ds.extend(b.column(1).as_primitive::<Float32Type>().values());
    }
    (ids, ds)
}

/// A search yields its rows closest first (descending for `inner_product`, ascending for the
/// other functions), so DataFusion drops the sort above it and keeps only its limit; the rows
/// are still exactly the exact plan's, in its order, when every partition is probed.
#[tokio::test]
async fn no_sort_runs_above_a_search_and_its_rows_come_closest_first() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dataset(dir.path(), 2_000).await;
    for metric in ["l2", "cosine", "dot"] {
        sql(&ctx, &format!("CREATE VECTOR INDEX {metric} ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8, metric = '{metric}')")).await;
    }
    sql(&ctx, "SET vecfusion.nprobes = 8").await;
    let q = vector_literal(&vector_of(&ctx, 3).await);
    for (function, direction) in [
        ("l2_distance", "ASC"),
        ("cosine_distance", "ASC"),
        ("negative_inner_product", "ASC"),
        ("inner_product", "DESC"),
    ] {
        let query = format!(
            "SELECT id, {function}(embedding, {q}) AS d FROM t ORDER BY d {direction} LIMIT 7"
        );
        let plan = explain(&ctx, &query).await;
        assert!(plan.contains("AnnSearchExec"), "{plan}");
        assert!(!plan.contains("SortExec"), "{plan}");
        assert!(plan.contains("fetch=7"), "{plan}");
        let (ids, ds) = ids_and_distances(&sql(&ctx, &query).await);
        assert_eq!(ids.len(), 7);
        let in_order = ds.windows(2).all(|w| match direction {
            "ASC" => w[0] <= w[1],
            _ => w[0] >= w[1],
        });
        assert!(in_order, "{function}: {ds:?}");
        sql(&ctx, "SET vecfusion.use_index = false").await;
        let exact = ids_and_distances(&sql(&ctx, &query).await);
        sql(&ctx, "SET vecfusion.use_index = true").await;
        assert_eq!((ids, ds), exact, "{function}");
    }
}

/// The DataFrame of a query answered with a kept plan can be built on like any other: a
/// filter (its literal coerced to the column's type), a limit and EXPLAIN are planned by the
/// session with all its rules, and collecting it twice gives the same rows. The kept plans
/// go with their session.
#[tokio::test]
async fn a_query_answered_with_a_kept_plan_can_be_built_on() {
    use datafusion::prelude::{col, lit};
    let dir = tempfile::tempdir().unwrap();
    let ctx = flat_indexed(dir.path()).await;
    sql(&ctx, &knn_text(&vector_of(&ctx, 1).await)).await;
    let before = reuses(&ctx);
    let df = ctx
        .vf_sql(&knn_text(&vector_of(&ctx, 9).await))
        .await
        .unwrap();
    assert_eq!(reuses(&ctx), before + 1, "the plan of the shape is reused");
    let all = ids_and_distances(&df.clone().collect().await.unwrap());
    assert_eq!(all.0[0], 9);
    assert_eq!(ids_and_distances(&df.clone().collect().await.unwrap()), all);

    let limited = df
        .clone()
        .limit(1, Some(2))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(ids_and_distances(&limited).0, all.0[1..3]);

    let beyond = *all.0.iter().min().unwrap();
    let filtered = df
        .clone()
        .filter(col("id").gt(lit(beyond as i32)))
        .unwrap()
        .collect()
        .await
        .unwrap();
    let expected: Vec<i64> = all.0.iter().copied().filter(|id| *id > beyond).collect();
    assert_eq!(ids_and_distances(&filtered).0, expected);

    let explained = df.explain(false, false).unwrap().collect().await.unwrap();
    let shown = datafusion::arrow::util::pretty::pretty_format_batches(&explained)
        .unwrap()
        .to_string();
    assert!(shown.contains("PlannedQuery"), "{shown}");
    assert!(shown.contains("AnnSearchExec"), "{shown}");

    // The kept plans do not keep themselves (or the session) alive.
    let kept =
        std::sync::Arc::downgrade(&vecfusion::prepared_queries::PreparedQueries::of(&ctx).unwrap());
    drop(ctx);
    assert!(
        kept.upgrade().is_none(),
        "the kept plans outlive their session"
    );
}
