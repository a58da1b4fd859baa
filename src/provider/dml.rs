//! `DELETE`, `UPDATE` and `TRUNCATE`: plans whose input is a scan of the rows to change
//! (with their row addresses) and whose execution writes new deletion vectors, plus a new
//! fragment for updated rows, and commits them as one version.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_datafusion_err, internal_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream, execute_stream,
};
use futures::StreamExt;
use roaring::RoaringBitmap;

use super::column_values::ComputedColumns;
use super::conform::conform_batch;
use super::scan::VecfusionScanExec;
use crate::dataset::{Dataset, DeletionMeta, Operation, deletion, split_row_address};
use crate::plan_properties::{single_final, whole_inputs};

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

fn count_batch(n: u64) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        count_schema(),
        vec![Arc::new(UInt64Array::from(vec![n]))],
    )?)
}

fn single_partition_properties() -> Arc<PlanProperties> {
    single_final(count_schema())
}

/// Adds the addresses in the last column of `batch` to per-fragment bitmaps.
fn collect_addresses(batch: &RecordBatch, into: &mut BTreeMap<u32, RoaringBitmap>) {
    let addrs = batch
        .column(batch.num_columns() - 1)
        .as_primitive::<UInt64Type>();
    for addr in addrs.values() {
        let (frag, offset) = split_row_address(*addr);
        into.entry(frag).or_default().insert(offset);
    }
}

/// Writes the union of the existing and the new deletions of each touched fragment.
async fn write_deletion_vectors(
    dataset: &Dataset,
    new: BTreeMap<u32, RoaringBitmap>,
) -> Result<(Vec<(u32, DeletionMeta)>, u64)> {
    let mut out = vec![];
    let mut total = 0;
    for (frag_id, rows) in new {
        let frag = dataset
            .fragment(frag_id)
            .ok_or_else(|| internal_datafusion_err!("scan returned unknown fragment {frag_id}"))?;
        let mut all = dataset.deletions(frag).await?.as_ref().clone();
        let before = all.len();
        all |= rows;
        total += all.len() - before;
        out.push((
            frag_id,
            deletion::write_deletions(dataset.location(), frag_id, &all).await?,
        ));
    }
    Ok((out, total))
}

fn with_child_check(
    children: &[Arc<dyn ExecutionPlan>],
    what: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    match children {
        [one] => Ok(one.clone()),
        _ => internal_err!("{what} takes exactly one input"),
    }
}

/// `DELETE FROM t [WHERE p]` (and `TRUNCATE`, which is a `DELETE` without predicate).
#[derive(Debug)]
pub struct DeleteExec {
    dataset: Dataset,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DeleteExec {
    pub async fn try_new(
        state: &dyn Session,
        dataset: Dataset,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = Arc::new(
            VecfusionScanExec::row_addresses(state, dataset.clone(), Some(vec![]), filters).await?,
        );
        Ok(Arc::new(Self::new(dataset, input)))
    }

    /// Deletes from `dataset` the rows `input` yields (it ends with the row-address column).
    pub fn new(dataset: Dataset, input: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            dataset,
            input,
            properties: single_partition_properties(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The version the rows are deleted from.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
}

impl DisplayAs for DeleteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "VecfusionDeleteExec: dataset={}", self.dataset.uri())
    }
}

impl ExecutionPlan for DeleteExec {
    fn name(&self) -> &str {
        "VecfusionDeleteExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        whole_inputs(self.children().len())
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
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self {
            dataset: self.dataset.clone(),
            input: with_child_check(&children, "VecfusionDeleteExec")?,
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.clone();
        let dataset = self.dataset.clone();
        let baseline = BaselineMetrics::new(&self.metrics, 0);
        let fut = async move {
            let mut rows = execute_stream(input, context)?;
            let mut doomed = BTreeMap::new();
            while let Some(batch) = rows.next().await {
                collect_addresses(&batch?, &mut doomed);
            }
            let (deletions, deleted) = write_deletion_vectors(&dataset, doomed).await?;
            if deleted > 0 {
                dataset
                    .commit(&Operation::Delete {
                        deletions,
                        rows_deleted: deleted,
                    })
                    .await?;
            }
            baseline.record_output(1);
            count_batch(deleted)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(fut),
        )))
    }
}

