//! `CreateVectorIndex`: the logical plan node of `CREATE VECTOR INDEX`, and its physical
//! planning into the build's stages (`super::stages`) over scans of the vector column with
//! row addresses.
//!
//! The node is a leaf: a build reads the dataset version it was planned against through its
//! own scan (a table scan has no row addresses), so there is no logical input to plan and
//! discard.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DFSchemaRef, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::ExecutionPlan;

use super::blocks::BuildSpec;
use super::stages::{BuildTarget, plan_build, result_schema};
use crate::dataset::Dataset;

/// `CREATE VECTOR INDEX` as a logical plan node.
#[derive(Debug, Clone)]
pub struct CreateVectorIndexNode {
    pub spec: BuildSpec,
    pub dataset: Dataset,
    pub dim: usize,
    pub column_index: usize,
    pub schema: DFSchemaRef,
}

impl CreateVectorIndexNode {
    pub fn try_new(
        spec: BuildSpec,
        dataset: Dataset,
        dim: usize,
        column_index: usize,
    ) -> Result<Self> {
        Ok(Self {
            spec,
            dataset,
            dim,
            column_index,
            schema: Arc::new(DFSchema::try_from(result_schema().as_ref().clone())?),
        })
    }

    /// The build's stages, reading the dataset version the node was planned against.
    pub async fn plan(&self, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let target = BuildTarget {
            spec: self.spec.clone(),
            dataset: self.dataset.clone(),
            dim: self.dim,
        };
        plan_build(session, target, self.column_index).await
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
        self.key() == other.key()
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
        vec![]
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
            o.accelerator
        )
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if !inputs.is_empty() {
            return internal_err!("CreateVectorIndex has no inputs");
        }
        Ok(self.clone())
    }
}
