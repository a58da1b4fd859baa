//! `vecfusion_cleanup`: removes exactly the files this dataset's writers left behind and no
//! version refers to — never another dataset nested in its directories, never a user's file.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};

use crate::common::*;

fn removed_files(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<String> {
    let mut out: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_string::<i32>();
            (0..c.len())
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

fn fragment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
        .collect()
}

#[tokio::test]
async fn cleanup_removes_only_this_datasets_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a");
    let ctx = table_at(&dir, 4).await;
    sql(
        &ctx,
        "INSERT INTO t SELECT * FROM random_vectors(100, 4, 2, 1)",
    )
    .await;
    // Another dataset created inside this one's data directory, and a user's file.
    let inner = dir.join("data").join("inner");
    let other = table_at(&inner, 4).await;
    sql(
        &other,
        "INSERT INTO t SELECT * FROM random_vectors(50, 4, 2, 2)",
    )
    .await;
    std::fs::write(dir.join("data").join("notes.txt"), b"mine").unwrap();
    // What an interrupted INSERT leaves: an uncommitted fragment, and the staging file of an
    // upload killed before its rename (object_store's local store writes `<file>#<n>`).
    let committed = fragment_files(&dir);
    assert_eq!(committed.len(), 1);
    let orphan = "data/0123456789abcdef0123456789abcdef.arrow";
    let staging = "data/fedcba9876543210fedcba9876543210.arrow#1";
    std::fs::copy(&committed[0], dir.join(orphan)).unwrap();
    std::fs::write(dir.join(staging), vec![7u8; 4096]).unwrap();

    let recent = sql(&ctx, "SELECT * FROM vecfusion_cleanup('t')").await;
    assert!(
        removed_files(&recent).is_empty(),
        "files younger than an hour are left alone (a writer may still be running)"
    );
    let removed = sql(&ctx, "SELECT * FROM vecfusion_cleanup('t', 0)").await;
    assert_eq!(
        removed_files(&removed),
        vec![orphan.to_string(), staging.to_string()]
    );

    assert!(
        dir.join("data/notes.txt").exists(),
        "a user's file survives"
    );
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 100);
    // The nested dataset is whole: a fresh session reads every row of it.
    let reopened = open_table(&inner, "inner_t").await;
    assert_eq!(
        scalar_i64(&reopened, "SELECT count(*) FROM inner_t").await,
        50
    );
}

#[tokio::test]
async fn cleanup_ages_out_of_range_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = table_at(dir.path(), 4).await;
    sql(
        &ctx,
        "INSERT INTO t SELECT * FROM random_vectors(10, 4, 2, 1)",
    )
    .await;
    std::fs::write(
        dir.path()
            .join("data/0123456789abcdef0123456789abcdef.arrow"),
        b"x",
    )
    .unwrap();
    // An age older than the clock can express: nothing is old enough, nothing panics.
    let removed = sql(
        &ctx,
        "SELECT * FROM vecfusion_cleanup('t', 9223372036854775807)",
    )
    .await;
    assert!(removed_files(&removed).is_empty());
    let err = sql_err(&ctx, "SELECT * FROM vecfusion_cleanup('t', -5)").await;
    assert!(
        err.contains("min_age_seconds must be 0 or more (got -5)"),
        "{err}"
    );
}
