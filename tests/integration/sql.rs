//! SQL behaviour that needs Rust to check (sqllogictest files cover the rest).

use crate::common::*;

#[tokio::test]
async fn insert_of_many_batches_is_one_fragment_and_scans_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(&dir.path().join("d"), 16).await;
    sql(
        &ctx,
        "INSERT INTO t SELECT * FROM random_vectors(50000, 16)",
    )
    .await;
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 50_000);
    assert_eq!(
        scalar_i64(&ctx, "SELECT count(DISTINCT id) FROM t").await,
        50_000
    );
    // One fragment, split over the target partitions for scanning.
    let plan = sql(&ctx, "EXPLAIN SELECT id FROM t").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains("VecfusionScanExec"), "{text}");
    assert!(text.contains("fragments=1"), "{text}");
    // The ids read back equal the generator's, in every order the partitions produce.
    let ids = column_i64(&ctx, "SELECT id FROM t ORDER BY id").await;
    assert_eq!(ids, (0..50_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn exact_row_count_statistics_answer_count_star() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(&dir.path().join("d"), 4).await;
    sql(&ctx, "INSERT INTO t SELECT * FROM random_vectors(1000, 4)").await;
    sql(&ctx, "DELETE FROM t WHERE id < 10").await;
    let plan = sql(&ctx, "EXPLAIN SELECT count(*) FROM t").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    // Exact statistics let DataFusion answer from metadata (no scan in the physical plan).
    assert!(!text.contains("VecfusionScanExec"), "{text}");
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 990);
}

#[tokio::test]
async fn wrong_dimension_names_column_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(&dir.path().join("d"), 4).await;
    let err = sql_err(&ctx, "INSERT INTO t VALUES (1, [1.0, 2.0, 3.0])").await;
    assert!(err.contains('4') && err.contains('3'), "{err}");
    // Nothing was committed.
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 0);
    let versions = scalar_i64(&ctx, "SELECT count(*) FROM vecfusion_versions('t')").await;
    assert_eq!(versions, 1);
}

#[tokio::test]
async fn a_table_sees_commits_of_other_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let a = table_at(&path, 4).await;
    let b = vecfusion::new_session_context();
    sql(
        &b,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}'",
            path.display()
        ),
    )
    .await;
    sql(&b, "INSERT INTO t SELECT * FROM random_vectors(10, 4)").await;
    assert_eq!(scalar_i64(&a, "SELECT count(*) FROM t").await, 10);
}

#[tokio::test]
async fn distance_functions_agree_with_definitions() {
    let ctx = vecfusion::new_session_context();
    let batches = sql(
        &ctx,
        "SELECT l2_distance([3.0, 4.0], [0.0, 0.0]), cosine_distance([1.0, 0.0], [0.0, 2.0]), \
         inner_product([1.0, 2.0], [3.0, 4.0]), negative_inner_product([1.0, 2.0], [3.0, 4.0])",
    )
    .await;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float32Type;
    let v: Vec<f32> = (0..4)
        .map(|i| batches[0].column(i).as_primitive::<Float32Type>().value(0))
        .collect();
    assert_eq!(v, vec![5.0, 1.0, 11.0, -11.0]);
}