/// `UPDATE t SET c = e [WHERE p]`: the matching rows are deleted and re-appended, changed,
/// in one new fragment; both halves commit together.
#[derive(Debug)]
pub struct UpdateExec {
    dataset: Dataset,
    input: Arc<dyn ExecutionPlan>,
    /// (table column index, new value over the table's columns)
    assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
    /// Recomputed for the updated rows when they read an assigned column.
    computed: ComputedColumns,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl UpdateExec {
    pub async fn try_new(
        state: &dyn Session,
        dataset: Dataset,
        filters: Vec<Expr>,
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
        computed: ComputedColumns,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = Arc::new(
            VecfusionScanExec::row_addresses(state, dataset.clone(), None, filters).await?,
        );
        Ok(Arc::new(Self::new(dataset, input, assignments, computed)))
    }

    fn new(
        dataset: Dataset,
        input: Arc<dyn ExecutionPlan>,
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
        computed: ComputedColumns,
    ) -> Self {
        Self {
            dataset,
            input,
            assignments,
            computed,
            properties: single_partition_properties(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// An update planned by another process of a cluster, made again here: the table's
    /// computed columns are planned in `state`.
    pub fn from_parts(
        state: &dyn Session,
        dataset: Dataset,
        input: Arc<dyn ExecutionPlan>,
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
    ) -> Result<Self> {
        let computed = ComputedColumns::plan(state, dataset.schema())?;
        Ok(Self::new(dataset, input, assignments, computed))
    }

    /// The version updated.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// (table column index, new value over the table's columns)
    pub fn assignments(&self) -> &[(usize, Arc<dyn PhysicalExpr>)] {
        &self.assignments
    }
}

impl DisplayAs for UpdateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.dataset.schema();
        let cols: Vec<String> = self
            .assignments
            .iter()
            .map(|(i, e)| format!("{} = {e}", schema.field(*i).name()))
            .collect();
        write!(
            f,
            "VecfusionUpdateExec: dataset={} set=[{}]",
            self.dataset.uri(),
            cols.join(", ")
        )
    }
}

impl ExecutionPlan for UpdateExec {
    fn name(&self) -> &str {
        "VecfusionUpdateExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        whole_inputs(self.children().len())
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for (_, e) in &self.assignments {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self {
            dataset: self.dataset.clone(),
            input: with_child_check(&children, "VecfusionUpdateExec")?,
            assignments: self.assignments.clone(),
            computed: self.computed.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.clone();
        let dataset = self.dataset.clone();
        let assignments = self.assignments.clone();
        let computed = self.computed.clone();
        let assigned: Vec<usize> = assignments.iter().map(|(i, _)| *i).collect();
        let baseline = BaselineMetrics::new(&self.metrics, 0);
        let fut = async move {
            let schema = dataset.schema().clone();
            let mut writer = dataset.fragment_writer()?;
            let mut changed = BTreeMap::new();
            let result: Result<()> = async {
                let mut rows = execute_stream(input, context)?;
                while let Some(batch) = rows.next().await {
                    let batch = batch?;
                    collect_addresses(&batch, &mut changed);
                    let mut columns: Vec<ArrayRef> =
                        batch.columns()[..schema.fields().len()].to_vec();
                    for (idx, expr) in &assignments {
                        columns[*idx] = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
                    }
                    let values: Vec<Field> = columns
                        .iter()
                        .zip(schema.fields())
                        .map(|(c, f)| Field::new(f.name(), c.data_type().clone(), true))
                        .collect();
                    let updated = RecordBatch::try_new(Arc::new(Schema::new(values)), columns)?;
                    let updated = conform_batch(&updated, &schema)?;
                    writer
                        .write(computed.refresh_updated(updated, &assigned).await?)
                        .await?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                writer.abort().await;
                return Err(e);
            }
            let fragments: Vec<_> = writer.finish().await?.into_iter().collect();
            let (deletions, updated) = write_deletion_vectors(&dataset, changed).await?;
            if updated > 0 {
                dataset
                    .commit(&Operation::Update {
                        deletions,
                        rows_updated: updated,
                        fragments,
                    })
                    .await?;
            }
            baseline.record_output(1);
            count_batch(updated)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(fut),
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt64Type;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{col, lit};

    use super::DeleteExec;
    use crate::test_support::{create_table, latest, session_after};

    #[tokio::test]
    async fn delete_counts_new_deletions_once_and_commits_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session_after(&[
            create_table(dir.path(), "id BIGINT, embedding FLOAT[2]"),
            "INSERT INTO t SELECT * FROM random_vectors(1000, 2)".into(),
            "DELETE FROM t WHERE id < 10".into(),
        ])
        .await;
        let dataset = latest(dir.path()).await;
        assert_eq!(dataset.version(), 3);
        // Rows 0..10 are already deleted: only 10..20 are new deletions.
        let plan = DeleteExec::try_new(&ctx.state(), dataset, vec![col("id").lt(lit(20i64))])
            .await
            .unwrap();
        assert!(
            displayable(plan.as_ref())
                .indent(false)
                .to_string()
                .contains("VecfusionScanExec"),
            "the rows to delete come from a scan with row addresses"
        );
        let batches = collect(plan, ctx.task_ctx()).await.unwrap();
        let count = batches[0].column(0).as_primitive::<UInt64Type>().value(0);
        assert_eq!(count, 10);
        let after = latest(dir.path()).await;
        assert_eq!(after.version(), 4);
        assert_eq!(after.count_rows(), 980);
    }
}
