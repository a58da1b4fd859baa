//! `AnnSearchExec`: answers a top-k distance query from a dataset version (through its vector
//! index when one fits), then fetches the requested columns of the k rows by address.
//!
//! Its optional child is the *prefilter*: a scan of the table with the query's `WHERE`
//! predicates that yields the addresses of the allowed rows, evaluated before the top-k.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Float32Array, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use super::engine::{SearchParams, search};
use super::plan::collect_allowed;
use crate::dataset::Dataset;
use crate::plan_properties::single_final;
use crate::udf::DistanceFunction;

/// Name of the distance column `vector_search` adds.
pub const DISTANCE_COLUMN: &str = "_distance";

/// What to search for.
#[derive(Debug, Clone)]
pub struct AnnQuery {
    pub column: usize,
    pub function: DistanceFunction,
    pub query: Vec<f32>,
    pub params: SearchParams,
}

#[derive(Debug)]
pub struct AnnSearchExec {
    dataset: Dataset,
    query: AnnQuery,
    /// Table columns to return.
    projection: Vec<usize>,
    with_distance: bool,
    /// Name and kind of the index the search will use (for EXPLAIN), if any.
    index: Option<String>,
    prefilter: Option<Arc<dyn ExecutionPlan>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AnnSearchExec {
    pub fn new(
        dataset: Dataset,
        query: AnnQuery,
        projection: Vec<usize>,
        with_distance: bool,
        prefilter: Option<Arc<dyn ExecutionPlan>>,
    ) -> Result<Self> {
        let table = dataset.schema();
        let mut fields: Vec<Field> = projection.iter().map(|i| table.field(*i).clone()).collect();
        if with_distance {
            fields.push(Field::new(DISTANCE_COLUMN, DataType::Float32, false));
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, table.metadata().clone()));
        let column = table.field(query.column).name();
        let metric = super::engine::metric_of(query.function);
        let index = dataset
            .manifest()
            .indexes
            .iter()
            .rev()
            .find(|i| &i.column == column && i.metric == metric.name())
            .filter(|_| query.params.use_index)
            .map(|i| format!("{} ({})", i.name, i.kind));
        Ok(Self {
            properties: single_final(schema.clone()),
            dataset,
            query,
            projection,
            with_distance,
            index,
            prefilter,
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The index EXPLAIN reports (`None`: an exact search).
    pub fn index(&self) -> Option<&str> {
        self.index.as_deref()
    }
}

impl DisplayAs for AnnSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let p = &self.query.params;
        let column = self.dataset.schema().field(self.query.column).name();
        write!(
            f,
            "AnnSearchExec: {}({column}, [{} values]) k={} index={} nprobes={} refine_factor={} \
             prefilter={}",
            self.query.function.name(),
            self.query.query.len(),
            p.k,
            self.index.as_deref().unwrap_or("none (exact search)"),
            p.nprobes,
            p.refine_factor,
            if self.prefilter.is_some() {
                "yes"
            } else {
                "no"
            }
        )
    }
}

struct Metrics {
    baseline: BaselineMetrics,
    partitions_probed: Count,
    rows_scored: Count,
    rows_exact: Count,
    allowed_rows: Count,
}

impl ExecutionPlan for AnnSearchExec {
    fn name(&self) -> &str {
        "AnnSearchExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.prefilter.iter().collect()
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.prefilter.iter().count() {
            return Err(DataFusionError::Internal(
                "AnnSearchExec: wrong number of children".into(),
            ));
        }
        Ok(Arc::new(Self::new(
            self.dataset.clone(),
            self.query.clone(),
            self.projection.clone(),
            self.with_distance,
            children.into_iter().next(),
        )?))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (dataset, query, projection) = (
            self.dataset.clone(),
            self.query.clone(),
            self.projection.clone(),
        );
        let (prefilter, schema, with_distance) = (
            self.prefilter.clone(),
            self.schema.clone(),
            self.with_distance,
        );
        let m = Metrics {
            baseline: BaselineMetrics::new(&self.metrics, 0),
            partitions_probed: MetricBuilder::new(&self.metrics).counter("partitions_probed", 0),
            rows_scored: MetricBuilder::new(&self.metrics).counter("rows_scored", 0),
            rows_exact: MetricBuilder::new(&self.metrics).counter("rows_exact", 0),
            allowed_rows: MetricBuilder::new(&self.metrics).counter("prefilter_rows", 0),
        };
        let fut = async move {
            let allowed = match prefilter {
                Some(plan) => {
                    let allowed = collect_allowed(plan, context).await?;
                    m.allowed_rows
                        .add(allowed.values().map(|b| b.len() as usize).sum());
                    Some(allowed)
                }
                None => None,
            };
            let timer = m.baseline.elapsed_compute().timer();
            let found = search(
                &dataset,
                query.column,
                query.function,
                &query.query,
                query.params,
                allowed.as_ref(),
            )
            .await?;
            m.partitions_probed.add(found.stats.partitions_probed);
            m.rows_scored.add(found.stats.rows_scored);
            m.rows_exact.add(found.stats.rows_exact);
            let rows = dataset.take(&found.addresses, Some(&projection)).await?;
            let mut columns = rows.columns().to_vec();
            if with_distance {
                columns.push(Arc::new(Float32Array::from(found.distances)));
            }
            let options = RecordBatchOptions::new().with_row_count(Some(found.addresses.len()));
            let batch = RecordBatch::try_new_with_options(schema, columns, &options)?;
            timer.done();
            m.baseline.record_output(batch.num_rows());
            Ok(batch)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(fut),
        )))
    }
}
