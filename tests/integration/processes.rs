//! Crash safety and concurrency with real `vecfusion` processes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const SHELL: &str = env!("CARGO_BIN_EXE_vecfusion");

fn open_sql(path: &Path) -> String {
    format!(
        "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}';",
        path.display()
    )
}

#[tokio::test]
async fn sigkill_during_insert_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let ctx = table_at(&path, 64).await;
    sql(&ctx, "INSERT INTO t SELECT * FROM random_vectors(1000, 64)").await;

    // An insert big enough to still be writing when it is killed.
    let script = format!(
        "{} INSERT INTO t SELECT * FROM random_vectors(50000000, 64);",
        open_sql(&path)
    );
    let mut child = Command::new(SHELL)
        .args(["-q", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the new data file has megabytes in it (the first one holds 256 KiB), then
    // kill without warning.
    let data = path.join("data");
    let start = Instant::now();
    loop {
        let growing = std::fs::read_dir(&data)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().map(|m| m.len() > 4 << 20).unwrap_or(false));
        if growing {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the insert ended before it was killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no data file appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The dataset reads as before: version 2, 1000 rows, every row intact.
    let ctx = vecfusion::new_session_context();
    sql(&ctx, &open_sql(&path)).await;
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 1000);
    assert_eq!(
        scalar_i64(&ctx, "SELECT max(version) FROM vecfusion_versions('t')").await,
        2
    );
    assert_eq!(
        scalar_i64(
            &ctx,
            "SELECT count(*) FROM t WHERE l2_distance(embedding, embedding) = 0"
        )
        .await,
        1000
    );
    // And it still accepts writes.
    sql(&ctx, "INSERT INTO t SELECT * FROM random_vectors(5, 64)").await;
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 1005);
}

#[tokio::test]
async fn four_processes_inserting_concurrently_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let ctx = table_at(&path, 4).await;
    let children: Vec<_> = (0..4)
        .map(|p| {
            let mut script = open_sql(&path);
            for i in 0..25 {
                let id = p * 1000 + i;
                script.push_str(&format!(
                    "\nINSERT INTO t VALUES ({id}, [{p}.0, {i}.0, 0.5, 1.0]);"
                ));
            }
            Command::new(SHELL)
                .args(["-q", "-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ids = column_i64(&ctx, "SELECT id FROM t ORDER BY id").await;
    let expected: Vec<i64> = (0..4)
        .flat_map(|p| (0..25).map(move |i| p * 1000 + i))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(
        scalar_i64(&ctx, "SELECT count(*) FROM vecfusion_versions('t')").await,
        101
    );
}

#[test]
fn the_shell_prints_csv_and_fails_with_a_non_zero_exit_code() {
    let out = Command::new(SHELL)
        .args(["-q", "--format", "csv", "-c", "SELECT 1 AS a, 'x,y' AS b"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "a,b\n1,\"x,y\"\n");

    let out = Command::new(SHELL)
        .args(["-q", "-c", "SELECT * FROM no_such_table; SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no_such_table"), "{err}");
}
