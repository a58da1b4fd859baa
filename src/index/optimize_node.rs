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
use crate::dataset::Dataset;
use crate::provider::VecfusionScanExec;

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

    /// The fragments the work reads: every fragment to retrain, else the new ones.
    fn fragments(&self) -> Vec<u32> {
        if self.spec.options.retrain {
            self.dataset.fragments().iter().map(|f| f.id).collect()
        } else {
            self.spec.new_fragments.clone()
        }
    }

    /// `OptimizeVectorIndexExec` reading the dataset version the node was planned against.
    pub async fn plan(&self, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let fragments = self.fragments();
        let input: Option<Arc<dyn ExecutionPlan>> = if fragments.is_empty() {
            None
        } else {
            Some(Arc::new(
                VecfusionScanExec::fragment_vectors(
                    session,
                    self.dataset.clone(),
                    self.column_index,
                    fragments,
                )
                .await?,
            ))
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
