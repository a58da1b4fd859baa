//! `ALTER TABLE ... ADD COLUMN / DROP COLUMN` on real datasets: column files next to the
//! fragments (nothing rewritten), one version per change, time travel across it, INSERT and
//! UPDATE following DEFAULT and computed columns, and errors that leave the version intact.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use vecfusion::dataset::{Dataset, DatasetLocation};
use vecfusion::new_session_context;

use crate::common::{column_i64, open_table, scalar_i64, sql, sql_err};

async fn dataset(path: &Path) -> Dataset {
    Dataset::open(DatasetLocation::local(path).unwrap())
        .await
        .unwrap()
}

/// Three fragments (ids 1..=30) with a few rows deleted from two of them.
async fn three_fragments(path: &Path) -> SessionContext {
    let ctx = new_session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t (id BIGINT, name VARCHAR) STORED AS VECFUSION LOCATION '{}'",
            path.display()
        ),
    )
    .await;
    for part in 0..3 {
        let values: Vec<String> = (1..=10)
            .map(|i| {
                let id = part * 10 + i;
                format!("({id}, 'row {id}')")
            })
            .collect();
        sql(&ctx, &format!("INSERT INTO t VALUES {}", values.join(", "))).await;
    }
    sql(&ctx, "DELETE FROM t WHERE id IN (3, 4, 25)").await;
    ctx
}

/// `(id, value)` of every row, the value as `i64` (`None` when NULL).
async fn pairs(ctx: &SessionContext, query: &str) -> BTreeMap<i64, Option<i64>> {
    sql(ctx, query)
        .await
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_primitive::<Int64Type>().clone();
            let values = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows())
                .map(|r| (ids.value(r), values.is_valid(r).then(|| values.value(r))))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn column_names(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<String> {
    batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[tokio::test]
async fn add_column_as_expression_writes_column_files_and_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = three_fragments(dir.path()).await;
    let before = dataset(dir.path()).await;
    let files_before: Vec<(String, u64)> = before
        .fragments()
        .iter()
        .map(|f| (f.file.clone(), f.file_bytes))
        .collect();

    let result = sql(&ctx, "ALTER TABLE t ADD COLUMN twice BIGINT AS (id * 2)").await;
    assert_eq!(
        result[0]
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0),
        30,
        "rows written (deleted rows included, as NULL)"
    );

    let after = dataset(dir.path()).await;
    assert_eq!(after.version(), before.version() + 1, "one version");
    // The data files are the same files, each fragment has one column file more.
    for (f, (file, bytes)) in after.fragments().iter().zip(&files_before) {
        assert_eq!((&f.file, f.file_bytes), (file, *bytes));
        assert_eq!(f.column_files.len(), 1);
        assert_eq!(f.column_files[0].columns, vec!["twice".to_string()]);
        assert!(dir.path().join(&f.column_files[0].file).is_file());
    }
    let values = pairs(&ctx, "SELECT id, twice FROM t ORDER BY id").await;
    assert_eq!(values.len(), 27);
    for (id, twice) in &values {
        assert_eq!(*twice, Some(id * 2), "row {id}");
    }
    // Filters and projections over the new column go through the scan like any other.
    assert_eq!(
        column_i64(&ctx, "SELECT id FROM t WHERE twice > 50 ORDER BY id").await,
        vec![26, 27, 28, 29, 30]
    );

    // Time travel: the version before has the old columns and the same rows.
    let old = sql(
        &ctx,
        &format!("SELECT * FROM t VERSION AS OF {} LIMIT 1", before.version()),
    )
    .await;
    assert_eq!(column_names(&old), vec!["id", "name"]);
    assert_eq!(
        scalar_i64(
            &ctx,
            &format!("SELECT count(*) FROM t VERSION AS OF {}", before.version())
        )
        .await,
        27
    );
    // A new session reads the new schema from the manifest.
    let fresh = open_table(dir.path(), "t").await;
    let all = sql(&fresh, "SELECT * FROM t LIMIT 1").await;
    assert_eq!(column_names(&all), vec!["id", "name", "twice"]);
}

