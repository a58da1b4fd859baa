//! The `vecfusion` shell as a real process: scripts, output formats, exit codes, and crash
//! safety and concurrency of the datasets it writes (SIGKILL in the middle of a write,
//! several processes committing at once). Every check reads the dataset back through a fresh
//! shell process.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SHELL: &str = env!("CARGO_BIN_EXE_vecfusion");

fn open_sql(path: &Path) -> String {
    format!(
        "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}';",
        path.display()
    )
}

/// Runs a script in a new shell process, quietly, printing CSV.
fn shell(script: &str) -> Output {
    Command::new(SHELL)
        .args(["-q", "--format", "csv", "-c", script])
        .output()
        .unwrap()
}

/// Runs `script` and panics with its stderr if it fails.
fn shell_ok(script: &str) -> String {
    let out = shell(script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The values of the one-column result of `query` on the dataset at `path`.
fn column(path: &Path, query: &str) -> Vec<i64> {
    let out = shell_ok(&format!("{} {query}", open_sql(path)));
    out.lines()
        .skip(1) // the CSV header
        .map(|l| l.parse().unwrap_or_else(|e| panic!("{query}: {l}: {e}")))
        .collect()
}

/// Starts a script in a new shell process, discarding its output (to be killed).
fn spawn_quiet(script: &str) -> Child {
    Command::new(SHELL)
        .args(["-q", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn scalar(path: &Path, query: &str) -> i64 {
    let values = column(path, query);
    assert_eq!(values.len(), 1, "{query}: {values:?}");
    values[0]
}

fn create_table(path: &Path, dim: usize, rows: usize) {
    shell_ok(&format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[{dim}]) STORED AS VECFUSION \
         LOCATION '{}'; INSERT INTO t SELECT * FROM random_vectors({rows}, {dim});",
        path.display()
    ));
}

#[test]
fn sigkill_during_insert_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    create_table(&path, 64, 1000);

    // An insert big enough to still be writing when it is killed.
    let script = format!(
        "{} INSERT INTO t SELECT * FROM random_vectors(50000000, 64);",
        open_sql(&path)
    );
    let mut child = spawn_quiet(&script);
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
    assert_eq!(scalar(&path, "SELECT count(*) FROM t"), 1000);
    assert_eq!(
        scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')"),
        2
    );
    assert_eq!(
        scalar(
            &path,
            "SELECT count(*) FROM t WHERE l2_distance(embedding, embedding) = 0"
        ),
        1000
    );
    // And it still accepts writes.
    shell_ok(&format!(
        "{} INSERT INTO t SELECT * FROM random_vectors(5, 64);",
        open_sql(&path)
    ));
    assert_eq!(scalar(&path, "SELECT count(*) FROM t"), 1005);
}

#[test]
fn sigkill_during_a_build_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    create_table(&path, 64, 200_000);
    let script = format!(
        "{} CREATE VECTOR INDEX idx ON t (embedding) USING IVF_FLAT WITH (num_partitions = \
         1024, max_iterations = 50, tolerance = 0);",
        open_sql(&path)
    );
    let mut child = spawn_quiet(&script);
    // Let it get into training, then kill it.
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the build finished before it was killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(
        scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')"),
        2
    );
    assert_eq!(scalar(&path, "SELECT count(*) FROM t"), 200_000);
    let shown = shell_ok(&format!("{} SHOW VECTOR INDEXES FROM t;", open_sql(&path)));
    assert_eq!(shown.lines().count(), 1, "only the CSV header: {shown}");
}

#[test]
fn four_processes_inserting_concurrently_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    shell_ok(&format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[4]) STORED AS VECFUSION \
         LOCATION '{}';",
        path.display()
    ));
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
    let ids = column(&path, "SELECT id FROM t ORDER BY id");
    let expected: Vec<i64> = (0..4)
        .flat_map(|p| (0..25).map(move |i| p * 1000 + i))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(
        scalar(&path, "SELECT count(*) FROM vecfusion_versions('t')"),
        101
    );
}

#[test]
fn the_shell_prints_csv_and_fails_with_a_non_zero_exit_code() {
    let out = shell("SELECT 1 AS a, 'x,y' AS b");
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "a,b\n1,\"x,y\"\n");

    let out = shell("SELECT * FROM no_such_table; SELECT 1");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no_such_table"), "{err}");
}
