//! Every vecfusion plan node through the codecs and back, on a real dataset: the decoded
//! plan reads the same (its EXPLAIN text) and, for queries, returns the same rows.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use datafusion_proto::logical_plan::AsLogicalPlan;
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use prost::Message;

use super::{VecfusionLogicalCodec, VecfusionPhysicalCodec};
use crate::VecfusionContext;
use crate::index::statements::{create_plan, optimize_plan};
use crate::sql::VfStatement;
use crate::test_support::{create_table, session_after};

async fn items(dir: &std::path::Path) -> SessionContext {
    session_after(&[
        create_table(dir, "id BIGINT NOT NULL, tag TEXT, embedding FLOAT[8]"),
        "INSERT INTO t SELECT id, CASE WHEN id % 3 = 0 THEN 'a' ELSE 'b' END, vector \
         FROM random_vectors(600, 8, 4, 7)"
            .into(),
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_PQ WITH (num_partitions = 4, \
         num_sub_vectors = 2)"
            .into(),
        "INSERT INTO t SELECT id + 1000, 'c', vector FROM random_vectors(50, 8, 4, 8)".into(),
    ])
    .await
}

const QUERY: &str = "[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]";

fn logical_round_trip(ctx: &SessionContext, plan: &LogicalPlan) -> LogicalPlan {
    let codec = VecfusionLogicalCodec::default();
    let bytes = LogicalPlanNode::try_from_logical_plan(plan, &codec)
        .unwrap()
        .encode_to_vec();
    LogicalPlanNode::decode(bytes.as_slice())
        .unwrap()
        .try_into_logical_plan(&ctx.task_ctx(), &codec)
        .unwrap()
}

fn physical_round_trip(
    ctx: &SessionContext,
    plan: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    let codec = VecfusionPhysicalCodec;
    let bytes = PhysicalPlanNode::try_from_physical_plan(plan, &codec)
        .unwrap()
        .encode_to_vec();
    PhysicalPlanNode::decode(bytes.as_slice())
        .unwrap()
        .try_into_physical_plan(&ctx.task_ctx(), &codec)
        .unwrap()
}

fn text(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).indent(true).to_string()
}

/// The optimized logical plan and physical plan of `sql`, each through the codec and back,
/// compared with the originals (the physical one also by its rows).
async fn round_trips(ctx: &SessionContext, sql: &str, node: &str) {
    let df = ctx.vf_sql(sql).await.unwrap();
    let logical = df.clone().into_optimized_plan().unwrap();
    assert!(
        format!("{}", logical.display_indent()).contains(node),
        "{sql}: no {node} in\n{}",
        logical.display_indent()
    );
    let decoded = logical_round_trip(ctx, &logical);
    assert_eq!(
        format!("{}", decoded.display_indent_schema()),
        format!("{}", logical.display_indent_schema()),
        "{sql}"
    );
    let physical = df.create_physical_plan().await.unwrap();
    let decoded = physical_round_trip(ctx, Arc::clone(&physical));
    assert_eq!(text(&decoded), text(&physical), "{sql}");
    let rows = |batches: Vec<RecordBatch>| pretty_format_batches(&batches).unwrap().to_string();
    let expected = rows(collect(physical, ctx.task_ctx()).await.unwrap());
    let got = rows(collect(decoded, ctx.task_ctx()).await.unwrap());
    assert_eq!(got, expected, "{sql}");
}

#[tokio::test]
async fn every_query_node_survives_the_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = items(dir.path()).await;
    // A scan with a pushed-down filter, limit and projection.
    round_trips(
        &ctx,
        "SELECT id, tag FROM t WHERE id % 7 = 1 ORDER BY id LIMIT 5",
        "TableScan",
    )
    .await;
    // The ANN rewrite: the search node, with a prefilter and without.
    let ann = format!("SELECT id FROM t ORDER BY l2_distance(embedding, {QUERY}) LIMIT 7");
    round_trips(&ctx, &ann, "AnnSearch").await;
    // A second limit around it: a fetch below the search's k.
    round_trips(&ctx, &format!("SELECT * FROM ({ann}) LIMIT 3"), "AnnSearch").await;
    let filtered = format!(
        "SELECT id, tag FROM t WHERE tag = 'a' ORDER BY cosine_distance(embedding, {QUERY}) LIMIT 4"
    );
    round_trips(&ctx, &filtered, "AnnSearch").await;
    // A time-travel view of version 2 (before the second insert).
    round_trips(&ctx, "SELECT count(*) FROM t VERSION AS OF 2", "TableScan").await;
    // Table functions: the search API, generated rows, a dataset's history (rows computed
    // where the plan is encoded).
    let searched = format!("SELECT id, _distance FROM vector_search('t', 'embedding', {QUERY}, 5)");
    round_trips(&ctx, &searched, "TableScan").await;
    round_trips(
        &ctx,
        "SELECT id, vector FROM random_vectors(100, 4, 2, 9)",
        "TableScan",
    )
    .await;
    round_trips(
        &ctx,
        "SELECT version, operation FROM vecfusion_versions('t')",
        "TableScan",
    )
    .await;
}

