//! Computing an input that many tasks share once.
//!
//! A plan of several partitions may read one of its inputs whole in each partition: an
//! index build's encode stage reads the training task's one row in every partition. In one
//! process the plan reads it once and shares it. On a cluster each partition may be a task
//! of its own, and Ballista starts a new stage only at an exchange; an input of one
//! partition needs no merge, so DataFusion puts none there, and every encode task would
//! train the model again. [`SharedInputsOnce`] (a physical optimizer rule the scheduler runs
//! after DataFusion's) puts a `CoalescePartitionsExec` above such an input, which Ballista
//! makes a stage of its own whose output every task of the reading stage fetches.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{Distribution, ExecutionPlan, replace_children_if_necessary};

/// Whether `plan` already ends a stage (Ballista cuts at merges).
fn is_exchange(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<CoalescePartitionsExec>()
        || plan.is::<SortPreservingMergeExec>()
        || plan.is::<RepartitionExec>()
}

/// Puts an exchange above every input that a plan of more than one partition reads whole,
/// unless it is one already.
#[derive(Debug, Default)]
pub struct SharedInputsOnce;

impl PhysicalOptimizerRule for SharedInputsOnce {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.properties().partitioning.partition_count() <= 1 {
                return Ok(Transformed::no(node));
            }
            let required = node.input_distribution_requirements().into_per_child();
            let children: Vec<Arc<dyn ExecutionPlan>> =
                node.children().into_iter().cloned().collect();
            let mut changed = false;
            let children = children
                .into_iter()
                .zip(required)
                .map(|(child, required)| {
                    if matches!(required, Distribution::SinglePartition) && !is_exchange(&child) {
                        changed = true;
                        Arc::new(CoalescePartitionsExec::new(child)) as Arc<dyn ExecutionPlan>
                    } else {
                        child
                    }
                })
                .collect();
            if changed {
                Ok(Transformed::yes(replace_children_if_necessary(
                    node, children,
                )?))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }
    fn name(&self) -> &str {
        "vecfusion_shared_inputs_once"
    }
    fn schema_check(&self) -> bool {
        true
    }
}
