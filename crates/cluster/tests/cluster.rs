//! A real cluster on 127.0.0.1: one `vecfusion-scheduler` and two `vecfusion-executor`
//! processes, driven through `remote_session_context` as a Rust program would. The same
//! statements run in-process on a second copy of the data, and the answers must agree.

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use vecfusion::index_format::IndexModel;
use vecfusion::{Dataset, DatasetLocation, VecfusionContext, new_session_context};
use vecfusion_cluster::local::{LocalCluster, free_port};
use vecfusion_cluster::remote_session_context;

/// A scheduler and two executors with `vcores` task slots each, from this package's
/// binaries.
fn start_cluster(vcores: usize) -> LocalCluster {
    let bin = Path::new(env!("CARGO_BIN_EXE_vecfusion-scheduler"))
        .parent()
        .unwrap();
    LocalCluster::start(bin, 2, vcores).unwrap()
}

async fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.vf_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

/// The statements of one session, on the dataset at `dir`.
fn script(dir: &Path) -> Vec<String> {
    vec![
        format!(
            "CREATE EXTERNAL TABLE items (id BIGINT NOT NULL, tag TEXT, embedding FLOAT[16]) \
             STORED AS VECFUSION LOCATION '{}'",
            dir.display()
        ),
        "INSERT INTO items SELECT id, CASE WHEN id % 4 = 0 THEN 'a' ELSE 'b' END, vector \
         FROM random_vectors(3000, 16, 8, 11)"
            .into(),
        "CREATE VECTOR INDEX idx ON items (embedding) USING IVF_PQ WITH (num_partitions = 8, \
         num_sub_vectors = 4, accelerator = 'cpu')"
            .into(),
    ]
}

const QUERIES: [&str; 3] = [
    "[0.5, -0.1, 0.3, 0.2, 0.0, 0.9, -0.4, 0.1, 0.2, 0.2, -0.3, 0.8, 0.1, 0.0, -0.2, 0.4]",
    "[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",
    "[-0.3, 0.3, -0.3, 0.3, -0.3, 0.3, -0.3, 0.3, -0.3, 0.3, -0.3, 0.3, -0.3, 0.3, -0.3, 0.3]",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_answers_as_the_in_process_session_does() {
    let cluster = start_cluster(2);
    let data = tempfile::tempdir().unwrap();
    let remote = remote_session_context(&cluster.url())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let local = new_session_context();
    for sql in script(&data.path().join("remote")) {
        let result = match remote.vf_sql(&sql).await {
            Ok(df) => df.collect().await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            panic!("on the cluster: {sql}: {e}\n{}", cluster.logs());
        }
    }
    for sql in script(&data.path().join("local")) {
        run(&local, &sql).await;
    }

    // The index built on an executor is the one built in-process: same centroids.
    let model = |name: &str| {
        let path = data.path().join(name);
        async move {
            let dataset = Dataset::open(DatasetLocation::local(&path).unwrap())
                .await
                .unwrap();
            let index = dataset.manifest().indexes[0].clone();
            IndexModel::open(dataset.location(), &index.model.file)
                .await
                .unwrap()
        }
    };
    let (on_cluster, in_process) = (model("remote").await, model("local").await);
    assert_eq!(on_cluster.centroids.len(), in_process.centroids.len());
    let worst = on_cluster
        .centroids
        .iter()
        .zip(in_process.centroids.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "centroids differ by up to {worst}");

    // Same rows for the same seed.
    let all = "SELECT id, tag, embedding FROM items ORDER BY id";
    assert_eq!(
        text(&run(&remote, all).await),
        text(&run(&local, all).await)
    );
    let counted = "SELECT tag, count(*) AS n FROM items GROUP BY tag ORDER BY tag";
    assert_eq!(
        text(&run(&remote, counted).await),
        text(&run(&local, counted).await)
    );

    // The ANN queries are served by the index on the cluster and give the local answers.
    for q in QUERIES {
        let ann = format!("SELECT id FROM items ORDER BY l2_distance(embedding, {q}) LIMIT 10");
        let explained = text(&run(&remote, &format!("EXPLAIN {ann}")).await);
        assert!(explained.contains("AnnSearch"), "{explained}");
        assert_eq!(
            ids(&run(&remote, &ann).await),
            ids(&run(&local, &ann).await),
            "{ann}"
        );
        let filtered = format!(
            "SELECT id FROM items WHERE tag = 'a' ORDER BY l2_distance(embedding, {q}) LIMIT 5"
        );
        let got = ids(&run(&remote, &filtered).await);
        assert_eq!(got, ids(&run(&local, &filtered).await), "{filtered}");
        assert!(got.iter().all(|id| id % 4 == 0), "{got:?}");
    }

    // Writes on the cluster change the dataset every process reads.
    run(&remote, "DELETE FROM items WHERE id < 100").await;
    run(&remote, "UPDATE items SET tag = 'c' WHERE id >= 2900").await;
    let summary = "SELECT count(*) FROM items WHERE tag = 'c'";
    assert_eq!(ids(&run(&remote, summary).await), vec![100]);
    assert_eq!(
        ids(&run(&remote, "SELECT count(*) FROM items").await),
        vec![2900]
    );
}

#[tokio::test]
async fn an_unreachable_scheduler_is_named_in_the_error() {
    let port = free_port().unwrap();
    let url = format!("df://127.0.0.1:{port}");
    let err = remote_session_context(&url)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&url) && err.contains("vecfusion-scheduler"),
        "{err}"
    );
    let err = remote_session_context("http://somewhere:1")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("df://HOST:PORT"), "{err}");
}

