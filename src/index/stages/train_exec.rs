//! `IndexTrainExec`: the training stage of an index build, one task. It merges every sample
//! task's rows and tallies, opens the accelerator (the device is opened here, when the build
//! runs — on a cluster, on the executor that runs this task — not when it is planned),
//! trains the model (`blocks::train`, which writes the model file) and yields one row
//! describing it (`rows::Trained`).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream, execute_stream,
};
use futures::StreamExt;

use super::BuildTarget;
use super::rows::{Trained, add_sample_batch, json_batch, json_schema};
use crate::index::blocks::{self, Sample};
use crate::plan_properties::{single_final, whole_inputs};
use crate::progress::ProgressHook;

/// The column of the training task's row.
pub(super) const TRAINED_COLUMN: &str = "trained_model";

#[derive(Debug)]
pub struct IndexTrainExec {
    target: BuildTarget,
    /// The device training ran on, once it has run (for `EXPLAIN ANALYZE`).
    selected: Arc<OnceLock<String>>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl IndexTrainExec {
    /// Trains on every row `input` (the sample stage, merged) yields.
    pub fn new(target: BuildTarget, input: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            target,
            selected: Arc::default(),
            input,
            properties: single_final(json_schema(TRAINED_COLUMN)),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn target(&self) -> &BuildTarget {
        &self.target
    }
}

impl DisplayAs for IndexTrainExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let o = &self.target.spec.options;
        write!(
            f,
            "IndexTrainExec: kind={} metric={} accelerator={}",
            o.kind.name(),
            o.metric,
            o.accelerator
        )?;
        if let Some(device) = self.selected.get() {
            write!(f, " ({device})")?;
        }
        if let Some(p) = o.num_partitions {
            write!(f, " partitions={p}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for IndexTrainExec {
    fn name(&self) -> &str {
        "IndexTrainExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        whole_inputs(1)
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
            return internal_err!("IndexTrainExec takes one input");
        };
        Ok(Arc::new(Self::new(self.target.clone(), input.clone())))
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
        let target = self.target.clone();
        let selected = self.selected.clone();
        let m = &self.metrics;
        let time_ivf = MetricBuilder::new(m).subset_time("time_train_ivf", 0);
        let time_quantizer = MetricBuilder::new(m).subset_time("time_train_quantizer", 0);
        let rows_trained = MetricBuilder::new(m).counter("rows_sampled", 0);
        let budget = MetricBuilder::new(m).counter("device_memory_budget_bytes", 0);
        let uploaded = MetricBuilder::new(m).counter("device_bytes_uploaded", 0);
        let hook = context.session_config().get_extension::<ProgressHook>();
        let row = async move {
            let plan = target.plan();
            let mut sample = Sample::empty(target.dim);
            let mut seconds_sample = 0f64;
            let mut sampled = execute_stream(input, context)?;
            while let Some(batch) = sampled.next().await {
                seconds_sample = seconds_sample.max(add_sample_batch(&mut sample, &plan, &batch?)?);
            }
            drop(sampled);
            rows_trained.add(sample.sampled_rows());
            let (rows_usable, rows_skipped) = (sample.usable_rows(), sample.skipped_rows());

            let backend = target.backend()?;
            let _ = selected.set(backend.name().to_string());
            let location = target.dataset.location();
            let model =
                blocks::train(&plan, sample, backend.clone(), location, hook.as_deref()).await?;
            time_ivf.add_duration(Duration::from_secs_f64(model.seconds_train_ivf));
            time_quantizer.add_duration(Duration::from_secs_f64(model.seconds_train_quantizer));
            let device = backend.device_memory();
            if let Some(d) = device {
                budget.add(d.budget_bytes as usize);
                uploaded.add(d.uploaded_bytes as usize);
            }
            let trained = Trained {
                model: model.summary(),
                rows_usable,
                rows_skipped,
                accelerator: backend.name().to_string(),
                seconds_sample,
                device_memory_budget_bytes: device.map(|d| d.budget_bytes),
                device_bytes_uploaded: device.map(|d| d.uploaded_bytes),
            };
            json_batch(TRAINED_COLUMN, &trained)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            json_schema(TRAINED_COLUMN),
            futures::stream::once(row),
        )))
    }
}
