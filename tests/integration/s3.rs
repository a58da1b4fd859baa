//! Datasets on an S3-compatible server: SeaweedFS (`weed mini`, from
//! `scripts/fetch-s3-server.sh`), started as a process on 127.0.0.1 for each test. SQL reaches
//! it through table options; commits rely on its conditional PUT.

use std::path::PathBuf;
use std::process::Command;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use vecfusion::dataset::{Dataset, DatasetLocation, Operation, deletion};
use vecfusion::new_session_context;
use vecfusion_cluster::local::LocalCluster;
use vecfusion_cluster::local_s3::{BUCKET, KEY, LocalS3 as S3Server, SECRET};
use vecfusion_cluster::remote_session_context;

use crate::common::{column_i64, explain, scalar_i64, sql, sql_err};

/// The query the tests search with.
const TOP_10: &str = "SELECT id FROM t ORDER BY l2_distance(embedding, \
                      [0.1, -0.2, 0.3, 0.0, 0.5, -0.1, 0.2, 0.4]) LIMIT 10";

/// A cluster (`vecfusion-scheduler` and two `vecfusion-executor` processes) writes, indexes
/// and searches a table on S3. The storage options travel with the plans, so the executors
/// need no AWS settings of their own; an in-process session reading the same prefix sees
/// what the cluster wrote and gets the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_writes_indexes_and_searches_a_table_on_s3() {
    let server = S3Server::start().await.unwrap();
    // This test runs from target/<profile>/deps; the cluster's binaries are in target/<profile>.
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let cluster = LocalCluster::start(bin, 2, 2).unwrap_or_else(|e| panic!("{e}"));
    let remote = remote_session_context(&cluster.url()).await.unwrap();
    let columns = "(id BIGINT NOT NULL, embedding FLOAT[8])";
    sql(&remote, &server.create_table("t", "cluster/items", columns)).await;
    sql(
        &remote,
        "INSERT INTO t SELECT * FROM random_vectors(3000, 8, 4, 2)",
    )
    .await;
    sql(
        &remote,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_PQ \
         WITH (num_partitions = 8, num_sub_vectors = 2, accelerator = 'cpu')",
    )
    .await;
    let query = TOP_10;
    let plan = explain(&remote, query).await;
    assert!(
        plan.contains("distributed_plan") && plan.contains("index=idx"),
        "{plan}"
    );
    let local = new_session_context();
    sql(&local, &server.create_table("t", "cluster/items", columns)).await;
    assert_eq!(
        column_i64(&remote, query).await,
        column_i64(&local, query).await
    );
    sql(&remote, "DELETE FROM t WHERE id < 500").await;
    assert_eq!(scalar_i64(&local, "SELECT count(*) FROM t").await, 2500);
}

/// The whole life of a table on S3: create, appends, an index that serves a query, a delete,
/// time travel, and a second session that sees the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_on_s3_is_written_indexed_searched_and_time_travelled() {
    let server = S3Server::start().await.unwrap();
    let ctx = new_session_context();
    let columns = "(id BIGINT, embedding FLOAT[8])";
    sql(&ctx, &server.create_table("t", "shop/items", columns)).await;
    sql(&ctx, "INSERT INTO t SELECT * FROM random_vectors(2000, 8)").await;
    sql(
        &ctx,
        "INSERT INTO t SELECT id + 2000, vector FROM random_vectors(1000, 8, 4, 7)",
    )
    .await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX t_idx ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8)",
    )
    .await;
    let query = TOP_10;
    let plan = explain(&ctx, query).await;
    assert!(plan.contains("index=t_idx"), "{plan}");
    // Every partition probed, IVF_FLAT answers exactly: the exact plan's rows.
    sql(&ctx, "SET vecfusion.nprobes = 8").await;
    let ann = column_i64(&ctx, query).await;
    sql(&ctx, "SET vecfusion.use_index = false").await;
    let exact = column_i64(&ctx, query).await;
    sql(&ctx, "SET vecfusion.use_index = true").await;
    assert_eq!(ann.len(), 10);
    assert_eq!(ann, exact);

    sql(&ctx, "DELETE FROM t WHERE id < 100").await;
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM t").await, 2900);
    let first = scalar_i64(
        &ctx,
        "SELECT min(version) FROM vecfusion_versions('t') WHERE total_rows = 2000",
    )
    .await;
    let at_first = format!("SELECT count(*) FROM t VERSION AS OF {first}");
    assert_eq!(scalar_i64(&ctx, &at_first).await, 2000);

    // The files are in the bucket, under the prefix.
    let store = server.store().unwrap();
    let manifests: Vec<_> = store
        .list(Some(&Path::from("shop/items/_versions")))
        .try_collect()
        .await
        .unwrap();
    assert!(manifests.len() >= 5, "{manifests:?}");

    // Another session opens the dataset (no column list) and sees the same rows and index.
    let other = new_session_context();
    sql(&other, &server.create_table("u", "shop/items", "")).await;
    assert_eq!(scalar_i64(&other, "SELECT count(*) FROM u").await, 2900);
    let found = column_i64(
        &other,
        "SELECT id FROM vector_search('u', 'embedding', \
         [0.1, -0.2, 0.3, 0.0, 0.5, -0.1, 0.2, 0.4], 10, 8) ORDER BY _distance",
    )
    .await;
    let exact_now: Vec<i64> = exact.iter().copied().filter(|id| *id >= 100).collect();
    assert_eq!(found[..exact_now.len()], exact_now[..]);
}