#[tokio::test]
async fn inserts_and_updates_follow_computed_and_default_columns() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = three_fragments(dir.path()).await;
    sql(&ctx, "ALTER TABLE t ADD COLUMN twice BIGINT AS (id * 2)").await;
    sql(&ctx, "ALTER TABLE t ADD COLUMN score DOUBLE DEFAULT 1.5").await;

    // Existing rows got the default.
    let scores = sql(&ctx, "SELECT DISTINCT score FROM t").await;
    assert_eq!(scores[0].num_rows(), 1);
    assert_eq!(
        scores[0].column(0).as_primitive::<Float64Type>().value(0),
        1.5
    );

    // An INSERT that leaves them out gets the expression's value and the default.
    sql(
        &ctx,
        "INSERT INTO t (id, name) VALUES (100, 'new'), (101, 'newer')",
    )
    .await;
    let rows = pairs(&ctx, "SELECT id, twice FROM t WHERE id >= 100 ORDER BY id").await;
    assert_eq!(rows, BTreeMap::from([(100, Some(200)), (101, Some(202))]));
    assert_eq!(
        scalar_i64(
            &ctx,
            "SELECT count(*) FROM t WHERE id >= 100 AND score = 1.5"
        )
        .await,
        2
    );
    // A given value for a DEFAULT column is kept; one for a computed column is refused.
    sql(
        &ctx,
        "INSERT INTO t (id, name, score) VALUES (102, 'x', 9.0)",
    )
    .await;
    assert_eq!(
        scalar_i64(
            &ctx,
            "SELECT count(*) FROM t WHERE id = 102 AND score = 9.0"
        )
        .await,
        1
    );
    let err = sql_err(&ctx, "INSERT INTO t (id, name, twice) VALUES (103, 'y', 7)").await;
    assert!(err.contains("column 'twice' is computed"), "{err}");
    assert_eq!(
        scalar_i64(&ctx, "SELECT count(*) FROM t WHERE id = 103").await,
        0
    );

    // UPDATE recomputes a computed column when a column it reads changes, and cannot set it.
    sql(&ctx, "UPDATE t SET id = 1000 WHERE id = 100").await;
    assert_eq!(
        pairs(&ctx, "SELECT id, twice FROM t WHERE id = 1000").await,
        BTreeMap::from([(1000, Some(2000))])
    );
    sql(&ctx, "UPDATE t SET name = 'renamed' WHERE id = 1000").await;
    assert_eq!(
        pairs(&ctx, "SELECT id, twice FROM t WHERE id = 1000").await,
        BTreeMap::from([(1000, Some(2000))])
    );
    let err = sql_err(&ctx, "UPDATE t SET twice = 1 WHERE id = 1000").await;
    assert!(err.contains("computed from other columns"), "{err}");

    // OPTIMIZE TABLE rewrites fragments with every column and no column files.
    sql(&ctx, "OPTIMIZE TABLE t").await;
    let compacted = dataset(dir.path()).await;
    assert!(
        compacted
            .fragments()
            .iter()
            .all(|f| f.column_files.is_empty())
    );
    let values = pairs(&ctx, "SELECT id, twice FROM t ORDER BY id").await;
    assert_eq!(values.len(), 30);
    assert!(values.iter().all(|(id, twice)| *twice == Some(id * 2)));
}

#[tokio::test]
async fn drop_column_changes_the_schema_only_and_time_travel_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = three_fragments(dir.path()).await;
    sql(&ctx, "ALTER TABLE t ADD COLUMN twice BIGINT AS (id * 2)").await;
    let with_twice = dataset(dir.path()).await.version();

    let err = sql_err(&ctx, "ALTER TABLE t DROP COLUMN id").await;
    assert!(err.contains("'twice' is computed"), "{err}");

    sql(&ctx, "ALTER TABLE t DROP COLUMN name").await;
    let now = sql(&ctx, "SELECT * FROM t LIMIT 1").await;
    assert_eq!(column_names(&now), vec!["id", "twice"]);
    let old = sql(
        &ctx,
        &format!("SELECT * FROM t VERSION AS OF {with_twice} LIMIT 1"),
    )
    .await;
    assert_eq!(column_names(&old), vec!["id", "name", "twice"]);
    assert_eq!(
        scalar_i64(
            &ctx,
            &format!("SELECT count(*) FROM t VERSION AS OF {with_twice} WHERE name = 'row 7'")
        )
        .await,
        1
    );

    // Dropping the computed column retires its files; the same name can come back with
    // other values.
    sql(&ctx, "ALTER TABLE t DROP COLUMN twice").await;
    assert!(
        dataset(dir.path())
            .await
            .fragments()
            .iter()
            .all(|f| f.column_files.is_empty())
    );
    sql(&ctx, "ALTER TABLE t ADD COLUMN twice BIGINT AS (id + 1)").await;
    let values = pairs(&ctx, "SELECT id, twice FROM t ORDER BY id").await;
    assert!(values.iter().all(|(id, twice)| *twice == Some(id + 1)));

    // IF EXISTS / IF NOT EXISTS are no-ops that commit nothing.
    let version = dataset(dir.path()).await.version();
    sql(&ctx, "ALTER TABLE t DROP COLUMN IF EXISTS nope").await;
    sql(&ctx, "ALTER TABLE t ADD COLUMN IF NOT EXISTS twice BIGINT").await;
    assert_eq!(dataset(dir.path()).await.version(), version);
    let err = sql_err(&ctx, "ALTER TABLE t DROP COLUMN nope").await;
    assert!(err.contains("no column 'nope'"), "{err}");
}

