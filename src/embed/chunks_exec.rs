//! `ModelInputChunksExec`: its input's batches cut into chunks of [`CHUNK_ROWS`] rows, with a
//! yield to the runtime before each chunk.
//!
//! A scalar function runs inside the poll of the operator that calls it, on a whole batch
//! (8,192 rows by default). For an embedding model that is minutes of CPU during which the
//! statement cannot be cancelled: a dropped future or an aborted task stops only when the
//! task yields, and Ctrl-C in the shell is noticed only then. Below an operator that calls a
//! model (see [`super::chunks_rule`]), this plan makes every call see at most [`CHUNK_ROWS`]
//! rows and yields between them, so a cancelled `INSERT ... SELECT minilm(text)` stops within
//! one chunk. Slices are zero-copy.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

/// Rows a model is given at a time: a few seconds of work for a BERT-sized model on a CPU,
/// little enough that progress moves and cancelling is prompt, enough to fill its batches.
/// Computed columns are evaluated in chunks of the same size.
pub const CHUNK_ROWS: usize = 256;

#[derive(Debug)]
pub struct ModelInputChunksExec {
    input: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
}

impl ModelInputChunksExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            input,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for ModelInputChunksExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ModelInputChunksExec: rows={CHUNK_ROWS}")
    }
}

impl ExecutionPlan for ModelInputChunksExec {
    fn name(&self) -> &str {
        "ModelInputChunksExec"
    }

    /// The input's: rows keep their order and their DataFusion partition.
    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input))),
            _ => internal_err!("ModelInputChunksExec takes one child"),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let chunks = MetricBuilder::new(&self.metrics).counter("chunks", partition);
        let stream = input
            .map_ok(|batch| futures::stream::iter(slices(batch).map(Ok)))
            .try_flatten()
            .then(move |chunk| {
                let chunks = chunks.clone();
                async move {
                    // Where a cancelled statement stops: before the next model call.
                    tokio::task::yield_now().await;
                    chunks.add(1);
                    chunk
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// `batch` as zero-copy slices of at most [`CHUNK_ROWS`] rows (an empty batch as itself).
fn slices(batch: RecordBatch) -> impl Iterator<Item = RecordBatch> {
    let rows = batch.num_rows();
    let starts = (0..rows.max(1)).step_by(CHUNK_ROWS);
    starts.map(move |start| batch.slice(start, CHUNK_ROWS.min(rows - start)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::{CHUNK_ROWS, slices};

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let values = Int64Array::from_iter_values(0..rows as i64);
        RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap()
    }

    #[test]
    fn batches_are_cut_into_chunks_in_order() {
        for rows in [0, 1, CHUNK_ROWS, CHUNK_ROWS + 1, 3 * CHUNK_ROWS + 17] {
            let chunks: Vec<_> = slices(batch(rows)).collect();
            assert_eq!(
                chunks.len(),
                rows.div_ceil(CHUNK_ROWS).max(1),
                "{rows} rows"
            );
            assert!(chunks.iter().all(|c| c.num_rows() <= CHUNK_ROWS));
            let values: Vec<i64> = chunks
                .iter()
                .flat_map(|c| {
                    let column = c.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    column.values().to_vec()
                })
                .collect();
            assert_eq!(values, (0..rows as i64).collect::<Vec<_>>());
        }
    }
}
