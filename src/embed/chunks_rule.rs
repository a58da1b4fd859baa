//! `ChunkModelInputs`: a physical optimizer rule that puts a [`ModelInputChunksExec`] below
//! every operator calling an embedding model (a projection such as `SELECT minilm(text)`, a
//! filter, a sort key...), so the model sees small chunks and the statement can be cancelled
//! between them. Operators with several inputs (joins) are left as they are.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};

use super::chunks_exec::ModelInputChunksExec;
use super::function::EmbeddingFunction;

#[derive(Debug, Default)]
pub struct ChunkModelInputs;

impl PhysicalOptimizerRule for ChunkModelInputs {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let [input] = node.children()[..] else {
                return Ok(Transformed::no(node));
            };
            if input.downcast_ref::<ModelInputChunksExec>().is_some()
                || !calls_a_model(node.as_ref())?
            {
                return Ok(Transformed::no(node));
            }
            let chunked: Arc<dyn ExecutionPlan> =
                Arc::new(ModelInputChunksExec::new(input.clone()));
            let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
            Ok(Transformed::yes(
                node.replace_children(vec![chunked], keep)?,
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "chunk_model_inputs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether any expression `plan` evaluates calls an embedding model.
fn calls_a_model(plan: &dyn ExecutionPlan) -> Result<bool> {
    let mut found = false;
    plan.apply_expressions(&mut |root| {
        found = root.exists(|e| Ok(is_model_call(e)))?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}

fn is_model_call(e: &Arc<dyn PhysicalExpr>) -> bool {
    e.downcast_ref::<ScalarFunctionExpr>().is_some_and(|f| {
        f.fun()
            .inner()
            .downcast_ref::<EmbeddingFunction>()
            .is_some()
    })
}
