//! The logical extension codec: vecfusion's table provider and logical plan nodes, as a
//! client sends them to a cluster's scheduler.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::{TableReference, plan_datafusion_err, plan_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    AggregateUDF, Extension, LogicalPlan, ScalarUDF, UserDefinedLogicalNode, WindowUDF,
};
use datafusion_proto::logical_plan::{
    AsLogicalPlan, DefaultLogicalExtensionCodec, LogicalExtensionCodec,
};
use datafusion_proto::protobuf::LogicalPlanNode;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::blocking::block_on;
use super::dataset_ref::DatasetRef;
use super::exprs::{logical_from_bytes, logical_to_bytes};
use super::rows;
use super::{decode, encode, is_ours};
use crate::index::blocks::BuildSpec;
use crate::index::node::CreateVectorIndexNode;
use crate::index::optimize::OptimizeSpec;
use crate::index::optimize_node::OptimizeVectorIndexNode;
use crate::metric::DistanceFunction;
use crate::provider::{VecfusionTable, VersionTarget};
use crate::search::{AnnSearchNode, SearchRequest};
use crate::udf::RandomVectorsSpec;
use crate::udf::computed::ComputedTable;
use crate::udf::lookup::DatasetArg;
use crate::udf::random_vectors::RandomVectorsTable;
use crate::udf::vector_search::VectorSearchTable;

#[derive(Debug, Serialize, Deserialize)]
enum LogicalPayload {
    /// A `STORED AS VECFUSION` table.
    Table {
        dataset: DatasetRef,
        target: VersionTarget,
    },
    /// The rows of `random_vectors(...)`.
    RandomVectors { spec: RandomVectorsSpec },
    /// `vector_search(...)`, over the version the client resolved.
    VectorSearch {
        dataset: DatasetRef,
        column: Option<String>,
        function: Option<String>,
        queries: Vec<f32>,
        k: usize,
        nprobes: Option<usize>,
        refine_factor: Option<usize>,
        use_index: Option<bool>,
    },
    /// Rows the client already holds (a statement's result, `vecfusion_versions(...)`), as
    /// an Arrow IPC stream.
    Rows { ipc: Vec<u8> },
    /// An `ORDER BY distance LIMIT k` the rewrite turned into a search.
    AnnSearch {
        /// The table scan it stands in for, as a protobuf logical plan.
        scan: Vec<u8>,
        column: String,
        function: String,
        query: Vec<f32>,
        k: usize,
        filters: Vec<u8>,
        distance: Vec<u8>,
        columns: Vec<usize>,
    },
    CreateIndex {
        spec: BuildSpec,
        dataset: DatasetRef,
        dim: usize,
        column_index: usize,
    },
    OptimizeIndex {
        spec: OptimizeSpec,
        dataset: DatasetRef,
        dim: usize,
        column_index: usize,
    },
}

/// Encodes vecfusion's table provider and logical nodes; everything else goes to `fallback`
/// (DataFusion's default codec, or Ballista's in a cluster).
#[derive(Debug, Clone)]
pub struct VecfusionLogicalCodec {
    fallback: Arc<dyn LogicalExtensionCodec>,
}

impl Default for VecfusionLogicalCodec {
    fn default() -> Self {
        Self::with_fallback(Arc::new(DefaultLogicalExtensionCodec {}))
    }
}

impl VecfusionLogicalCodec {
    pub fn with_fallback(fallback: Arc<dyn LogicalExtensionCodec>) -> Self {
        Self { fallback }
    }

    fn encode_plan(&self, plan: LogicalPlan) -> Result<Vec<u8>> {
        Ok(LogicalPlanNode::try_from_logical_plan(&plan, self)?.encode_to_vec())
    }

    fn decode_plan(&self, bytes: &[u8], ctx: &TaskContext) -> Result<LogicalPlan> {
        let node = LogicalPlanNode::decode(bytes)
            .map_err(|e| plan_datafusion_err!("cannot decode a table scan: {e}"))?;
        node.try_into_logical_plan(ctx, self)
    }
}