/// Statements that run in the client (their results are rows it holds) still print them on
/// a cluster; table functions over the search API and the dataset history work too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_statements_return_their_rows_on_a_cluster() {
    let cluster = start_cluster(2);
    let data = tempfile::tempdir().unwrap();
    let remote = remote_session_context(&cluster.url()).await.unwrap();
    for sql in script(&data.path().join("t")) {
        run(&remote, &sql).await;
    }
    let shown = text(&run(&remote, "SHOW VECTOR INDEXES ON items").await);
    assert!(shown.contains("idx") && shown.contains("IVF_PQ"), "{shown}");
    let altered = text(&run(&remote, "ALTER TABLE items ADD COLUMN score INT DEFAULT 7").await);
    assert!(altered.contains("score"), "{altered}");
    let with_default = "SELECT count(*) FROM items WHERE score = 7";
    assert_eq!(ids(&run(&remote, with_default).await), vec![3000]);
    let versions = "SELECT count(*) FROM vecfusion_versions('items')";
    assert_eq!(ids(&run(&remote, versions).await), vec![4]);
    let q = QUERIES[0];
    let searched = format!("SELECT id FROM vector_search('items', 'embedding', {q}, 10)");
    let ann = format!("SELECT id FROM items ORDER BY l2_distance(embedding, {q}) LIMIT 10");
    assert_eq!(
        ids(&run(&remote, &searched).await),
        ids(&run(&remote, &ann).await)
    );
}

/// Times executor `i` has started a task so far (`Execute task` in its log).
fn tasks_started(cluster: &LocalCluster, i: usize) -> usize {
    cluster.executor_log(i).matches("Execute task").count()
}

/// SIGKILL of the executor running `CREATE VECTOR INDEX`: the build is retried on the other
/// executor or fails with an error; either way no half version is committed, the dataset
/// opens with every row, and building again succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_executor_of_a_build_leaves_a_readable_dataset_and_a_rerun_succeeds() {
    let mut cluster = start_cluster(2);
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("t");
    let remote = remote_session_context(&cluster.url()).await.unwrap();
    run(
        &remote,
        &format!(
            "CREATE EXTERNAL TABLE big (id BIGINT NOT NULL, embedding FLOAT[64]) \
             STORED AS VECFUSION LOCATION '{}'",
            path.display()
        ),
    )
    .await;
    run(
        &remote,
        "INSERT INTO big SELECT id, vector FROM random_vectors(300000, 64, 64, 1)",
    )
    .await;
    let open = || async { Dataset::open(DatasetLocation::local(&path).unwrap()).await };
    let before = open().await.unwrap().version();
    let started: Vec<usize> = (0..2).map(|i| tasks_started(&cluster, i)).collect();

    let build_sql = "CREATE VECTOR INDEX idx ON big (embedding) USING IVF_PQ WITH \
                     (num_partitions = 128, num_sub_vectors = 16, accelerator = 'cpu')";
    let ctx = remote.clone();
    let build = tokio::spawn(async move { ctx.vf_sql(build_sql).await?.collect().await });
    let deadline = Instant::now() + Duration::from_secs(60);
    let busy = loop {
        if let Some(i) = (0..2).find(|&i| tasks_started(&cluster, i) > started[i]) {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no executor started the build\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    cluster.kill_executor(busy).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(120), build)
        .await
        .expect("the build neither finished nor failed within 120 s")
        .unwrap();

    match &outcome {
        Ok(_) => eprintln!("the build was retried on the other executor"),
        Err(e) => eprintln!("the build failed: {e}"),
    }
    let after = open()
        .await
        .expect("the dataset opens after the executor died");
    match &outcome {
        // Retried on the other executor: one new version, with the whole index.
        Ok(_) => {
            assert_eq!(after.version(), before + 1);
            assert_eq!(after.manifest().indexes.len(), 1);
        }
        // Failed: nothing committed.
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(after.version(), before, "{e}");
            assert!(after.manifest().indexes.is_empty(), "{e}");
        }
    }
    let count = "SELECT count(*) FROM big";
    assert_eq!(ids(&run(&remote, count).await), vec![300_000]);

    // Building again (replacing whatever the first attempt left) succeeds on the survivor.
    let again = format!("{}, replace = true)", build_sql.trim_end_matches(')'));
    run(&remote, &again).await;
    let ann = "SELECT id FROM big ORDER BY l2_distance(embedding, \
               [1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\
               0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]) LIMIT 10";
    let explained = text(&run(&remote, &format!("EXPLAIN {ann}")).await);
    assert!(explained.contains("AnnSearchExec"), "{explained}");
    assert_eq!(ids(&run(&remote, ann).await).len(), 10);
}

