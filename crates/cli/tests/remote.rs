//! `vecfusion --remote df://HOST:PORT`: the same script through the shell, once against a
//! real cluster (a `vecfusion-scheduler` and two `vecfusion-executor` processes on
//! 127.0.0.1) and once in-process, prints the same rows.

use std::path::Path;
use std::process::{Command, Output};

use vecfusion_cluster::local::{LocalCluster, free_port};

const SHELL: &str = env!("CARGO_BIN_EXE_vecfusion");

/// The scheduler and executor binaries are built beside the shell (`cargo build` of the
/// workspace, which the test command runs first).
fn cluster() -> LocalCluster {
    let bin = Path::new(SHELL).parent().unwrap();
    LocalCluster::start(bin, 2, 2).unwrap_or_else(|e| panic!("{e}"))
}

fn shell(remote: Option<&str>, script: &str) -> Output {
    let mut cmd = Command::new(SHELL);
    if let Some(url) = remote {
        cmd.args(["--remote", url]);
    }
    cmd.args(["-q", "--format", "csv", "-c", script])
        .output()
        .unwrap()
}

fn shell_ok(remote: Option<&str>, script: &str) -> String {
    let out = shell(remote, script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn script(dir: &Path) -> String {
    format!(
        "CREATE EXTERNAL TABLE items (id BIGINT NOT NULL, embedding FLOAT[8]) \
         STORED AS VECFUSION LOCATION '{}'; \
         INSERT INTO items SELECT id, vector FROM random_vectors(2000, 8, 4, 5); \
         CREATE VECTOR INDEX idx ON items (embedding) USING IVF_FLAT \
           WITH (num_partitions = 4, accelerator = 'cpu'); \
         DELETE FROM items WHERE id % 10 = 0; \
         SELECT count(*) FROM items; \
         SELECT id FROM items ORDER BY l2_distance(embedding, [1,0,0,0,0,0,0,0]) LIMIT 10; \
         SELECT id, embedding FROM items WHERE id < 5 ORDER BY id;",
        dir.display()
    )
}

#[test]
fn the_shell_on_a_cluster_prints_what_it_prints_in_process() {
    let cluster = cluster();
    let data = tempfile::tempdir().unwrap();
    let out = shell(Some(&cluster.url()), &script(&data.path().join("remote")));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    let remote = String::from_utf8(out.stdout).unwrap();
    let local = shell_ok(None, &script(&data.path().join("local")));
    // The build's own result row differs in seconds and version paths; the queries after it
    // must not.
    let queries = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with("count("))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(queries(&remote), queries(&local));
    assert!(queries(&local).contains("1800"), "{local}");
}

#[test]
fn an_unreachable_cluster_fails_naming_its_address() {
    let url = format!("df://127.0.0.1:{}", free_port().unwrap());
    let out = shell(Some(&url), "SELECT 1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&url), "{err}");
}
