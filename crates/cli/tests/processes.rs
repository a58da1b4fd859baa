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
        let growing = files_in(&data).iter().any(|(_, len)| *len > 4 << 20);
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

/// `(name, bytes)` of the files in `dir` (an upload in progress included, under its staging
/// name); none when `dir` does not exist yet.
#[test]
fn sigkill_during_add_column_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    // Four fragments: the kill lands after some column files are written, before the commit.
    create_table(&path, 64, 250_000);
    for _ in 0..3 {
        shell_ok(&format!(
            "{} INSERT INTO t SELECT * FROM random_vectors(250000, 64);",
            open_sql(&path)
        ));
    }
    let data = path.join("data");
    let fragments = files_in(&data).len();
    let version = scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')");

    let mut child = spawn_quiet(&format!(
        "{} ALTER TABLE t ADD COLUMN copy FLOAT[64] AS (embedding);",
        open_sql(&path)
    ));
    let start = Instant::now();
    // Wait for the second column file, then kill without warning.
    while files_in(&data).len() < fragments + 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ADD COLUMN ended before it was killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no column file appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The version and its columns are as before, every row readable.
    assert_eq!(
        scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')"),
        version
    );
    let header = shell_ok(&format!("{} SELECT * FROM t LIMIT 1;", open_sql(&path)));
    assert_eq!(header.lines().next(), Some("id,embedding"));
    assert_eq!(scalar(&path, "SELECT count(*) FROM t"), 1_000_000);
    // The column can be added afterwards, and its values are the rows' own.
    shell_ok(&format!(
        "{} ALTER TABLE t ADD COLUMN copy FLOAT[64] AS (embedding);",
        open_sql(&path)
    ));
    assert_eq!(
        scalar(
            &path,
            "SELECT count(*) FROM t WHERE l2_distance(copy, embedding) = 0"
        ),
        1_000_000
    );
}

fn files_in(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir).map_or(vec![], |d| {
        d.filter_map(|e| e.ok())
            .map(|e| {
                let len = e.metadata().map_or(0, |m| m.len());
                (e.file_name().to_string_lossy().to_string(), len)
            })
            .collect()
    })
}

/// Files in the dataset's `_indexes/` whose name contains `kind`.
fn index_files(path: &Path, kind: &str) -> usize {
    files_in(&path.join("_indexes"))
        .iter()
        .filter(|(name, _)| name.contains(kind))
        .count()
}

/// `(segments, rows_indexed, rows_not_indexed)` of the table's one index.
fn index_state(path: &Path) -> (i64, i64, i64) {
    let out = shell_ok(&format!("{} SHOW VECTOR INDEXES FROM t;", open_sql(path)));
    let header: Vec<&str> = out.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = out.lines().nth(1).unwrap().split(',').collect();
    let field = |name: &str| {
        let i = header.iter().position(|h| *h == name).unwrap();
        row[i].parse::<i64>().unwrap()
    };
    (
        field("segments"),
        field("rows_indexed"),
        field("rows_not_indexed"),
    )
}

#[test]
fn sigkill_during_optimize_leaves_the_previous_version_at_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    create_table(&path, 32, 20_000);
    shell_ok(&format!(
        "{} CREATE VECTOR INDEX idx ON t (embedding) USING IVF_PQ WITH (num_partitions = 256, \
         num_sub_vectors = 16); INSERT INTO t SELECT id + 20000, vector FROM \
         random_vectors(1000000, 32);",
        open_sql(&path)
    ));
    let before = scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')");
    let optimize_at = |table: &Path| format!("{} OPTIMIZE VECTOR INDEX idx ON t;", open_sql(table));
    let optimize = optimize_at(&path);
    let retrain = format!(
        "{} OPTIMIZE VECTOR INDEX idx ON t WITH (retrain = true);",
        open_sql(&path)
    );
    // How long the OPTIMIZE runs on this machine, timed on a copy of the table: the two timed
    // kill points are fractions of it, so a fast machine still kills it part-way.
    let copy = dir.path().join("copy");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&path)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let timer = Instant::now();
    shell_ok(&optimize_at(&copy));
    let full = timer.elapsed();
    std::fs::remove_dir_all(&copy).unwrap();
    // Kill points: early in the scan, mid-encode, while the segment file is being written,
    // and a retrain killed after its model file was written.
    let mut killed_before_commit = 0;
    for (script, point) in [
        (&optimize, "a fifth of the way"),
        (&optimize, "half way"),
        (&optimize, "segment file"),
        (&retrain, "model file"),
    ] {
        let (segments, models) = (
            index_files(&path, ".segment.vfidx"),
            index_files(&path, ".model.vfidx"),
        );
        let mut child = spawn_quiet(script);
        let start = Instant::now();
        loop {
            let reached = match point {
                "a fifth of the way" => start.elapsed() > full / 5,
                "half way" => start.elapsed() > full / 2,
                "segment file" => index_files(&path, ".segment.vfidx") > segments,
                _ => index_files(&path, ".model.vfidx") > models,
            };
            if reached || child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{point}: never reached"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL (a no-op if it already finished)
        let status = child.wait().unwrap();
        let version = scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')");
        assert!(
            !status.success(),
            "{point}: OPTIMIZE finished before it was killed"
        );
        killed_before_commit += 1;
        assert_eq!(version, before, "{point}: a killed OPTIMIZE committed");
        // The previous version reads whole: every row, the index as it was, searches work.
        assert_eq!(
            scalar(&path, "SELECT count(*) FROM t"),
            1_020_000,
            "{point}"
        );
        assert_eq!(index_state(&path), (1, 20_000, 1_000_000), "{point}");
        assert_eq!(
            column(
                &path,
                "SELECT id FROM t ORDER BY l2_distance(embedding, embedding) LIMIT 3"
            )
            .len(),
            3
        );
    }
    assert_eq!(
        killed_before_commit, 4,
        "every kill landed before the commit"
    );
    // Then an OPTIMIZE runs to the end on the version the kills left.
    shell_ok(&optimize);
    assert_eq!(index_state(&path), (2, 1_020_000, 0));
    assert_eq!(
        scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')"),
        before + 1
    );
}