/// A table of many fragments on executors with one task slot each, so a stage's partitions
/// are spread over several tasks: every row is read by exactly one task (scans, the
/// generator, INSERT ... SELECT and DELETE give the in-process answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_row_is_read_by_one_task_when_a_stage_has_many() {
    let cluster = start_cluster(1);
    let data = tempfile::tempdir().unwrap();
    let remote = remote_session_context(&cluster.url()).await.unwrap();
    let local = new_session_context();
    for (ctx, dir) in [(&remote, "remote"), (&local, "local")] {
        for table in ["t", "copy"] {
            let path = data.path().join(dir).join(table);
            run(
                ctx,
                &format!(
                    "CREATE EXTERNAL TABLE {table} (id BIGINT NOT NULL, embedding FLOAT[4]) \
                     STORED AS VECFUSION LOCATION '{}'",
                    path.display()
                ),
            )
            .await;
        }
        for i in 0..6 {
            let insert = format!(
                "INSERT INTO t SELECT id + {}, vector FROM random_vectors(1000, 4)",
                i * 1000
            );
            run(ctx, &insert).await;
        }
    }
    let both = |sql: String| {
        let (remote, local) = (remote.clone(), local.clone());
        async move {
            let (r, l) = (
                text(&run(&remote, &sql).await),
                text(&run(&local, &sql).await),
            );
            assert_eq!(r, l, "{sql}");
        }
    };
    let explained = text(&run(&remote, "EXPLAIN SELECT sum(id) FROM t").await);
    assert!(
        explained.contains("TaskPartitionsExec: partitions=2 of 2"),
        "{explained}"
    );
    both("SELECT count(id) AS n, sum(id) AS s, min(id), max(id) FROM t".into()).await;
    both("SELECT sum(id) AS s, count(id) AS n FROM random_vectors(50000, 4)".into()).await;
    both("INSERT INTO copy SELECT * FROM t".into()).await;
    both("SELECT count(id) AS n, sum(id) AS s FROM copy".into()).await;
    both("DELETE FROM t WHERE id % 3 = 0".into()).await;
    both("SELECT count(id) AS n, sum(id) AS s FROM t".into()).await;
}

