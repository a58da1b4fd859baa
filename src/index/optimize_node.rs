//! `OptimizeVectorIndex`: the logical plan node of `OPTIMIZE VECTOR INDEX`, and its physical
//! planning into [`OptimizeVectorIndexExec`] over a scan of the fragments it encodes.
//!
//! A leaf, like `CreateVectorIndex`: the work reads the dataset version it was planned
//! against through its own scan.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DFSchemaRef, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::ExecutionPlan;

use super::optimize::OptimizeSpec;
use super::optimize_exec::{OptimizeVectorIndexExec, result_schema};
use super::stages::{BuildTarget, plan_build, plan_encode};
use crate::dataset::Dataset;

/// `OPTIMIZE VECTOR INDEX` as a logical plan node.
#[derive(Debug, Clone)]
pub struct OptimizeVectorIndexNode {
    pub spec: OptimizeSpec,
    pub dataset: Dataset,
    pub dim: usize,
    pub column_index: usize,
    pub schema: DFSchemaRef,
}

impl OptimizeVectorIndexNode {
    pub fn try_new(
        spec: OptimizeSpec,
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

    /// `OptimizeVectorIndexExec` over the work it commits, planned against the dataset
    /// version the node was planned against: the whole build for a retrain, else the encode
    /// stage over the new fragments (none when there are none).
    pub async fn plan(&self, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let spec = &self.spec;
        let target = BuildTarget {
            spec: spec.build_spec()?,
            dataset: self.dataset.clone(),
            dim: self.dim,
        };
        let input = if spec.options.retrain {
            if self.dataset.count_rows() == 0 {
                None
            } else {
                Some(plan_build(session, target, self.column_index).await?)
            }
        } else if spec.new_fragments.is_empty() {
            None
        } else {
            let model = spec.model()?;
            let fragments = spec.new_fragments.clone();
            Some(plan_encode(session, target, self.column_index, model, fragments).await?)
        };
        Ok(Arc::new(OptimizeVectorIndexExec::new(
            self.spec.clone(),
            self.dataset.clone(),
            self.dim,
            input,
        )))
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

// Nodes compare by what they do (the schema and dataset handle have no ordering).
impl PartialEq for OptimizeVectorIndexNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for OptimizeVectorIndexNode {}
impl Hash for OptimizeVectorIndexNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}
impl PartialOrd for OptimizeVectorIndexNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.key().partial_cmp(&other.key())
    }
}

impl UserDefinedLogicalNodeCore for OptimizeVectorIndexNode {
    fn name(&self) -> &str {
        "OptimizeVectorIndex"
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
        write!(
            f,
            "OptimizeVectorIndex: name={} segments={} new_fragments={}",
            self.spec.index.name,
            self.spec.index.segments.len(),
            self.spec.new_fragments.len()
        )
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if !inputs.is_empty() {
            return internal_err!("OptimizeVectorIndex has no inputs");
        }
        Ok(self.clone())
    }
}
