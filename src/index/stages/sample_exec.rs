//! `IndexSampleExec`: the sample stage of an index build. Each partition validates and
//! samples the rows of its scan partition (`blocks::sample`) and yields the sampled rows and
//! its tally (`rows::sample_batches`).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::TryStreamExt;

use super::BuildTarget;
use super::rows::{sample_batches, sample_schema};
use crate::index::blocks;
use crate::progress::ProgressHook;

#[derive(Debug)]
pub struct IndexSampleExec {
    target: BuildTarget,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl IndexSampleExec {
    /// Samples the rows of `input` (the vector column and row addresses), partition by
    /// partition.
    pub fn new(target: BuildTarget, input: Arc<dyn ExecutionPlan>) -> Self {
        // The dimension was checked when the statement was planned (a `FLOAT[d]` column).
        let schema = sample_schema(target.dim).expect("a column's dimension fits an i32");
        let partitions = input.properties().partitioning.partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            target,
            input,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn target(&self) -> &BuildTarget {
        &self.target
    }
}

impl DisplayAs for IndexSampleExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let o = &self.target.spec.options;
        write!(
            f,
            "IndexSampleExec: column={} seed={} sample_rate={}",
            self.target.spec.column, o.seed, o.sample_rate
        )
    }
}

impl ExecutionPlan for IndexSampleExec {
    fn name(&self) -> &str {
        "IndexSampleExec"
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
    /// Partition by partition: repartitioning would only move rows around.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = children.as_slice() else {
            return internal_err!("IndexSampleExec takes one input");
        };
        Ok(Arc::new(Self::new(self.target.clone(), input.clone())))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let plan = self.target.plan();
        let dim = self.target.dim;
        let time = MetricBuilder::new(&self.metrics).subset_time("time_sample", partition);
        let sampled = MetricBuilder::new(&self.metrics).counter("rows_sampled", partition);
        let skipped = MetricBuilder::new(&self.metrics).counter("rows_skipped", partition);
        let hook = context.session_config().get_extension::<ProgressHook>();
        let batches = async move {
            let started = Instant::now();
            let sample = blocks::sample(&plan, input, hook.as_deref()).await?;
            let seconds = started.elapsed();
            time.add_duration(seconds);
            sampled.add(sample.sampled_rows());
            skipped.add(sample.skipped_rows() as usize);
            let batches = sample_batches(&sample, dim, seconds.as_secs_f64())?;
            Ok::<_, DataFusionError>(futures::stream::iter(batches.into_iter().map(Ok)))
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            futures::stream::once(batches).try_flatten(),
        )))
    }
}
