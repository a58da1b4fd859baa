//! `CreateVectorIndexExec`: the physical plan of `CREATE VECTOR INDEX`.
//!
//! Its child is a scan of the vector column with row addresses; executing it runs the build
//! pipeline (`build::build_index`), which reads the child twice (sample pass, encode pass), and
//! yields one row describing the new index. Per-phase times and row counts are metrics, so
//! `EXPLAIN ANALYZE CREATE VECTOR INDEX ...` shows where the time went.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
    execute_stream,
};

use super::build::{BuildMetrics, BuildReport, BuildSpec, build_index};
use super::progress::ProgressHook;
use crate::dataset::Dataset;
use crate::kmeans::Accelerator;
use crate::plan_properties::single_final;

/// Columns of the one-row result.
pub fn result_schema() -> SchemaRef {
    let f64 = |n: &str| Field::new(n, DataType::Float64, false);
    let u64 = |n: &str| Field::new(n, DataType::UInt64, false);
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        utf8("name"),
        utf8("kind"),
        u64("rows_indexed"),
        u64("rows_skipped"),
        u64("partitions"),
        utf8("device"),
        u64("version"),
        f64("seconds_sample"),
        f64("seconds_train_ivf"),
        f64("seconds_train_quantizer"),
        f64("seconds_encode"),
        f64("seconds_write"),
        f64("seconds_total"),
    ]))
}

fn result_batch(r: &BuildReport) -> Result<RecordBatch> {
    let s = &r.seconds;
    let f = |v: f64| Arc::new(Float64Array::from(vec![v])) as _;
    Ok(RecordBatch::try_new(
        result_schema(),
        vec![
            Arc::new(StringArray::from(vec![r.name.clone()])),
            Arc::new(StringArray::from(vec![r.kind.name()])),
            Arc::new(UInt64Array::from(vec![r.rows_indexed])),
            Arc::new(UInt64Array::from(vec![r.rows_skipped])),
            Arc::new(UInt64Array::from(vec![r.partitions as u64])),
            Arc::new(StringArray::from(vec![r.device.clone()])),
            Arc::new(UInt64Array::from(vec![r.version])),
            f(s.sample),
            f(s.train_ivf),
            f(s.train_quantizer),
            f(s.encode),
            f(s.write),
            f(s.total),
        ],
    )?)
}

#[derive(Debug)]
pub struct CreateVectorIndexExec {
    spec: BuildSpec,
    dataset: Dataset,
    accelerator: Accelerator,
    dim: usize,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl CreateVectorIndexExec {
    pub fn new(
        spec: BuildSpec,
        dataset: Dataset,
        accelerator: Accelerator,
        dim: usize,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        Self {
            spec,
            dataset,
            accelerator,
            dim,
            input,
            properties: single_final(result_schema()),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for CreateVectorIndexExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let o = &self.spec.options;
        write!(
            f,
            "CreateVectorIndexExec: name={} kind={} column={} metric={} device={}",
            self.spec.name,
            o.kind.name(),
            self.spec.column,
            o.metric,
            self.accelerator.name
        )?;
        if let Some(p) = o.num_partitions {
            write!(f, " partitions={p}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for CreateVectorIndexExec {
    fn name(&self) -> &str {
        "CreateVectorIndexExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        let [input] = children.as_slice() else {
            return Err(DataFusionError::Internal(
                "CreateVectorIndexExec takes one input".into(),
            ));
        };
        Ok(Arc::new(Self::new(
            self.spec.clone(),
            self.dataset.clone(),
            self.accelerator.clone(),
            self.dim,
            input.clone(),
        )))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.clone();
        let (spec, dataset, accel, dim) = (
            self.spec.clone(),
            self.dataset.clone(),
            self.accelerator.clone(),
            self.dim,
        );
        let metrics = BuildMetrics::new(&self.metrics);
        let hook = context.session_config().get_extension::<ProgressHook>();
        let fut = async move {
            let ctx = context.clone();
            let scan = move || execute_stream(input.clone(), ctx.clone());
            let report =
                build_index(dataset, dim, &spec, accel, &scan, hook.as_deref(), &metrics).await?;
            result_batch(&report)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_schema(),
            futures::stream::once(fut),
        )))
    }
}