/// Writers in several sessions commit to one S3 dataset at once: every append lands exactly
/// once (rebased past the others), and of two deletes of one fragment prepared from the same
/// version exactly one commits — the server's conditional PUT decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_s3_never_lose_a_commit() {
    let server = S3Server::start().await.unwrap();
    let columns = "(id BIGINT, embedding FLOAT[4])";
    let first = new_session_context();
    sql(&first, &server.create_table("t", "shared", columns)).await;
    let (writers, inserts, rows) = (4, 3, 50);
    let mut tasks = vec![];
    for w in 0..writers {
        let create = server.create_table("t", "shared", "");
        tasks.push(tokio::spawn(async move {
            let ctx = new_session_context();
            sql(&ctx, &create).await;
            for i in 0..inserts {
                let start = (w * inserts + i) * rows;
                sql(
                    &ctx,
                    &format!(
                        "INSERT INTO t SELECT id + {start}, vector \
                         FROM random_vectors({rows}, 4, 2, {start})"
                    ),
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = (writers * inserts * rows) as i64;
    assert_eq!(scalar_i64(&first, "SELECT count(*) FROM t").await, total);
    assert_eq!(
        scalar_i64(&first, "SELECT count(DISTINCT id) FROM t").await,
        total
    );
    let appends = scalar_i64(
        &first,
        "SELECT count(*) FROM vecfusion_versions('t') WHERE rows_added > 0",
    )
    .await;
    assert_eq!(appends, (writers * inserts) as i64);

    // Two deletes of one fragment from the same version: one commits, one conflicts.
    let runtime = first.runtime_env();
    let location = DatasetLocation::resolve_with_options(
        &format!("s3://{BUCKET}/shared"),
        &server.options(),
        runtime.as_ref(),
    )
    .unwrap();
    let ds = Dataset::open(location).await.unwrap();
    let frag = ds.fragments()[0].id;
    let mut results = vec![];
    for offset in [1u32, 2] {
        let mut rows = roaring::RoaringBitmap::new();
        rows.insert(offset);
        let file = deletion::write_deletions(ds.location(), frag, &rows)
            .await
            .unwrap();
        results.push(
            ds.commit(&Operation::Delete {
                deletions: vec![(frag, file)],
                rows_deleted: 1,
            })
            .await,
        );
    }
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("commit conflict"), "{err}");
    assert_eq!(
        scalar_i64(&first, "SELECT count(*) FROM t").await,
        total - 1
    );
}

/// Wrong credentials, an unknown storage option and storage options on a local path are
/// refused with errors that say what to fix, and create nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_s3_settings_get_clear_errors() {
    let server = S3Server::start().await.unwrap();
    let ctx = new_session_context();
    let wrong_secret = server
        .create_table("t", "nope", "(id BIGINT)")
        .replace(SECRET, "not-the-secret");
    let err = sql_err(&ctx, &wrong_secret).await;
    assert!(
        err.contains(&format!(
            "cannot read the dataset location s3://{BUCKET}/nope"
        )) && err.contains("credentials")
            && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );

    let unknown = server
        .create_table("t", "nope", "(id BIGINT)")
        .replace("'aws.region'", "'aws.regoin'");
    let err = sql_err(&ctx, &unknown).await;
    assert!(err.contains("unknown storage option 'aws.regoin'"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let local = format!(
        "CREATE EXTERNAL TABLE l (id BIGINT) STORED AS VECFUSION LOCATION 'file://{}' \
         OPTIONS ('aws.region' 'us-east-1')",
        dir.path().display()
    );
    let err = sql_err(&ctx, &local).await;
    assert!(err.contains("apply to s3:// locations only"), "{err}");

    let listed: Vec<_> = server
        .store()
        .unwrap()
        .list(Some(&Path::from("nope")))
        .try_collect()
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

/// The `vecfusion` shell binary beside this test's executable (the test command builds every
/// binary of the workspace first).
fn shell_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let shell = dir.join("vecfusion");
    assert!(
        shell.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        shell.display()
    );
    shell
}

/// Configured as the AWS tools are — by environment variables alone — the shell writes and
/// reads a dataset on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_reaches_s3_through_aws_environment_variables() {
    let server = S3Server::start().await.unwrap();
    let script = format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[2]) STORED AS VECFUSION \
         LOCATION 's3://{BUCKET}/from-shell'; \
         INSERT INTO t VALUES (1, [0.0, 1.0]), (2, [1.0, 0.0]), (3, [1.0, 1.0]); \
         SELECT id FROM t ORDER BY l2_distance(embedding, [0.9, 0.1]) LIMIT 1;"
    );
    let run = |allow_http: &str| {
        Command::new(shell_binary())
            .args(["-q", "--format", "csv", "-c", &script])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &server.endpoint)
            .env("AWS_ALLOW_HTTP", allow_http)
            .output()
            .unwrap()
    };
    let out = run("true");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l.trim() == "2"), "{stdout}");
    // Plain HTTP is refused unless allowed, with an error that says how to allow it.
    let out = run("false");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("s3://{BUCKET}/from-shell"))
            && stderr.contains("AWS_ALLOW_HTTP=true"),
        "{stderr}"
    );
}
