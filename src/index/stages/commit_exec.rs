//! `IndexCommitExec`: the last stage of an index build, one task. It gathers every encode
//! task's segment, checks they were all encoded with one model, gives the fragments no task
//! read a row of (every row deleted, or no usable vector) to the first segment, records the
//! model and the segments in one new version (`blocks::commit`), and yields the statement's
//! one result row.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream, collect,
};
use object_store::ObjectStoreExt;
use serde_json::json;

use super::BuildTarget;
use super::encode_exec::ENCODED_COLUMN;
use super::rows::{Encoded, from_json_batches};
use crate::index::blocks::{self, Segment};
use crate::plan_properties::{single_final, whole_inputs};
use crate::progress::{ProgressHook, report};
use crate::quantizer::IndexKind;

/// Seconds per phase: of a stage's slowest partition.
#[derive(Debug, Clone, Default)]
pub struct PhaseSeconds {
    pub sample: f64,
    pub train_ivf: f64,
    pub train_quantizer: f64,
    pub encode: f64,
    pub write: f64,
    /// The stage plan's critical path: the phases and the commit, summed.
    pub total: f64,
}

/// The outcome, one row of `CREATE VECTOR INDEX`'s result.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub name: String,
    pub kind: IndexKind,
    pub rows_indexed: u64,
    pub rows_skipped: u64,
    pub partitions: usize,
    /// The device training ran on (`cpu`, `cuda:0`, ...).
    pub accelerator: String,
    pub seconds: PhaseSeconds,
    /// The dataset version that records the index.
    pub version: u64,
}

/// Columns of the one-row result of `CREATE VECTOR INDEX`.
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
pub struct IndexCommitExec {
    target: BuildTarget,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl IndexCommitExec {
    /// Commits the segments `input` (the encode stage, merged) describes.
    pub fn new(target: BuildTarget, input: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            target,
            input,
            properties: single_final(result_schema()),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn target(&self) -> &BuildTarget {
        &self.target
    }
}

impl DisplayAs for IndexCommitExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let (spec, ds) = (&self.target.spec, &self.target.dataset);
        write!(
            f,
            "IndexCommitExec: name={} kind={} column={} metric={} dataset={} version={}",
            spec.name,
            spec.options.kind.name(),
            spec.column,
            spec.options.metric,
            ds.uri(),
            ds.version()
        )
    }
}

/// The segments of one build, checked, with every fragment of the version covered once.
/// Segments without rows (their fragments had no usable vector) are left out, their files
/// removed, and their fragments given to the first segment kept.
async fn cover_every_fragment(target: &BuildTarget, encoded: Vec<Encoded>) -> Result<Vec<Encoded>> {
    let name = &target.spec.name;
    let Some(first) = encoded.first() else {
        return exec_err!("the encode stage of index '{name}' yielded no segment");
    };
    let model_id = first.trained.model.meta.id.clone();
    if let Some(other) = encoded.iter().find(|e| e.trained.model.meta.id != model_id) {
        return exec_err!(
            "the encode tasks of index '{name}' used two models ({model_id} and {}): a task \
             was retried after training ran again; run the statement again",
            other.trained.model.meta.id
        );
    }
    let (mut kept, empty): (Vec<Encoded>, Vec<Encoded>) =
        encoded.into_iter().partition(|e| e.segment.meta.rows > 0);
    if kept.is_empty() {
        return exec_err!("index '{name}' has no row with a usable vector");
    }
    let location = target.dataset.location();
    for e in empty {
        // No version references it: removing it only saves `vecfusion_cleanup` the work.
        let _ = location
            .store
            .delete(&location.path(&e.segment.meta.file))
            .await;
    }
    let covered: BTreeSet<u32> = kept
        .iter()
        .flat_map(|e| e.segment.meta.fragments.iter().copied())
        .collect();
    let rest = target
        .dataset
        .fragments()
        .iter()
        .map(|f| f.id)
        .filter(|id| !covered.contains(id));
    let fragments = &mut kept[0].segment.meta.fragments;
    fragments.extend(rest);
    fragments.sort_unstable();
    Ok(kept)
}

impl ExecutionPlan for IndexCommitExec {
    fn name(&self) -> &str {
        "IndexCommitExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        whole_inputs(1)
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
            return internal_err!("IndexCommitExec takes one input");
        };
        Ok(Arc::new(Self::new(self.target.clone(), input.clone())))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (input, target) = (self.input.clone(), self.target.clone());
        let time_commit = MetricBuilder::new(&self.metrics).subset_time("time_commit", 0);
        let segments_written = MetricBuilder::new(&self.metrics).counter("segments", 0);
        let hook = context.session_config().get_extension::<ProgressHook>();
        let row = async move {
            let batches = collect(input, context).await?;
            let encoded: Vec<Encoded> = from_json_batches(ENCODED_COLUMN, &batches)?;
            let started = Instant::now();
            let encoded = cover_every_fragment(&target, encoded).await?;
            let trained = encoded[0].trained.clone();
            let segments: Vec<Segment> = encoded.into_iter().map(|e| e.segment).collect();
            let (encode, write) = Segment::slowest(&segments);
            let model = &trained.model;
            let rows_indexed: u64 = segments.iter().map(|s| s.meta.rows).sum();
            let file_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
            let sum_sq: f64 = segments.iter().map(|s| s.sum_sq_distance).sum();
            // The stage plan's critical path: per stage its slowest task (in one process,
            // the wall time; on a cluster, what it would take with a core per task).
            let mut seconds = PhaseSeconds {
                sample: trained.seconds_sample,
                train_ivf: model.seconds_train_ivf,
                train_quantizer: model.seconds_train_quantizer,
                encode,
                write,
                total: 0.0,
            };
            seconds.total = seconds.sample
                + seconds.train_ivf
                + seconds.train_quantizer
                + seconds.encode
                + seconds.write;
            let details = json!({
                "accelerator": trained.accelerator,
                "rows_skipped": trained.rows_skipped,
                "file_bytes": file_bytes,
                "segments": segments.len(),
                "device_memory_budget_bytes": trained.device_memory_budget_bytes,
                "device_bytes_uploaded": trained.device_bytes_uploaded,
                "mean_sq_distance": sum_sq / rows_indexed.max(1) as f64,
                "seconds": {
                    "sample": seconds.sample, "train_ivf": seconds.train_ivf,
                    "train_quantizer": seconds.train_quantizer, "encode": seconds.encode,
                    "write": seconds.write, "total": seconds.total,
                },
            });
            let plan = target.plan();
            let committed =
                blocks::commit(&target.dataset, &plan, model, &segments, details).await?;
            report(hook.as_deref(), "commit", 1, 1, "versions");
            time_commit.add_elapsed(started);
            segments_written.add(segments.len());
            seconds.total += started.elapsed().as_secs_f64();
            result_batch(&BuildReport {
                name: target.spec.name.clone(),
                kind: target.spec.options.kind,
                rows_indexed,
                rows_skipped: trained.rows_skipped,
                partitions: model.resolved.num_partitions,
                accelerator: trained.accelerator.clone(),
                seconds,
                version: committed.version(),
            })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_schema(),
            futures::stream::once(row),
        )))
    }
}
