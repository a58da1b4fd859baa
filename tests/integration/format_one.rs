//! A dataset written by vecfusion before index segments (manifest format 1, one index file
//! per index: `tests/fixtures/format1`, made by the shell of commit 1a9f959 with
//! `tests/fixtures/format1.sql`) opens, searches, and grows new-format segments.

use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
use vecfusion::dataset::{Dataset, DatasetLocation};
use vecfusion::quantizer::IndexKind;

use crate::common::*;

#[tokio::test]
async fn a_format_one_dataset_opens_searches_and_takes_new_segments() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
    copy_dir(&fixture, dir.path());
    let ds = Dataset::open(DatasetLocation::local(dir.path()).unwrap())
        .await
        .unwrap();
    let pq = ds
        .manifest()
        .index("pq")
        .expect("the format-1 IVF_PQ index")
        .clone();
    assert_eq!(pq.kind, IndexKind::IvfPq);
    assert_eq!(pq.segments.len(), 1);
    assert_eq!(
        pq.segments[0].file, pq.model.file,
        "one file is model and segment"
    );
    assert_eq!(pq.rows_indexed(), 2000);

    let ctx = open_table(dir.path(), "t").await;
    let shown = sql(&ctx, "SHOW VECTOR INDEXES FROM t").await;
    assert_eq!(shown[0].num_rows(), 2);
    // With every partition probed and candidates refined, the old index answers like the
    // exact plan.
    let q = "[0.5, -0.5, 0.25, 1.0, 0.0, 0.1, -1.0, 0.3]";
    let query = format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q}) LIMIT 10");
    sql(&ctx, "SET vecfusion.nprobes = 8").await;
    sql(&ctx, "SET vecfusion.refine_factor = 50").await;
    let plan = sql(&ctx, &format!("EXPLAIN ANALYZE {query}")).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(
        text.contains("index=pq (IVF_PQ)") && text.contains("rows_scored=2.00 K"),
        "{text}"
    );
    let with_index = column_i64(&ctx, &query).await;
    sql(&ctx, "SET vecfusion.use_index = false").await;
    let exact = column_i64(&ctx, &query).await;
    sql(&ctx, "SET vecfusion.use_index = true").await;
    assert_eq!(with_index, exact);
    // The cosine IVF_SQ index answers cosine queries.
    let cos = format!("SELECT id FROM t ORDER BY cosine_distance(embedding, {q}) LIMIT 5");
    let plan = sql(&ctx, &format!("EXPLAIN {cos}")).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains("index=sq (IVF_SQ)"), "{text}");
    assert_eq!(column_i64(&ctx, &cos).await.len(), 5);

    // New rows become a format-2 segment of the old model.
    sql(
        &ctx,
        "INSERT INTO t SELECT id + 2000, vector FROM random_vectors(300, 8, 4, 9)",
    )
    .await;
    let r = sql(&ctx, "OPTIMIZE VECTOR INDEX pq ON t").await;
    assert_eq!(r[0].column(1).as_primitive::<UInt64Type>().value(0), 300);
    let ds = Dataset::open(DatasetLocation::local(dir.path()).unwrap())
        .await
        .unwrap();
    let pq = ds.manifest().index("pq").unwrap();
    assert_eq!(pq.segments.len(), 2);
    assert_eq!(pq.rows_indexed(), 2300);
    let with_index = column_i64(&ctx, &query).await;
    sql(&ctx, "SET vecfusion.use_index = false").await;
    assert_eq!(with_index, column_i64(&ctx, &query).await);
    // And the version written before the change still reads as it was.
    let old = sql(&ctx, "SELECT count(*) FROM t VERSION AS OF 4").await;
    assert_eq!(old[0].column(0).as_primitive::<Int64Type>().value(0), 2000);
}
