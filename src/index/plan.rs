//! Planning vecfusion's logical nodes: the `CreateVectorIndex` node, the extension planner
//! that turns it into `CreateVectorIndexExec` (and `AnnSearch` into `AnnSearchExec`, see
//! `crate::search::plan`), and the query planner that installs it into a session.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::build::BuildSpec;
use super::exec::{CreateVectorIndexExec, result_schema};
use crate::dataset::Dataset;
use crate::kmeans::Accelerator;
use crate::provider::{ScanRequest, VecfusionScanExec};
use crate::search::AnnSearchNode;

/// `CREATE VECTOR INDEX` as a logical plan node over a scan of the vector column.
#[derive(Debug, Clone)]
pub struct CreateVectorIndexNode {
    pub spec: BuildSpec,
    pub dataset: Dataset,
    pub accelerator: Accelerator,
    pub dim: usize,
    pub column_index: usize,
    pub input: LogicalPlan,
    pub schema: DFSchemaRef,
}

impl CreateVectorIndexNode {
    pub fn try_new(
        spec: BuildSpec,
        dataset: Dataset,
        accelerator: Accelerator,
        dim: usize,
        column_index: usize,
        input: LogicalPlan,
    ) -> Result<Self> {
        Ok(Self {
            spec,
            dataset,
            accelerator,
            dim,
            column_index,
            input,
            schema: Arc::new(DFSchema::try_from(result_schema().as_ref().clone())?),
        })
    }

    fn key(&self) -> String {
        format!(
            "{:?} {} {}",
            self.spec,
            self.dataset.uri(),
            self.dataset.version()
        )
    }
}

// Nodes compare by what they build (the schema and dataset handle have no ordering).
impl PartialEq for CreateVectorIndexNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key() && self.input == other.input
    }
}
impl Eq for CreateVectorIndexNode {}
impl Hash for CreateVectorIndexNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}
impl PartialOrd for CreateVectorIndexNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.key().partial_cmp(&other.key())
    }
}

impl UserDefinedLogicalNodeCore for CreateVectorIndexNode {
    fn name(&self) -> &str {
        "CreateVectorIndex"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let o = &self.spec.options;
        write!(
            f,
            "CreateVectorIndex: name={} kind={} column={} metric={} accelerator={}",
            self.spec.name,
            o.kind.name(),
            self.spec.column,
            o.metric,
            self.accelerator.name
        )
    }
    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("CreateVectorIndex needs an input".into()))?;
        Ok(Self {
            input,
            ..self.clone()
        })
    }
}

/// Plans vecfusion's logical nodes.
#[derive(Debug, Default)]
pub struct VecfusionExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for VecfusionExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if let Some(ann) = node.as_any().downcast_ref::<AnnSearchNode>() {
            let exact = physical_inputs.first().cloned().ok_or_else(|| {
                DataFusionError::Internal("AnnSearch was planned without its scan".into())
            })?;
            return Ok(Some(
                crate::search::plan::plan_ann(ann, exact, session).await?,
            ));
        }
        let Some(node) = node.as_any().downcast_ref::<CreateVectorIndexNode>() else {
            return Ok(None);
        };
        // The build needs row addresses, which a plain table scan does not produce: it reads
        // through its own scan of the vector column.
        let request = ScanRequest {
            projection: Some(vec![node.column_index]),
            filters: vec![],
            limit: None,
            with_row_address: true,
        };
        let target = session.config().target_partitions();
        let scan =
            VecfusionScanExec::try_new(session, node.dataset.clone(), request, target).await?;
        Ok(Some(Arc::new(CreateVectorIndexExec::new(
            node.spec.clone(),
            node.dataset.clone(),
            node.accelerator.clone(),
            node.dim,
            Arc::new(scan),
        ))))
    }
}

/// DataFusion's physical planner with vecfusion's extension planners.
#[derive(Debug, Default)]
pub struct VecfusionQueryPlanner;

#[async_trait]
impl QueryPlanner for VecfusionQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(VecfusionExtensionPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}
