//! `IndexEncodeExec`: the encode stage of an index build. Its first input is the training
//! task's one row, its second a scan whose partitions are groups of whole fragments; each
//! partition assigns and encodes its rows with the model that row names (`blocks::encode`,
//! on the accelerator of the process that runs it), writes them as one segment, and yields
//! the segment's summary (`rows::Encoded`).
//!
//! The model row is read once per exec: in one process the partitions share it; on a
//! cluster an exchange above the training task (the cluster's `SharedInputsOnce` rule) makes
//! every encode task read it from the training stage's output rather than train again.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, InputDistributionRequirements,
    Partitioning, PlanProperties, SendableRecordBatchStream, collect,
};
use futures::TryStreamExt;
use tokio::sync::OnceCell;

use super::BuildTarget;
use super::rows::{Encoded, Trained, from_json_batches, json_batch, json_schema};
use super::train_exec::TRAINED_COLUMN;
use crate::dataset::split_row_address;
use crate::index::blocks;
use crate::index_format::IndexModel;
use crate::progress::ProgressHook;

/// The column of an encode task's row.
pub(crate) const ENCODED_COLUMN: &str = "encoded_segment";

#[derive(Debug)]
pub struct IndexEncodeExec {
    target: BuildTarget,
    /// The training task (one partition, one row).
    model: Arc<dyn ExecutionPlan>,
    /// The rows to encode, a group of whole fragments per partition.
    rows: Arc<dyn ExecutionPlan>,
    /// The model row and the model it names, once a partition has read them.
    trained: Arc<OnceCell<(Trained, Arc<IndexModel>)>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl IndexEncodeExec {
    pub fn new(
        target: BuildTarget,
        model: Arc<dyn ExecutionPlan>,
        rows: Arc<dyn ExecutionPlan>,
    ) -> Self {
        let partitions = rows.properties().partitioning.partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(json_schema(ENCODED_COLUMN)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            target,
            model,
            rows,
            trained: Arc::default(),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn target(&self) -> &BuildTarget {
        &self.target
    }

    /// The input that yields the model row (the training stage).
    pub fn model_input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.model
    }
}

impl DisplayAs for IndexEncodeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "IndexEncodeExec: column={} segments={} memory_budget_mb={}",
            self.target.spec.column,
            self.properties.partitioning.partition_count(),
            self.target.spec.options.memory_budget_mb
        )
    }
}

/// Reads the one row of the training task, and opens the model file it names.
async fn read_trained(
    model: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    target: &BuildTarget,
) -> Result<(Trained, Arc<IndexModel>)> {
    let batches = collect(model, context).await?;
    let mut rows: Vec<Trained> = from_json_batches(TRAINED_COLUMN, &batches)?;
    let trained = match rows.len() {
        1 => rows.remove(0),
        n => return exec_err!("the training stage of an index build yielded {n} rows, not 1"),
    };
    let location = target.dataset.location();
    let model = IndexModel::open(location, &trained.model.meta.file).await?;
    Ok((trained, Arc::new(model)))
}

impl ExecutionPlan for IndexEncodeExec {
    fn name(&self) -> &str {
        "IndexEncodeExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    /// The model row whole; the rows partition by partition.
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![
            Distribution::SinglePartition,
            Distribution::UnspecifiedDistribution,
        ])
    }
    /// A partition of the rows is a group of whole fragments (one segment each):
    /// repartitioning would split fragments over segments.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.model, &self.rows]
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
        let [model, rows] = children.as_slice() else {
            return internal_err!("IndexEncodeExec takes a model input and a rows input");
        };
        Ok(Arc::new(Self::new(
            self.target.clone(),
            model.clone(),
            rows.clone(),
        )))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let rows = self.rows.execute(partition, context.clone())?;
        let rows_schema = self.rows.schema();
        let (model_input, trained) = (self.model.clone(), self.trained.clone());
        let target = self.target.clone();
        // The memory budget is the statement's: shared by the partitions run together.
        let partitions = self.properties.partitioning.partition_count().max(1);
        let budget = target.spec.options.memory_budget_mb.saturating_mul(1 << 20) / partitions;
        let m = &self.metrics;
        let time_encode = MetricBuilder::new(m).subset_time("time_encode", partition);
        let time_write = MetricBuilder::new(m).subset_time("time_write", partition);
        let rows_indexed = MetricBuilder::new(m).counter("rows_indexed", partition);
        let spilled = MetricBuilder::new(m).counter("spilled_runs", partition);
        let hook = context.session_config().get_extension::<ProgressHook>();
        let row = async move {
            let (trained, model) = trained
                .get_or_try_init(|| read_trained(model_input, context, &target))
                .await?
                .clone();
            let location = target.dataset.location();
            let backend = target.backend()?;
            let device = backend.name().to_string();
            // The fragments this partition covers, from the addresses it reads.
            let seen = Arc::new(Mutex::new(BTreeSet::new()));
            let recorded = seen.clone();
            let rows = rows.inspect_ok(move |batch| {
                let addresses = batch
                    .column(batch.num_columns() - 1)
                    .as_primitive::<UInt64Type>();
                let mut seen = recorded.lock().expect("fragment set lock");
                for a in addresses.values() {
                    seen.insert(split_row_address(*a).0);
                }
            });
            let rows = Box::pin(RecordBatchStreamAdapter::new(rows_schema, rows));
            let mut segment = blocks::encode(
                &model,
                vec![],
                rows,
                backend,
                budget,
                location,
                trained.rows_usable,
                hook.as_deref(),
            )
            .await?;
            segment.meta.fragments = seen
                .lock()
                .expect("fragment set lock")
                .iter()
                .copied()
                .collect();
            time_encode.add_duration(std::time::Duration::from_secs_f64(segment.seconds_encode));
            time_write.add_duration(std::time::Duration::from_secs_f64(segment.seconds_write));
            rows_indexed.add(segment.meta.rows as usize);
            spilled.add(segment.spilled_runs);
            let encoded = Encoded {
                trained,
                segment,
                accelerator: device,
            };
            json_batch(ENCODED_COLUMN, &encoded)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            json_schema(ENCODED_COLUMN),
            futures::stream::once(row),
        )))
    }
}
