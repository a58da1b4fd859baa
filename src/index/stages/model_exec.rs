//! `IndexModelExec`: the model of an existing index as the one row a training task yields,
//! so that `OPTIMIZE VECTOR INDEX` encodes new fragments with the same encode stage
//! (`IndexEncodeExec`) as `CREATE VECTOR INDEX`, without training.

use std::fmt;
use std::sync::Arc;

use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use super::BuildTarget;
use super::rows::{Trained, json_batch, json_schema};
use super::train_exec::TRAINED_COLUMN;
use crate::index::blocks::ModelSummary;
use crate::plan_properties::single_final;

#[derive(Debug)]
pub struct IndexModelExec {
    target: BuildTarget,
    model: ModelSummary,
    /// Rows the encode stage will read (for its progress).
    rows: u64,
    properties: Arc<PlanProperties>,
}

impl IndexModelExec {
    pub fn new(target: BuildTarget, model: ModelSummary, rows: u64) -> Self {
        Self {
            target,
            model,
            rows,
            properties: single_final(json_schema(TRAINED_COLUMN)),
        }
    }

    pub fn target(&self) -> &BuildTarget {
        &self.target
    }

    pub fn model(&self) -> &ModelSummary {
        &self.model
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}

impl DisplayAs for IndexModelExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "IndexModelExec: index={} model={}",
            self.target.spec.name, self.model.meta.file
        )
    }
}

impl ExecutionPlan for IndexModelExec {
    fn name(&self) -> &str {
        "IndexModelExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        if !children.is_empty() {
            return internal_err!("IndexModelExec has no inputs");
        }
        Ok(self)
    }
    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let trained = Trained {
            model: self.model.clone(),
            rows_usable: self.rows,
            rows_skipped: 0,
            accelerator: String::new(),
            seconds_sample: 0.0,
            device_memory_budget_bytes: None,
            device_bytes_uploaded: None,
        };
        let row = json_batch(TRAINED_COLUMN, &trained);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            json_schema(TRAINED_COLUMN),
            futures::stream::once(async move { row }),
        )))
    }
}