/// `CREATE VECTOR INDEX` on a cluster runs as stages — sample tasks, one training task,
/// encode tasks writing a segment each, one commit — and builds the in-process index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_build_runs_as_stages_on_the_executors() {
    let cluster = start_cluster(1);
    let data = tempfile::tempdir().unwrap();
    let remote = remote_session_context(&cluster.url()).await.unwrap();
    let local = new_session_context();
    let build = "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_PQ WITH \
                 (num_partitions = 8, num_sub_vectors = 4, accelerator = 'cpu')";
    for (ctx, dir) in [(&remote, "remote"), (&local, "local")] {
        let path = data.path().join(dir);
        run(
            ctx,
            &format!(
                "CREATE EXTERNAL TABLE t (id BIGINT NOT NULL, embedding FLOAT[16]) \
                 STORED AS VECFUSION LOCATION '{}'",
                path.display()
            ),
        )
        .await;
        for i in 0..4 {
            let insert = format!(
                "INSERT INTO t SELECT id + {}, vector FROM random_vectors(2000, 16, 8, {i})",
                i * 2000
            );
            run(ctx, &insert).await;
        }
    }

    // The distributed plan: sample, train, encode and commit in stages of their own.
    let explained = text(&run(&remote, &format!("EXPLAIN {build}")).await);
    let stages: Vec<&str> = explained.split("Stage[").skip(1).collect();
    let stage_of = |exec: &str| {
        stages
            .iter()
            .position(|s| s.contains(exec))
            .unwrap_or_else(|| panic!("no stage runs {exec}:\n{explained}"))
    };
    let order = [
        stage_of("IndexSampleExec"),
        stage_of("IndexTrainExec"),
        stage_of("IndexEncodeExec"),
        stage_of("IndexCommitExec"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{order:?}\n{explained}"
    );

    let built = text(&run(&remote, build).await);
    assert!(built.contains("8000"), "{built}");
    run(&local, build).await;

    // One model was trained (one model file), the segments cover every fragment once, and
    // the centroids are the in-process build's.
    let open = |dir: &str| {
        let path = data.path().join(dir);
        async move {
            Dataset::open(DatasetLocation::local(&path).unwrap())
                .await
                .unwrap()
        }
    };
    let (on_cluster, in_process) = (open("remote").await, open("local").await);
    let models = std::fs::read_dir(data.path().join("remote/_indexes"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".model.vfidx")
        })
        .count();
    assert_eq!(models, 1, "training ran more than once");
    let index = on_cluster.manifest().index("idx").unwrap();
    assert!(index.segments.len() >= 2, "{:?}", index.segments);
    let mut covered: Vec<u32> = index
        .segments
        .iter()
        .flat_map(|s| s.fragments.clone())
        .collect();
    covered.sort_unstable();
    let all: Vec<u32> = on_cluster.fragments().iter().map(|f| f.id).collect();
    assert_eq!(covered, all);
    let model = |d: &Dataset| {
        let file = d.manifest().index("idx").unwrap().model.file.clone();
        let location = d.location().clone();
        async move { IndexModel::open(&location, &file).await.unwrap() }
    };
    let (a, b) = (model(&on_cluster).await, model(&in_process).await);
    let worst = a
        .centroids
        .iter()
        .zip(b.centroids.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "centroids differ by up to {worst}");
    for q in QUERIES {
        let ann = format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q}) LIMIT 10");
        assert_eq!(
            ids(&run(&remote, &ann).await),
            ids(&run(&local, &ann).await),
            "{ann}"
        );
    }

    // OPTIMIZE runs the encode stage on the executors, then its commit, in stages of their
    // own, with the index's model: one new segment, as in-process.
    for ctx in [&remote, &local] {
        for i in 4..7 {
            let insert = format!(
                "INSERT INTO t SELECT id + {}, vector FROM random_vectors(500, 16, 8, {i})",
                i * 2000
            );
            run(ctx, &insert).await;
        }
    }
    let optimize = "OPTIMIZE VECTOR INDEX idx ON t";
    let explained = text(&run(&remote, &format!("EXPLAIN {optimize}")).await);
    let stages: Vec<&str> = explained.split("Stage[").skip(1).collect();
    let encode = stages.iter().position(|s| s.contains("IndexEncodeExec"));
    let commit = stages
        .iter()
        .position(|s| s.contains("OptimizeVectorIndexExec"));
    assert!(
        matches!((encode, commit), (Some(e), Some(c)) if e < c),
        "{explained}"
    );
    let optimized = |batches: &[RecordBatch]| {
        let b = &batches[0];
        let column = |name: &str| {
            b.column(b.schema().index_of(name).unwrap())
                .as_primitive::<UInt64Type>()
                .value(0)
        };
        (column("rows_encoded"), column("segments_after"))
    };
    let on_cluster = optimized(&run(&remote, optimize).await);
    let segments = open("local")
        .await
        .manifest()
        .index("idx")
        .unwrap()
        .segments
        .len() as u64;
    assert_eq!(on_cluster, (1500, index.segments.len() as u64 + 1));
    assert_eq!(
        optimized(&run(&local, optimize).await),
        (1500, segments + 1)
    );
    for q in QUERIES {
        let ann = format!("SELECT id FROM t ORDER BY l2_distance(embedding, {q}) LIMIT 10");
        assert_eq!(
            ids(&run(&remote, &ann).await),
            ids(&run(&local, &ann).await),
            "{ann}"
        );
    }
}