/// `sql` planned, through the physical codec and back, and run: the decoded plan must read
/// as the original and change the table as it would have.
async fn decoded_write(ctx: &SessionContext, sql: &str) -> String {
    let df = ctx.vf_sql(sql).await.unwrap();
    let physical = df.create_physical_plan().await.unwrap();
    let decoded = physical_round_trip(ctx, Arc::clone(&physical));
    assert_eq!(text(&decoded), text(&physical), "{sql}");
    let batches = collect(decoded, ctx.task_ctx()).await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

async fn count(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = ctx.vf_sql(sql).await.unwrap().collect().await.unwrap();
    let column = batches[0].column(0);
    datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(
        column,
    )
    .value(0)
}

#[tokio::test]
async fn every_write_node_survives_the_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = items(dir.path()).await;
    decoded_write(&ctx, "INSERT INTO t VALUES (5000, 'z', [1,1,1,1,1,1,1,1])").await;
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM t WHERE id = 5000").await,
        1
    );
    decoded_write(&ctx, "UPDATE t SET tag = 'updated' WHERE id < 10").await;
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM t WHERE tag = 'updated'").await,
        10
    );
    decoded_write(&ctx, "DELETE FROM t WHERE id >= 1000").await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM t").await, 600);
}

/// The statement's logical plan through the logical codec, and its physical plan through
/// the physical codec, then run: the index commits as it would have.
async fn index_statement(ctx: &SessionContext, sql: &str) -> String {
    let mut statements = ctx.vf_parse(sql).unwrap();
    let plan = match statements.remove(0) {
        VfStatement::CreateVectorIndex(s) => create_plan(ctx, &s).await.unwrap().unwrap(),
        VfStatement::OptimizeVectorIndex(s) => optimize_plan(ctx, &s).await.unwrap(),
        other => panic!("not an index statement: {other}"),
    };
    let decoded = logical_round_trip(ctx, &plan);
    assert_eq!(
        format!("{}", decoded.display_indent_schema()),
        format!("{}", plan.display_indent_schema())
    );
    let physical = ctx.state().create_physical_plan(&decoded).await.unwrap();
    let decoded = physical_round_trip(ctx, Arc::clone(&physical));
    assert_eq!(text(&decoded), text(&physical));
    let batches = collect(decoded, ctx.task_ctx()).await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

#[tokio::test]
async fn index_statements_survive_the_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = items(dir.path()).await;
    let built = index_statement(
        &ctx,
        "CREATE VECTOR INDEX idx2 ON t (embedding) USING IVF_FLAT WITH (num_partitions = 3, \
         metric = 'cosine')",
    )
    .await;
    assert!(built.contains("idx2"), "{built}");
    let optimized = index_statement(&ctx, "OPTIMIZE VECTOR INDEX idx ON t").await;
    assert!(optimized.contains("idx"), "{optimized}");
    let indexes = ctx
        .vf_sql("SHOW VECTOR INDEXES ON t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let shown = pretty_format_batches(&indexes).unwrap().to_string();
    assert!(
        shown.contains("idx2") && shown.contains("cosine"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_payload_naming_a_missing_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = items(dir.path()).await;
    let df = ctx
        .vf_sql(&format!(
            "SELECT id FROM t ORDER BY l2_distance(embedding, {QUERY}) LIMIT 3"
        ))
        .await
        .unwrap();
    let physical = df.create_physical_plan().await.unwrap();
    let codec = VecfusionPhysicalCodec;
    let bytes = PhysicalPlanNode::try_from_physical_plan(physical, &codec)
        .unwrap()
        .encode_to_vec();
    // The dataset is gone where the plan is decoded (an executor that cannot see it).
    drop(ctx.deregister_table("t"));
    std::fs::rename(dir.path(), dir.path().with_extension("moved")).unwrap();
    let err = PhysicalPlanNode::decode(bytes.as_slice())
        .unwrap()
        .try_into_physical_plan(&ctx.task_ctx(), &codec)
        .unwrap_err()
        .to_string();
    std::fs::rename(dir.path().with_extension("moved"), dir.path()).unwrap();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[tokio::test]
async fn a_payload_out_of_range_is_refused_not_run() {
    use super::encode;
    use super::physical::PhysicalPayload;
    let dir = tempfile::tempdir().unwrap();
    let ctx = items(dir.path()).await;
    let dataset = crate::test_support::latest(dir.path()).await;
    let decode = |payload: PhysicalPayload| {
        let mut buf = vec![];
        encode(&payload, &mut buf).unwrap();
        let converter = datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {};
        datafusion_proto::physical_plan::PhysicalExtensionCodec::try_decode(
            &VecfusionPhysicalCodec,
            &buf,
            &[],
            &ctx.task_ctx(),
            &converter,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let scan = PhysicalPayload::Scan {
        dataset: super::DatasetRef::of(&dataset),
        projection: Some(vec![0, 99]),
        filters: super::exprs::scan_filters_to_bytes(&[]).unwrap(),
        limit: None,
        with_row_address: false,
        fragments: None,
        whole_fragments: false,
        partitions: 1,
    };
    let err = decode(scan);
    assert!(err.contains("column 99"), "{err}");
    let generator = PhysicalPayload::RandomVectors {
        spec: crate::udf::RandomVectorsSpec {
            rows: 10,
            dim: 1 << 30,
            clusters: 4,
            seed: 1,
        },
        projection: None,
        partitions: 1,
    };
    let err = decode(generator);
    assert!(err.contains("dim must be between 1 and 65536"), "{err}");
}