impl LogicalExtensionCodec for VecfusionLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        if !is_ours(buf) {
            return self.fallback.try_decode(buf, inputs, ctx);
        }
        let node: Arc<dyn UserDefinedLogicalNode> = match decode(buf)? {
            LogicalPayload::AnnSearch {
                scan,
                column,
                function,
                query,
                k,
                filters,
                distance,
                columns,
            } => {
                let LogicalPlan::TableScan(scan) = self.decode_plan(&scan, ctx)? else {
                    return plan_err!("a vecfusion search node must stand in for a table scan");
                };
                let Some(function) = DistanceFunction::from_name(&function) else {
                    return plan_err!("unknown distance function '{function}'");
                };
                let distance = logical_from_bytes(&distance, ctx, self)?;
                let [distance] = <[_; 1]>::try_from(distance)
                    .map_err(|_| plan_datafusion_err!("one distance expected"))?;
                let filters = logical_from_bytes(&filters, ctx, self)?;
                let node =
                    AnnSearchNode::try_new(scan, distance, (function, column, query), k, filters)?;
                if columns.iter().any(|&c| c >= node.columns().len()) {
                    return plan_err!("a vecfusion search node yields a column its scan lacks");
                }
                Arc::new(node.with_columns(columns)?)
            }
            LogicalPayload::CreateIndex {
                spec,
                dataset,
                dim,
                column_index,
            } => {
                let dataset = dataset.open(&ctx.runtime_env())?;
                Arc::new(CreateVectorIndexNode::try_new(
                    spec,
                    dataset,
                    dim,
                    column_index,
                )?)
            }
            LogicalPayload::OptimizeIndex {
                spec,
                dataset,
                dim,
                column_index,
            } => {
                let dataset = dataset.open(&ctx.runtime_env())?;
                Arc::new(OptimizeVectorIndexNode::try_new(
                    spec,
                    dataset,
                    dim,
                    column_index,
                )?)
            }
            LogicalPayload::Table { .. }
            | LogicalPayload::RandomVectors { .. }
            | LogicalPayload::VectorSearch { .. }
            | LogicalPayload::Rows { .. } => {
                return plan_err!("a vecfusion table was sent where a plan node was expected");
            }
        };
        Ok(Extension { node })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        let any = node.node.as_any();
        let payload = if let Some(n) = any.downcast_ref::<AnnSearchNode>() {
            LogicalPayload::AnnSearch {
                scan: self.encode_plan(LogicalPlan::TableScan(n.scan.clone()))?,
                column: n.column.clone(),
                function: n.function.name().to_string(),
                query: n.query.clone(),
                k: n.k,
                filters: logical_to_bytes(&n.filters, self)?,
                distance: logical_to_bytes(std::slice::from_ref(n.distance()), self)?,
                columns: n.columns().to_vec(),
            }
        } else if let Some(n) = any.downcast_ref::<CreateVectorIndexNode>() {
            LogicalPayload::CreateIndex {
                spec: n.spec.clone(),
                dataset: DatasetRef::of(&n.dataset),
                dim: n.dim,
                column_index: n.column_index,
            }
        } else if let Some(n) = any.downcast_ref::<OptimizeVectorIndexNode>() {
            LogicalPayload::OptimizeIndex {
                spec: n.spec.clone(),
                dataset: DatasetRef::of(&n.dataset),
                dim: n.dim,
                column_index: n.column_index,
            }
        } else {
            return self.fallback.try_encode(node, buf);
        };
        encode(&payload, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if !is_ours(buf) {
            return self
                .fallback
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        }
        let (dataset, target) = match decode(buf)? {
            LogicalPayload::Table { dataset, target } => (dataset, target),
            LogicalPayload::RandomVectors { spec } => {
                spec.check()?;
                return Ok(Arc::new(RandomVectorsTable::new(spec)));
            }
            LogicalPayload::VectorSearch {
                dataset,
                column,
                function,
                queries,
                k,
                nprobes,
                refine_factor,
                use_index,
            } => {
                let function = match function {
                    None => None,
                    Some(name) => match DistanceFunction::from_name(&name) {
                        Some(f) => Some(f),
                        None => return plan_err!("unknown distance function '{name}'"),
                    },
                };
                let request = SearchRequest {
                    column,
                    function,
                    nprobes,
                    refine_factor,
                    use_index,
                    ..SearchRequest::new(queries, k)
                };
                let version = dataset.version;
                let dataset = dataset.open(&ctx.runtime_env())?;
                let table_schema = dataset.schema().clone();
                request.check(&table_schema)?;
                let provider =
                    VecfusionTable::with_target(dataset, VersionTarget::Version(version));
                let target = DatasetArg::Table {
                    name: table_ref.to_string(),
                    provider: Arc::new(provider),
                };
                return Ok(Arc::new(VectorSearchTable::new(
                    target,
                    request,
                    &table_schema,
                )));
            }
            LogicalPayload::Rows { ipc } => {
                let batches = rows::from_ipc(&ipc)?;
                return Ok(Arc::new(MemTable::try_new(schema, vec![batches])?));
            }
            _ => return plan_err!("table {table_ref}: a vecfusion plan node was sent as a table"),
        };
        let table = VecfusionTable::with_target(dataset.open(&ctx.runtime_env())?, target);
        if table.schema().fields() != schema.fields() {
            return plan_err!(
                "table {table_ref}: version {} of {} does not have the columns the plan was \
                 made with",
                dataset.version,
                dataset.uri
            );
        }
        Ok(Arc::new(table))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let payload = if let Some(table) = node.downcast_ref::<VecfusionTable>() {
            LogicalPayload::Table {
                dataset: DatasetRef::of(&table.cached()),
                target: table.target(),
            }
        } else if let Some(table) = node.downcast_ref::<RandomVectorsTable>() {
            LogicalPayload::RandomVectors {
                spec: *table.spec(),
            }
        } else if let Some(table) = node.downcast_ref::<VectorSearchTable>() {
            // The version is resolved here, so that every process searches the same one.
            let dataset = block_on(table.target().dataset())??;
            let r = table.request();
            if !r.filters.is_empty() {
                return plan_err!("vector_search(...) carries no filters before planning");
            }
            LogicalPayload::VectorSearch {
                dataset: DatasetRef::of(&dataset),
                column: r.column.clone(),
                function: r.function.map(|f| f.name().to_string()),
                queries: r.queries.clone(),
                k: r.k,
                nprobes: r.nprobes,
                refine_factor: r.refine_factor,
                use_index: r.use_index,
            }
        } else if let Some(table) = node.downcast_ref::<MemTable>() {
            let mut batches = vec![];
            for partition in &table.batches {
                let rows = partition
                    .try_read()
                    .map_err(|_| plan_datafusion_err!("an in-memory table is being written"))?;
                batches.extend(rows.iter().cloned());
            }
            LogicalPayload::Rows {
                ipc: rows::to_ipc(&table.schema(), &batches)?,
            }
        } else if let Some(table) = node.downcast_ref::<ComputedTable>() {
            // A report on a dataset (its versions, a cleanup): computed here, in the client,
            // once, when the plan is sent.
            let batch = block_on(table.compute())??;
            LogicalPayload::Rows {
                ipc: rows::to_ipc(&table.schema(), &[batch])?,
            }
        } else {
            return self
                .fallback
                .try_encode_table_provider(table_ref, node, buf);
        };
        encode(&payload, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.fallback.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.fallback.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.fallback.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.fallback.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.fallback.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.fallback.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.fallback.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.fallback.try_encode_udwf(node, buf)
    }
}
