//! The physical planner of a vecfusion session: DataFusion's, with one extension planner for
//! every logical node vecfusion adds (`CreateVectorIndex`, `OptimizeVectorIndex`,
//! `AnnSearch`). Each node plans itself; this module only dispatches, so it sits above the
//! index and search wings and neither imports the other.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::index::node::CreateVectorIndexNode;
use crate::index::optimize_node::OptimizeVectorIndexNode;
use crate::prepared_queries::PlannedQuery;
use crate::search::AnnSearchNode;

/// Plans vecfusion's logical nodes.
#[derive(Debug, Default)]
pub struct VecfusionExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for VecfusionExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if let Some(ann) = node.as_any().downcast_ref::<AnnSearchNode>() {
            return Ok(Some(ann.plan(planner, session).await?));
        }
        if let Some(create) = node.as_any().downcast_ref::<CreateVectorIndexNode>() {
            return Ok(Some(create.plan(session).await?));
        }
        if let Some(optimize) = node.as_any().downcast_ref::<OptimizeVectorIndexNode>() {
            return Ok(Some(optimize.plan(session).await?));
        }
        // A kept plan under something built on it (a DataFrame method, EXPLAIN).
        if let Some(planned) = node.as_any().downcast_ref::<PlannedQuery>() {
            return Ok(Some(planned.physical()?));
        }
        Ok(None)
    }
}

/// DataFusion's physical planner with [`VecfusionExtensionPlanner`]; a [`PlannedQuery`] (an
/// `EXECUTE` answered with a kept plan) is already planned.
#[derive(Debug, Default)]
pub struct VecfusionQueryPlanner;

#[async_trait]
impl QueryPlanner for VecfusionQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(plan) = PlannedQuery::physical_plan(logical_plan)? {
            return Ok(plan);
        }
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(VecfusionExtensionPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}
