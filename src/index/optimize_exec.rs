//! `OptimizeVectorIndexExec`: the physical plan of `OPTIMIZE VECTOR INDEX`.
//!
//! Its child, when there is anything to encode, is the encode stage of the fragments the
//! index does not cover (with the index's model), or for `retrain = true` the whole build
//! (`index::stages`). Executing it runs `optimize::optimize_index`, which commits, and yields
//! one row; the phases are metrics, so `EXPLAIN ANALYZE OPTIMIZE VECTOR INDEX ...` shows where
//! the time went.

use std::fmt;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream,
};

use super::optimize::{OptimizeReport, OptimizeSpec, optimize_index};
use crate::dataset::Dataset;
use crate::plan_properties::{single_final, whole_inputs};
use crate::progress::ProgressHook;

/// Columns of the one-row result.
pub fn result_schema() -> SchemaRef {
    let f64 = |n: &str| Field::new(n, DataType::Float64, false);
    let u64 = |n: &str| Field::new(n, DataType::UInt64, false);
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        utf8("name"),
        u64("rows_encoded"),
        u64("segments_before"),
        u64("segments_after"),
        Field::new("drift", DataType::Float64, true),
        u64("version"),
        utf8("accelerator"),
        f64("seconds_sample"),
        f64("seconds_train"),
        f64("seconds_encode"),
        f64("seconds_merge"),
        f64("seconds_write"),
        f64("seconds_total"),
        utf8("message"),
    ]))
}

fn result_batch(r: &OptimizeReport) -> Result<RecordBatch> {
    let s = &r.seconds;
    let f = |v: f64| Arc::new(Float64Array::from(vec![v])) as _;
    let u = |v: u64| Arc::new(UInt64Array::from(vec![v])) as _;
    let text = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as _;
    Ok(RecordBatch::try_new(
        result_schema(),
        vec![
            text(&r.name),
            u(r.rows_encoded),
            u(r.segments_before as u64),
            u(r.segments_after as u64),
            Arc::new(Float64Array::from(vec![r.drift])),
            u(r.version),
            text(&r.accelerator),
            f(s.sample),
            f(s.train),
            f(s.encode),
            f(s.merge),
            f(s.write),
            f(s.total),
            text(&r.message),
        ],
    )?)
}

#[derive(Debug)]
pub struct OptimizeVectorIndexExec {
    spec: OptimizeSpec,
    dataset: Dataset,
    dim: usize,
    input: Option<Arc<dyn ExecutionPlan>>,
    /// The device the work ran on, once it has run (for `EXPLAIN ANALYZE`).
    selected: Arc<OnceLock<String>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl OptimizeVectorIndexExec {
    pub fn new(
        spec: OptimizeSpec,
        dataset: Dataset,
        dim: usize,
        input: Option<Arc<dyn ExecutionPlan>>,
    ) -> Self {
        Self {
            spec,
            dataset,
            dim,
            input,
            selected: Arc::default(),
            properties: single_final(result_schema()),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// What is optimized.
    pub fn spec(&self) -> &OptimizeSpec {
        &self.spec
    }

    /// The version optimized.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The dimension of the indexed column.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl DisplayAs for OptimizeVectorIndexExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let o = &self.spec.options;
        write!(
            f,
            "OptimizeVectorIndexExec: name={} segments={} new_fragments={}",
            self.spec.index.name,
            self.spec.index.segments.len(),
            self.spec.new_fragments.len()
        )?;
        if let Some(n) = o.merge_segments {
            write!(f, " merge_segments={n}")?;
        }
        if o.retrain {
            write!(f, " retrain=true")?;
        }
        if let Some(device) = self.selected.get() {
            write!(f, " accelerator={device}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for OptimizeVectorIndexExec {
    fn name(&self) -> &str {
        "OptimizeVectorIndexExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        whole_inputs(self.children().len())
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.input.iter().collect()
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
        if children.len() != self.input.iter().count() {
            return internal_err!("OptimizeVectorIndexExec: wrong number of children");
        }
        Ok(Arc::new(Self::new(
            self.spec.clone(),
            self.dataset.clone(),
            self.dim,
            children.into_iter().next(),
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
        let (spec, dataset, input) = (self.spec.clone(), self.dataset.clone(), self.input.clone());
        let selected = self.selected.clone();
        let metrics = self.metrics.clone();
        let hook = context.session_config().get_extension::<ProgressHook>();
        let fut = async move {
            let report =
                optimize_index(dataset, &spec, input, context, hook.as_deref(), &metrics).await?;
            let _ = selected.set(report.accelerator.clone());
            result_batch(&report)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_schema(),
            futures::stream::once(fut),
        )))
    }
}
