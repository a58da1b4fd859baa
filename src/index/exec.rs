//! `CreateVectorIndexExec`: the physical plan of `CREATE VECTOR INDEX`.
//!
//! Its child is a scan of the vector column with row addresses; executing it runs the build
//! (`create::build_index`), which reads the child twice (every partition samples, then one
//! encode pass), and yields one row describing the new index. Per-phase times and row counts
//! are metrics, so `EXPLAIN ANALYZE CREATE VECTOR INDEX ...` shows where the time went.

use std::fmt;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use super::blocks::BuildSpec;
use super::create::{BuildMetrics, BuildReport, build_index};
use crate::dataset::Dataset;
use crate::kmeans::Accelerator;
use crate::plan_properties::single_final;
use crate::progress::ProgressHook;

/// Columns of the one-row result.
pub fn result_schema() -> SchemaRef {
    let f64 = |n: &str| Field::new(n, DataType::Float64, false);
    let u64 = |n: &str| Field::new(n, DataType::UInt64, false);
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        utf8("name"),
        utf8("kind"),
        u64("rows_indexed"),
        u64("rows_skipped"),
        u64("partitions"),
        utf8("accelerator"),
        u64("version"),
        f64("seconds_sample"),
        f64("seconds_train_ivf"),
        f64("seconds_train_quantizer"),
        f64("seconds_encode"),
        f64("seconds_write"),
        f64("seconds_total"),
    ]))
}

fn result_batch(r: &BuildReport) -> Result<RecordBatch> {
    let s = &r.seconds;
    let f = |v: f64| Arc::new(Float64Array::from(vec![v])) as _;
    Ok(RecordBatch::try_new(
        result_schema(),
        vec![
            Arc::new(StringArray::from(vec![r.name.clone()])),
            Arc::new(StringArray::from(vec![r.kind.name()])),
            Arc::new(UInt64Array::from(vec![r.rows_indexed])),
            Arc::new(UInt64Array::from(vec![r.rows_skipped])),
            Arc::new(UInt64Array::from(vec![r.partitions as u64])),
            Arc::new(StringArray::from(vec![r.accelerator.clone()])),
            Arc::new(UInt64Array::from(vec![r.version])),
            f(s.sample),
            f(s.train_ivf),
            f(s.train_quantizer),
            f(s.encode),
            f(s.write),
            f(s.total),
        ],
    )?)
}

#[derive(Debug)]
pub struct CreateVectorIndexExec {
    spec: BuildSpec,
    dataset: Dataset,
    /// The device the build ran on, once it has run (for `EXPLAIN ANALYZE`).
    selected: Arc<OnceLock<String>>,
    dim: usize,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl CreateVectorIndexExec {
    pub fn new(
        spec: BuildSpec,
        dataset: Dataset,
        dim: usize,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        Self {
            spec,
            dataset,
            selected: Arc::default(),
            dim,
            input,
            properties: single_final(result_schema()),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// What is built.
    pub fn spec(&self) -> &BuildSpec {
        &self.spec
    }

    /// The version the index is built over.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The dimension of the indexed column.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl DisplayAs for CreateVectorIndexExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let o = &self.spec.options;
        write!(
            f,
            "CreateVectorIndexExec: name={} kind={} column={} metric={} accelerator={}",
            self.spec.name,
            o.kind.name(),
            self.spec.column,
            o.metric,
            o.accelerator
        )?;
        if let Some(device) = self.selected.get() {
            write!(f, " ({device})")?;
        }
        if let Some(p) = o.num_partitions {
            write!(f, " partitions={p}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for CreateVectorIndexExec {
    fn name(&self) -> &str {
        "CreateVectorIndexExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
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
        let [input] = children.as_slice() else {
            return internal_err!("CreateVectorIndexExec takes one input");
        };
        Ok(Arc::new(Self::new(
            self.spec.clone(),
            self.dataset.clone(),
            self.dim,
            input.clone(),
        )))
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
        let (spec, dataset, dim) = (self.spec.clone(), self.dataset.clone(), self.dim);
        let selected = self.selected.clone();
        let metrics = BuildMetrics::new(&self.metrics);
        let hook = context.session_config().get_extension::<ProgressHook>();
        let fut = async move {
            // The device is opened here, when the build runs, not when it is planned.
            let accel = Accelerator::select(spec.options.accelerator)?;
            let _ = selected.set(accel.name.clone());
            let report = build_index(
                dataset,
                dim,
                &spec,
                accel,
                input,
                context,
                hook.as_deref(),
                &metrics,
            )
            .await?;
            result_batch(&report)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_schema(),
            futures::stream::once(fut),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt64Type;
    use datafusion::physical_plan::{ExecutionPlan, collect, displayable};

    use super::CreateVectorIndexExec;
    use crate::index::IndexOptions;
    use crate::index::blocks::BuildSpec;
    use crate::provider::VecfusionScanExec;
    use crate::quantizer::IndexKind;
    use crate::test_support::{create_table, latest, session_after};

    #[tokio::test]
    async fn executing_builds_and_commits_and_names_the_device_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session_after(&[
            create_table(dir.path(), "id BIGINT, embedding FLOAT[8]"),
            "INSERT INTO t SELECT * FROM random_vectors(2000, 8)".into(),
        ])
        .await;
        let dataset = latest(dir.path()).await;
        let mut options = IndexOptions::defaults(IndexKind::IvfSq);
        options.num_partitions = Some(4);
        let spec = BuildSpec {
            name: "i".into(),
            column: "embedding".into(),
            options,
        };
        let scan =
            VecfusionScanExec::row_addresses(&ctx.state(), dataset.clone(), Some(vec![1]), vec![])
                .await
                .unwrap();
        let plan = Arc::new(CreateVectorIndexExec::new(spec, dataset, 8, Arc::new(scan)));
        // Planned, not run: the requested accelerator only, no device opened.
        let before = displayable(plan.as_ref()).one_line().to_string();
        assert!(
            before.contains("accelerator=auto partitions=4") && !before.contains("(cpu)"),
            "{before}"
        );

        let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        let row = &batches[0];
        let column = |name: &str| row.column(row.schema().index_of(name).unwrap()).clone();
        assert_eq!(
            column("rows_indexed").as_primitive::<UInt64Type>().value(0),
            2000
        );
        assert_eq!(column("version").as_primitive::<UInt64Type>().value(0), 3);
        assert_eq!(column("accelerator").as_string::<i32>().value(0), "cpu");
        let after = displayable(plan.as_ref()).one_line().to_string();
        assert!(after.contains("accelerator=auto (cpu)"), "{after}");
        let metrics = plan.metrics().unwrap();
        assert_eq!(
            metrics.sum_by_name("rows_indexed").unwrap().as_usize(),
            2000
        );
        // The new version records the index.
        let version = latest(dir.path()).await;
        assert_eq!(
            version.manifest().index("i").unwrap().kind,
            IndexKind::IvfSq
        );
    }
}
