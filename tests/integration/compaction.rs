//! `OPTIMIZE TABLE`: many small fragments and deleted rows rewritten into few fragments, the
//! indexes remapped in the same commit, every live row exactly once, and the conflicts.

use std::path::Path;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use datafusion::prelude::SessionContext;
use vecfusion::dataset::{Dataset, DatasetLocation};
use vecfusion::index::compact::compact;

use crate::common::*;

const DIM: usize = 8;

async fn latest(dir: &Path) -> Dataset {
    Dataset::open(DatasetLocation::local(dir).unwrap())
        .await
        .unwrap()
}

fn u64_at(b: &[RecordBatch], column: &str) -> u64 {
    let c = b[0].column(b[0].schema().index_of(column).unwrap());
    c.as_primitive::<UInt64Type>().value(0)
}

/// (count, distinct ids, sum of ids, sum of every vector component) of the live rows.
async fn checksum(ctx: &SessionContext, version: Option<u64>) -> (i64, i64, i64, f64) {
    let from = match version {
        Some(v) => format!("t VERSION AS OF {v}"),
        None => "t".into(),
    };
    let b = sql(
        ctx,
        &format!(
            "SELECT count(*), count(DISTINCT id), sum(id), \
             sum(array_element(embedding, 1) + array_element(embedding, 8)) FROM {from}"
        ),
    )
    .await;
    let i = |c: usize| b[0].column(c).as_primitive::<Int64Type>().value(0);
    let f = b[0].column(3).as_primitive::<Float64Type>().value(0);
    (i(0), i(1), i(2), f)
}

async fn setup(dir: &Path) -> SessionContext {
    let ctx = table_at(dir, DIM).await;
    // 50 small inserts; an index after the first 20, OPTIMIZEd after 35; deletes throughout.
    for i in 0..50 {
        let from = i * 200;
        sql(
            &ctx,
            &format!(
                "INSERT INTO t SELECT id, vector FROM random_vectors({}, {DIM}, 8, 4) WHERE id >= {from}",
                from + 200
            ),
        )
        .await;
        if i == 19 {
            sql(
                &ctx,
                "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8)",
            )
            .await;
        }
        if i == 34 {
            sql(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await;
        }
        if i % 7 == 3 {
            sql(&ctx, &format!("DELETE FROM t WHERE id % 13 = {}", i % 13)).await;
        }
    }
    ctx
}

async fn answers(ctx: &SessionContext, use_index: bool) -> Vec<Vec<i64>> {
    sql(ctx, &format!("SET vecfusion.use_index = {use_index}")).await;
    sql(ctx, "SET vecfusion.nprobes = 8").await;
    let mut out = vec![];
    for q in [
        "[0,0,0,0,0,0,0,0]",
        "[1,-1,1,-1,1,-1,1,-1]",
        "[0.5,2,0,-3,1,0,0,1]",
    ] {
        out.push(
            column_i64(
                ctx,
                &format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q}) LIMIT 10"),
            )
            .await,
        );
    }
    sql(ctx, "SET vecfusion.use_index = true").await;
    out
}

#[tokio::test]
async fn fifty_small_inserts_and_deletes_compact_keeping_every_live_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let before = latest(dir.path()).await;
    assert_eq!(before.fragments().len(), 50);
    let sums = checksum(&ctx, None).await;
    let exact = answers(&ctx, false).await;
    assert_eq!(answers(&ctx, true).await, exact);

    let r = sql(
        &ctx,
        "OPTIMIZE TABLE t WITH (target_rows_per_fragment = 4000)",
    )
    .await;
    let after = latest(dir.path()).await;
    assert_eq!(u64_at(&r, "version"), after.version());
    assert_eq!(after.manifest().operation.kind, "OPTIMIZE TABLE");
    // Three groups (before the index, in its first segment, in its second) in bins of
    // ≤ 4,000 rows.
    assert!(
        after.fragments().len() <= 6,
        "{} fragments",
        after.fragments().len()
    );
    assert!(after.fragments().iter().all(|f| f.deleted_rows() == 0));
    assert_eq!(
        u64_at(&r, "fragments_after") as usize,
        after.fragments().len()
    );
    assert_eq!(
        checksum(&ctx, None).await,
        sums,
        "every live row exactly once"
    );
    // The index was remapped, not rebuilt: same model, every covered row still covered.
    let (old, new) = (
        before.manifest().index("idx").unwrap(),
        after.manifest().index("idx").unwrap(),
    );
    assert_eq!(old.model, new.model);
    assert!(u64_at(&r, "segments_remapped") >= 1);
    let indexed_live: u64 = sql(&ctx, "SHOW VECTOR INDEXES FROM t")
        .await
        .iter()
        .map(|b| b.column(8).as_primitive::<UInt64Type>().value(0))
        .sum();
    let not_indexed = u64_at(
        &sql(&ctx, "SHOW VECTOR INDEXES FROM t").await,
        "rows_not_indexed",
    );
    assert_eq!(
        indexed_live + not_indexed,
        sums.0 as u64,
        "remapped segments hold live rows only"
    );
    assert_eq!(
        answers(&ctx, true).await,
        exact,
        "the same ANN answers at full probing"
    );
    assert_eq!(answers(&ctx, false).await, exact);

    // Time travel still reads the old fragments.
    assert_eq!(checksum(&ctx, Some(before.version())).await, sums);
    // Nothing left to do.
    let r = sql(
        &ctx,
        "OPTIMIZE TABLE t WITH (target_rows_per_fragment = 4000)",
    )
    .await;
    assert_eq!(u64_at(&r, "version"), after.version());
    let err = sql_err(&ctx, "OPTIMIZE TABLE t WITH (target_rows = 5)").await;
    assert!(err.contains("unknown option 'target_rows'"), "{err}");
    let err = sql_err(&ctx, "OPTIMIZE TABLE t WITH (target_rows_per_fragment = 0)").await;
    assert!(err.contains("must be a positive integer"), "{err}");
}

#[tokio::test]
async fn compaction_commutes_with_appends_and_conflicts_with_deletes_of_its_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    // A compaction prepared on this version...
    let stale = latest(dir.path()).await;
    // ...while an INSERT commits: it commutes, and its rows survive.
    sql(&ctx, "INSERT INTO t VALUES (-1, [9,9,9,9,9,9,9,9])").await;
    let count = checksum(&ctx, None).await.0;
    compact(&stale, 4000).await.unwrap();
    assert_eq!(checksum(&ctx, None).await.0, count);
    assert_eq!(
        column_i64(&ctx, "SELECT id FROM t WHERE id = -1").await,
        vec![-1]
    );

    // A DELETE of a fragment the compaction rewrites, committed first: a clear conflict,
    // and the deleted row stays deleted.
    for i in 0..5 {
        sql(&ctx, &format!("INSERT INTO t SELECT id + 100000, vector FROM random_vectors({}, {DIM}, 8, 5) WHERE id >= {}", (i + 1) * 10, i * 10)).await;
    }
    let stale = latest(dir.path()).await;
    sql(&ctx, "DELETE FROM t WHERE id = 100003").await;
    let err = compact(&stale, 4000).await.unwrap_err().to_string();
    assert!(err.contains("commit conflict"), "{err}");
    assert!(
        column_i64(&ctx, "SELECT id FROM t WHERE id = 100003")
            .await
            .is_empty()
    );
}