#[tokio::test]
async fn an_added_vector_column_can_be_indexed_and_searched() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = new_session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[8]) STORED AS VECFUSION \
             LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await;
    sql(&ctx, "INSERT INTO t SELECT * FROM random_vectors(600, 8)").await;
    sql(
        &ctx,
        "INSERT INTO t SELECT id + 600, vector FROM random_vectors(600, 8)",
    )
    .await;
    sql(
        &ctx,
        "ALTER TABLE t ADD COLUMN v FLOAT[3] AS ([CAST(id AS FLOAT), 0.0, 1.0])",
    )
    .await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX v_idx ON t (v) USING IVF_FLAT WITH (num_partitions = 4)",
    )
    .await;
    let query = "SELECT id FROM t ORDER BY l2_distance(v, [500.2, 0.0, 1.0]) LIMIT 3";
    let text = crate::common::explain(&ctx, query).await;
    assert!(text.contains("AnnSearch"), "{text}");
    assert_eq!(column_i64(&ctx, query).await, vec![500, 501, 499]);
    // A column with an index cannot be dropped until the index is.
    let err = sql_err(&ctx, "ALTER TABLE t DROP COLUMN v").await;
    assert!(err.contains("vector index 'v_idx'"), "{err}");
}

#[tokio::test]
async fn a_session_registered_before_the_change_sees_it_on_its_next_statement() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = three_fragments(dir.path()).await;
    let other = open_table(dir.path(), "t").await;
    sql(&ctx, "ALTER TABLE t ADD COLUMN twice BIGINT AS (id * 2)").await;
    let values = pairs(&other, "SELECT id, twice FROM t WHERE id = 5").await;
    assert_eq!(values, BTreeMap::from([(5, Some(10))]));
    sql(
        &other,
        "INSERT INTO t (id, name) VALUES (77, 'from the other session')",
    )
    .await;
    assert_eq!(
        pairs(&ctx, "SELECT id, twice FROM t WHERE id = 77").await,
        BTreeMap::from([(77, Some(154))])
    );
}

#[tokio::test]
async fn bad_alter_statements_fail_clearly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = three_fragments(dir.path()).await;
    let version = dataset(dir.path()).await.version();
    let cases = [
        (
            "ALTER TABLE t ADD COLUMN id BIGINT",
            "already has a column 'id'",
        ),
        (
            "ALTER TABLE t ADD COLUMN c BIGINT NOT NULL",
            "leave out NOT NULL",
        ),
        (
            "ALTER TABLE t ADD COLUMN c BIGINT AS (nosuchfn(id))",
            "nosuchfn",
        ),
        (
            "ALTER TABLE t ADD COLUMN c BIGINT AS (nosuchcol + 1)",
            "nosuchcol",
        ),
        (
            "ALTER TABLE t ADD COLUMN c DOUBLE AS (random())",
            "volatile",
        ),
        (
            "ALTER TABLE t ADD COLUMN c BIGINT AS (sum(id))",
            "aggregate",
        ),
        (
            "ALTER TABLE t ADD COLUMN c BIGINT DEFAULT (id)",
            "must be a constant",
        ),
        (
            "ALTER TABLE t ADD COLUMN c FLOAT[0]",
            "vector columns have 1 to",
        ),
        ("ALTER TABLE t ADD COLUMN c BIGINT FIRST", "FIRST/AFTER"),
        (
            "ALTER TABLE t ADD COLUMN c BOOLEAN AS ([1.0, 2.0])",
            "cannot be stored",
        ),
        (
            "ALTER TABLE t ADD COLUMN c INT, ADD COLUMN d INT",
            "one ADD COLUMN at a time",
        ),
        (
            "ALTER TABLE t RENAME COLUMN id TO key",
            "not supported on vecfusion tables",
        ),
        (
            "ALTER TABLE t DROP COLUMN id, DROP COLUMN name",
            "cannot drop every column",
        ),
        ("ALTER TABLE nosuch ADD COLUMN c INT", "nosuch"),
    ];
    for (statement, expected) in cases {
        let err = sql_err(&ctx, statement).await;
        assert!(err.contains(expected), "{statement}: {err}");
    }
    // A value the type cannot hold fails while writing: nothing is committed, no column file
    // stays behind.
    let files_before = std::fs::read_dir(dir.path().join("data")).unwrap().count();
    let err = sql_err(&ctx, "ALTER TABLE t ADD COLUMN c BIGINT AS (name)").await;
    assert!(err.contains("cannot store"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("data")).unwrap().count(),
        files_before
    );
    assert_eq!(dataset(dir.path()).await.version(), version);
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 27);

    // ALTER TABLE of a table that is not a vecfusion table.
    sql(&ctx, "CREATE TABLE mem (a INT)").await;
    let err = sql_err(&ctx, "ALTER TABLE mem ADD COLUMN b INT").await;
    assert!(err.contains("not a vecfusion table"), "{err}");
    // IF EXISTS of a missing table is a no-op.
    sql(&ctx, "ALTER TABLE IF EXISTS nosuch ADD COLUMN c INT").await;
}