#[test]
fn sigkill_during_optimize_table_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let mut script = format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[32]) STORED AS VECFUSION \
         LOCATION '{}';",
        path.display()
    );
    for i in 0..40 {
        script.push_str(&format!(
            " INSERT INTO t SELECT id + {}, vector FROM random_vectors(25000, 32);",
            i * 25_000
        ));
    }
    script.push_str(" DELETE FROM t WHERE id % 10 = 0;");
    shell_ok(&script);
    let before = scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')");
    let sum = scalar(&path, "SELECT sum(id) FROM t");
    let compact = format!(
        "{} OPTIMIZE TABLE t WITH (target_rows_per_fragment = 10000000);",
        open_sql(&path)
    );
    // Kill points inside the rewrite (the new fragment is ~100 MB, written in parts, and the
    // commit only follows its completion): its upload has begun; it is past 32 MiB.
    for point in ["upload begun", "upload past 32 MiB"] {
        let existing = files_in(&path.join("data"));
        let mut child = spawn_quiet(&compact);
        let start = Instant::now();
        loop {
            // The data files the compaction is writing.
            let new: Vec<u64> = files_in(&path.join("data"))
                .into_iter()
                .filter(|(name, _)| !existing.iter().any(|(old, _)| old == name))
                .map(|(_, len)| len)
                .collect();
            let reached = match point {
                "upload begun" => !new.is_empty(),
                _ => new.iter().any(|len| *len > 32 << 20),
            };
            if reached || child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{point}: never reached"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        assert!(
            !child.wait().unwrap().success(),
            "{point}: finished before the kill"
        );
        assert_eq!(
            scalar(&path, "SELECT max(version) FROM vecfusion_versions('t')"),
            before,
            "{point}"
        );
        assert_eq!(scalar(&path, "SELECT count(*) FROM t"), 900_000, "{point}");
        assert_eq!(scalar(&path, "SELECT sum(id) FROM t"), sum, "{point}");
    }
    shell_ok(&compact);
    assert_eq!(
        scalar(
            &path,
            "SELECT fragments FROM vecfusion_versions('t') ORDER BY version DESC LIMIT 1"
        ),
        1
    );
    assert_eq!(scalar(&path, "SELECT sum(id) FROM t"), sum);
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

#[test]
fn piped_input_with_a_failed_statement_exits_non_zero() {
    let mut child = Command::new(SHELL)
        .args(["-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT nope;\nSELECT 1 AS one;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    // The statements after the failure still ran, as in an interactive session.
    assert!(String::from_utf8_lossy(&out.stdout).contains("one"));
}

#[test]
fn ctrl_c_cancels_a_build_its_training_stops_and_the_shell_exits_at_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    create_table(&path, 64, 200_000);
    let mut child = Command::new(SHELL)
        .args(["-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    // Hundreds of seconds of KMeans if nothing stops it.
    writeln!(
        stdin,
        "{} CREATE VECTOR INDEX idx ON t (embedding) USING IVF_FLAT WITH (num_partitions = \
         256, max_iterations = 1000, tolerance = 0);",
        open_sql(&path)
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(child.try_wait().unwrap().is_none(), "the build ended early");
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    std::thread::sleep(Duration::from_millis(300));
    drop(stdin); // end of input
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "the shell did not exit: the cancelled training kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("Statement cancelled."), "{err}");
    assert_eq!(
        status.code(),
        Some(1),
        "a cancelled statement fails piped input"
    );
    let shown = shell_ok(&format!("{} SHOW VECTOR INDEXES FROM t;", open_sql(&path)));
    assert_eq!(shown.lines().count(), 1, "nothing was committed: {shown}");
}
