use std::collections::BTreeSet;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;

use crate::VecfusionContext;
use crate::index_format::IndexModel;
use crate::test_support::{create_table, latest, session_after};

async fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    let df = ctx
        .vf_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// A session over a table of three fragments (6,000 rows) with `target_partitions`.
async fn three_fragments(dir: &std::path::Path, target_partitions: usize) -> SessionContext {
    let mut statements = vec![
        format!("SET datafusion.execution.target_partitions = {target_partitions}"),
        create_table(dir, "id BIGINT, embedding FLOAT[8]"),
    ];
    for i in 0..3 {
        statements.push(format!(
            "INSERT INTO t SELECT id + {}, vector FROM random_vectors(2000, 8, 4, {i})",
            i * 2000
        ));
    }
    session_after(&statements).await
}

const BUILD: &str = "CREATE VECTOR INDEX i ON t (embedding) USING IVF_PQ \
                     WITH (num_partitions = 4, num_sub_vectors = 2)";

#[tokio::test]
async fn a_build_runs_as_stages_with_a_segment_per_fragment_group() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = three_fragments(dir.path(), 2).await;

    // EXPLAIN shows the stages, and opens no device.
    let explained = text(&run(&ctx, &format!("EXPLAIN {BUILD}")).await);
    let order = [
        "IndexCommitExec: name=i kind=IVF_PQ",
        "CoalescePartitionsExec",
        "IndexEncodeExec: column=embedding segments=2",
        "IndexTrainExec: kind=IVF_PQ metric=l2 accelerator=auto partitions=4",
        "CoalescePartitionsExec",
        "IndexSampleExec: column=embedding",
        "VecfusionScanExec",
        "partitions=whole_fragments",
    ];
    let mut at = 0;
    for part in order {
        let found = explained[at..]
            .find(part)
            .unwrap_or_else(|| panic!("no {part} after position {at}:\n{explained}"));
        at += found + part.len();
    }
    assert!(!explained.contains("(cpu)"), "{explained}");

    let analyzed = text(&run(&ctx, &format!("EXPLAIN ANALYZE {BUILD}")).await);
    assert!(analyzed.contains("accelerator=auto (cpu)"), "{analyzed}");
    for metric in [
        "time_sample",
        "time_train_ivf",
        "time_encode",
        "time_commit",
    ] {
        assert!(analyzed.contains(metric), "{metric} missing:\n{analyzed}");
    }

    // Two segments, covering the three fragments once between them, every row indexed.
    let dataset = latest(dir.path()).await;
    let index = dataset.manifest().index("i").unwrap();
    assert_eq!(index.segments.len(), 2);
    let mut covered: Vec<u32> = index
        .segments
        .iter()
        .flat_map(|s| s.fragments.clone())
        .collect();
    covered.sort_unstable();
    let all: Vec<u32> = dataset.fragments().iter().map(|f| f.id).collect();
    assert_eq!(covered, all);
    assert_eq!(index.segments.iter().map(|s| s.rows).sum::<u64>(), 6000);
}

/// However the stages split the rows, the model is the one a single-partition build trains,
/// and the answers are the same.
#[tokio::test]
async fn the_model_does_not_depend_on_how_the_stages_split_the_rows() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut answers = vec![];
    let mut centroids = vec![];
    for (dir, partitions) in [(one.path(), 1), (two.path(), 2)] {
        let ctx = three_fragments(dir, partitions).await;
        let built = run(&ctx, BUILD).await;
        let rows = built[0].column(2).as_primitive::<UInt64Type>().value(0);
        assert_eq!(rows, 6000);
        let dataset = latest(dir).await;
        let index = dataset.manifest().index("i").unwrap().clone();
        assert_eq!(index.segments.len(), partitions);
        let model = IndexModel::open(dataset.location(), &index.model.file)
            .await
            .unwrap();
        centroids.push(model.centroids.to_vec());
        let q = "SELECT id FROM t ORDER BY l2_distance(embedding, [1,0,0,0,0,0,0,0]) LIMIT 10";
        let ids: BTreeSet<String> = text(&run(&ctx, q).await)
            .lines()
            .map(String::from)
            .collect();
        answers.push(ids);
    }
    assert_eq!(centroids[0], centroids[1]);
    assert_eq!(answers[0], answers[1]);
}

/// OPTIMIZE encodes new fragments with the index's model through the same encode stage (a
/// task per group of fragments) and keeps them as one new segment.
#[tokio::test]
async fn optimize_encodes_new_fragments_in_the_encode_stage_as_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = three_fragments(dir.path(), 2).await;
    run(&ctx, BUILD).await;
    for i in 3..6 {
        let insert = format!(
            "INSERT INTO t SELECT id + {}, vector FROM random_vectors(500, 8, 4, {i})",
            i * 2000
        );
        run(&ctx, &insert).await;
    }
    let optimize = "OPTIMIZE VECTOR INDEX i ON t";
    let explained = text(&run(&ctx, &format!("EXPLAIN {optimize}")).await);
    for part in [
        "OptimizeVectorIndexExec: name=i segments=2 new_fragments=3",
        "IndexEncodeExec: column=embedding segments=2",
        "IndexModelExec: index=i model=_indexes/",
        "fragments=3 projection=[embedding, _rowaddr] partitions=whole_fragments",
    ] {
        assert!(explained.contains(part), "{part} missing:\n{explained}");
    }
    let before = latest(dir.path()).await;
    let model = before.manifest().index("i").unwrap().model.clone();
    let result = run(&ctx, optimize).await;
    let column = |name: &str| {
        let b = &result[0];
        b.column(b.schema().index_of(name).unwrap())
            .as_primitive::<UInt64Type>()
            .value(0)
    };
    assert_eq!(column("rows_encoded"), 1500);
    assert_eq!(
        (column("segments_before"), column("segments_after")),
        (2, 3)
    );
    let after = latest(dir.path()).await;
    let index = after.manifest().index("i").unwrap();
    assert_eq!(index.model, model, "the model is kept");
    let new = index.segments.last().unwrap();
    let new_fragments: Vec<u32> = after.fragments()[3..].iter().map(|f| f.id).collect();
    assert_eq!(new.fragments, new_fragments);
    assert_eq!(new.rows, 1500);
    // No file is left of the parts the encode tasks wrote: the index's files and the model.
    let files = std::fs::read_dir(dir.path().join("_indexes"))
        .unwrap()
        .count();
    assert_eq!(files, 1 + index.segments.len());
}
