//! Handing a vecfusion leaf's partitions out to tasks.
//!
//! Ballista runs a stage as tasks that each own some of its partitions, and it tells a task
//! which by *restricting* the stage's leaves before sending it: a file scan keeps only its
//! file groups, a memory scan only its partitions, a shuffle reader only its inputs. It can
//! restrict only the leaves it knows; a leaf of ours (`VecfusionScanExec`,
//! `RandomVectorsExec`) would arrive whole, every task of the stage would run every
//! partition, and each row would be read once per task.
//!
//! [`TaskPartitions`] (a physical optimizer rule the scheduler runs last) puts each such leaf
//! under a [`TaskPartitionsExec`], whose other child is an in-memory list of the leaf's
//! partition numbers (one row per partition) — a leaf Ballista does restrict. A task then
//! holds the numbers of its own partitions, and `TaskPartitionsExec` runs exactly those of
//! the leaf. The leaf itself is made again on the executor from its recipe and splits the
//! same version the same way, so partition `i` reads the same rows in every process.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, internal_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use futures::TryStreamExt;
use vecfusion::provider::VecfusionScanExec;
use vecfusion::udf::random_vectors::RandomVectorsExec;

/// Column of the partition list: a partition number of the leaf.
const PARTITION_COLUMN: &str = "leaf_partition";

/// Runs the partitions of `leaf` whose numbers its `partitions` child yields: one output
/// partition per partition of that child.
#[derive(Debug)]
pub struct TaskPartitionsExec {
    /// The in-memory partition list (Ballista restricts it to a task's partitions).
    partitions: Arc<dyn ExecutionPlan>,
    leaf: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl TaskPartitionsExec {
    /// `leaf` under a list of all its partitions.
    pub fn over(leaf: Arc<dyn ExecutionPlan>) -> Result<Self> {
        let n = leaf.properties().partitioning.partition_count();
        let schema = Arc::new(Schema::new(vec![Field::new(
            PARTITION_COLUMN,
            DataType::UInt32,
            false,
        )]));
        let lists = (0..n)
            .map(|i| {
                let number = u32::try_from(i).map_err(|_| {
                    datafusion::error::DataFusionError::Plan(format!(
                        "a scan of {n} partitions is more than a cluster can number"
                    ))
                })?;
                let column = Arc::new(UInt32Array::from(vec![number]));
                Ok(vec![RecordBatch::try_new(schema.clone(), vec![column])?])
            })
            .collect::<Result<Vec<_>>>()?;
        let partitions = MemorySourceConfig::try_new_exec(&lists, schema, None)?;
        Self::try_new(partitions, leaf)
    }

    fn try_new(partitions: Arc<dyn ExecutionPlan>, leaf: Arc<dyn ExecutionPlan>) -> Result<Self> {
        let count = partitions.properties().partitioning.partition_count();
        let p = leaf.properties();
        let properties = PlanProperties::new(
            p.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(count),
            p.emission_type,
            p.boundedness,
        );
        Ok(Self {
            partitions,
            leaf,
            properties: Arc::new(properties),
        })
    }

    /// Whether this rule puts `plan` under a partition list: a vecfusion leaf of more than
    /// one partition.
    fn wants(plan: &Arc<dyn ExecutionPlan>) -> bool {
        let ours = plan.downcast_ref::<VecfusionScanExec>().is_some()
            || plan.downcast_ref::<RandomVectorsExec>().is_some();
        ours && plan.children().is_empty() && plan.properties().partitioning.partition_count() > 1
    }
}

impl DisplayAs for TaskPartitionsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "TaskPartitionsExec: partitions={} of {}",
            self.partitions.properties().partitioning.partition_count(),
            self.leaf.properties().partitioning.partition_count()
        )
    }
}

impl ExecutionPlan for TaskPartitionsExec {
    fn name(&self) -> &str {
        "TaskPartitionsExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.partitions, &self.leaf]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    /// Neither child may be repartitioned: the list's partitions are the tasks' shares, and
    /// the leaf's numbering is what the list refers to.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false, true]
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [partitions, leaf] = children.as_slice() else {
            return internal_err!("TaskPartitionsExec takes a partition list and a leaf");
        };
        Ok(Arc::new(Self::try_new(partitions.clone(), leaf.clone())?))
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let numbers = self.partitions.execute(partition, context.clone())?;
        let (leaf, schema) = (self.leaf.clone(), self.leaf.schema());
        let count = leaf.properties().partitioning.partition_count();
        let rows = numbers
            .map_ok(move |batch| {
                let numbers: Vec<u32> = batch
                    .column(0)
                    .as_primitive::<UInt32Type>()
                    .values()
                    .to_vec();
                futures::stream::iter(
                    numbers
                        .into_iter()
                        .map(Ok::<_, datafusion::error::DataFusionError>),
                )
            })
            .try_flatten()
            .and_then(move |i| {
                let (leaf, context) = (leaf.clone(), context.clone());
                async move {
                    let i = i as usize;
                    if i >= count {
                        return exec_err!("a task was given partition {i} of a leaf of {count}");
                    }
                    leaf.execute(i, context)
                }
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}

/// Puts every multi-partition vecfusion leaf under a [`TaskPartitionsExec`]. The scheduler
/// runs it after DataFusion's rules, so nothing moves the list away from its leaf.
#[derive(Debug, Default)]
pub struct TaskPartitions;

impl PhysicalOptimizerRule for TaskPartitions {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            if node.downcast_ref::<TaskPartitionsExec>().is_some() {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            if TaskPartitionsExec::wants(&node) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(TaskPartitionsExec::over(node)?);
                return Ok(Transformed::new(wrapped, true, TreeNodeRecursion::Jump));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }
    fn name(&self) -> &str {
        "vecfusion_task_partitions"
    }
    fn schema_check(&self) -> bool {
        true
    }
}

/// The first bytes of a [`TaskPartitionsExec`] payload (it has no fields of its own: both
/// children travel as DataFusion encodes them).
const TAG: &[u8; 4] = b"VFT\x01";

/// Encodes [`TaskPartitionsExec`] and refuses every other plan.
#[derive(Debug, Clone, Default)]
pub struct TaskPartitionsCodec;

impl PhysicalExtensionCodec for TaskPartitionsCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if buf != TAG {
            return plan_err!("not a TaskPartitionsExec payload");
        }
        let [partitions, leaf] = inputs else {
            return plan_err!(
                "TaskPartitionsExec takes two input plans, got {}",
                inputs.len()
            );
        };
        Ok(Arc::new(TaskPartitionsExec::try_new(
            partitions.clone(),
            leaf.clone(),
        )?))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if node.downcast_ref::<TaskPartitionsExec>().is_none() {
            return plan_err!("{} is not a TaskPartitionsExec", node.name());
        }
        buf.extend_from_slice(TAG);
        Ok(())
    }
}
