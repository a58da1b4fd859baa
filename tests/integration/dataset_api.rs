//! The dataset through its Rust API: take by address, commit conflicts, damaged storage.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::physical_plan::{ExecutionPlan, collect};
use vecfusion::dataset::{Dataset, DatasetLocation, Operation, deletion, row_address};
use vecfusion::provider::{ROW_ADDRESS_COLUMN, ScanRequest, VecfusionScanExec};

use crate::common::*;

async fn dataset_with_rows(dir: &std::path::Path, rows: usize) -> Dataset {
    let ctx = table_at(dir, 8).await;
    sql(
        &ctx,
        &format!("INSERT INTO t SELECT * FROM random_vectors({rows}, 8)"),
    )
    .await;
    Dataset::open(DatasetLocation::local(dir).unwrap())
        .await
        .unwrap()
}

async fn scan_with_addresses(ds: &Dataset) -> Vec<RecordBatch> {
    let ctx = vecfusion::new_session_context();
    let state = ctx.state();
    let request = ScanRequest {
        with_row_address: true,
        ..Default::default()
    };
    let exec = Arc::new(
        VecfusionScanExec::try_new(&state, ds.clone(), request, 2)
            .await
            .unwrap(),
    );
    assert_eq!(exec.schema().field(2).name(), ROW_ADDRESS_COLUMN);
    collect(exec, ctx.task_ctx()).await.unwrap()
}

#[tokio::test]
async fn take_returns_the_rows_a_scan_reports_at_those_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset_with_rows(dir.path(), 20_000).await;
    let scanned = scan_with_addresses(&ds).await;
    let mut by_addr = std::collections::HashMap::new();
    for b in &scanned {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let addrs = b.column(2).as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            by_addr.insert(addrs.value(i), ids.value(i));
        }
    }
    assert_eq!(by_addr.len(), 20_000);
    // Addresses from several batches, out of order, with a repeat.
    let frag = ds.fragments()[0].id;
    let wanted: Vec<u64> = [19_999u32, 0, 8192, 5, 8191, 5, 12_345]
        .iter()
        .map(|o| row_address(frag, *o))
        .collect();
    let taken = ds.take(&wanted, Some(&[0, 1])).await.unwrap();
    let ids = taken.column(0).as_primitive::<Int64Type>();
    for (i, addr) in wanted.iter().enumerate() {
        assert_eq!(ids.value(i), by_addr[addr]);
    }
    assert_eq!(taken.column(1).len(), wanted.len());
    let err = ds
        .take(&[row_address(frag, 20_000)], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has only 20000 rows"), "{err}");
}

#[tokio::test]
async fn appends_commute_but_deletes_of_the_same_fragment_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset_with_rows(dir.path(), 100).await;
    let frag = ds.fragments()[0].clone();

    // Two writers prepared from the same version.
    let (a, b) = (ds.clone(), ds.clone());
    let mut d1 = roaring::RoaringBitmap::new();
    d1.insert(1);
    let mut d2 = roaring::RoaringBitmap::new();
    d2.insert(2);
    let m1 = deletion::write_deletions(ds.location(), frag.id, &d1)
        .await
        .unwrap();
    let m2 = deletion::write_deletions(ds.location(), frag.id, &d2)
        .await
        .unwrap();
    a.commit(&Operation::Delete {
        deletions: vec![(frag.id, m1)],
        rows_deleted: 1,
    })
    .await
    .unwrap();
    let err = b
        .commit(&Operation::Delete {
            deletions: vec![(frag.id, m2)],
            rows_deleted: 1,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("commit conflict"), "{err}");

    // An append prepared from the old version still commits, on top of the delete.
    let mut w = ds.fragment_writer().unwrap();
    w.write(scan_with_addresses(&ds).await[0].project(&[0, 1]).unwrap())
        .await
        .unwrap();
    let f = w.finish().await.unwrap().unwrap();
    let after = ds
        .commit(&Operation::Append { fragments: vec![f] })
        .await
        .unwrap();
    assert_eq!(after.version(), ds.version() + 2);
    assert_eq!(after.fragments().len(), 2);
    assert_eq!(after.fragments()[0].deleted_rows(), 1);
}

#[tokio::test]
async fn damaged_or_foreign_storage_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    dataset_with_rows(&path, 10).await;
    let ctx = vecfusion::new_session_context();
    let open = format!(
        "CREATE EXTERNAL TABLE x STORED AS VECFUSION LOCATION '{}'",
        path.display()
    );
    // The table opens (older versions stay readable); reading the latest version fails.
    let latest_error = || async {
        let ctx = vecfusion::new_session_context();
        sql(&ctx, &open).await;
        sql_err(&ctx, "SELECT count(*) FROM x").await
    };

    // A flipped byte in the latest manifest.
    let latest = path.join("_versions/00000000000000000002.manifest");
    let mut bytes = std::fs::read(&latest).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x20;
    std::fs::write(&latest, &bytes).unwrap();
    let err = latest_error().await;
    assert!(
        err.contains("corrupted manifest") && err.contains("checksum"),
        "{err}"
    );

    // A manifest that is some other file entirely.
    std::fs::write(&latest, b"PAR1 not a manifest").unwrap();
    let err = latest_error().await;
    assert!(err.contains("not a vecfusion manifest"), "{err}");

    // No manifests at all.
    std::fs::remove_dir_all(path.join("_versions")).unwrap();
    let err = sql_err(&ctx, &open).await;
    assert!(err.contains("is not a vecfusion dataset"), "{err}");

    // A LOCATION that is a regular file.
    let file = dir.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE f STORED AS VECFUSION LOCATION '{}'",
            file.display()
        ),
    )
    .await;
    assert!(
        err.contains("is a file; a vecfusion dataset is a directory"),
        "{err}"
    );

    // A directory of other files is not taken over.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("data.parquet"), b"PAR1").unwrap();
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE y (id BIGINT) STORED AS VECFUSION LOCATION '{}'",
            foreign.display()
        ),
    )
    .await;
    assert!(
        err.contains("not empty and is not a vecfusion dataset"),
        "{err}"
    );
}

#[tokio::test]
async fn a_damaged_fragment_is_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset_with_rows(dir.path(), 10).await;
    let file = dir.path().join(&ds.fragments()[0].file);
    std::fs::write(&file, b"garbage").unwrap();
    let ctx = vecfusion::new_session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE x STORED AS VECFUSION LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await;
    let err = sql_err(&ctx, "SELECT * FROM x").await;
    assert!(err.contains("corrupted or not an Arrow IPC file"), "{err}");
}
