//! `ChunkModelInputs`: a physical optimizer rule that keeps embedding-model calls cancellable.
//!
//! - A projection calling a model (`SELECT minilm(text)`, `INSERT ... SELECT minilm(text)`) gets
//!   a [`ModelCallsExec`] below it that embeds whole batches, sorted by length, yielding
//!   between model batches; the projection reads its columns instead of calling the model.
//! - Any other operator calling a model (a filter, a sort key...) gets a
//!   [`ModelInputChunksExec`] below it, so the model sees small chunks and the statement can
//!   be cancelled between them.
//!
//! Operators with several inputs (joins) are left as they are.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::projection::ProjectionExec;

use super::calls_exec::{ModelCall, ModelCallsExec};
use super::chunks_exec::ModelInputChunksExec;

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
                || node.downcast_ref::<ModelCallsExec>().is_some()
                || !calls_a_model(node.as_ref())?
            {
                return Ok(Transformed::no(node));
            }
            if let Some(projection) = node.downcast_ref::<ProjectionExec>()
                && let Some(split) = calls_ahead(projection)?
            {
                return Ok(Transformed::yes(split));
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
    ModelCall::of(e).is_some()
}

/// `projection` reading the results of its model calls from a [`ModelCallsExec`] below it,
/// or `None` where a call's text itself calls a model (left to chunking).
fn calls_ahead(projection: &ProjectionExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let mut calls: Vec<ModelCall> = vec![];
    for p in projection.expr() {
        p.expr.apply(|e| {
            let Some(call) = ModelCall::of(e) else {
                return Ok(TreeNodeRecursion::Continue);
            };
            if !calls.iter().any(|c| c.expr.as_ref() == e.as_ref()) {
                calls.push(call);
            }
            Ok(TreeNodeRecursion::Jump)
        })?;
    }
    for call in &calls {
        if call.text().exists(|e| Ok(is_model_call(e)))? {
            return Ok(None);
        }
    }
    let input = Arc::clone(projection.input());
    let width = input.schema().fields().len();
    let names: Vec<String> = (0..calls.len())
        .map(|i| format!("__model_call_{i}"))
        .collect();
    let exprs = projection
        .expr()
        .iter()
        .map(|p| {
            let expr = Arc::clone(&p.expr).transform_down(|e| {
                Ok(
                    match calls.iter().position(|c| c.expr.as_ref() == e.as_ref()) {
                        Some(i) => {
                            let column: Arc<dyn PhysicalExpr> =
                                Arc::new(Column::new(&names[i], width + i));
                            Transformed::new(column, true, TreeNodeRecursion::Jump)
                        }
                        None => Transformed::no(e),
                    },
                )
            })?;
            Ok(ProjectionExpr {
                expr: expr.data,
                alias: p.alias.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let calls = Arc::new(ModelCallsExec::try_new(input, calls, &names)?);
    Ok(Some(Arc::new(ProjectionExec::try_new(exprs, calls)?)))
}
