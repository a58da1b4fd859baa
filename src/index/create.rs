//! `CREATE VECTOR INDEX` as the building blocks (`super::blocks`) over DataFusion partitions:
//! every partition of the scan samples its rows concurrently, the samples merge, the model is
//! trained once, every row is encoded into one segment, and one commit records the index.

use std::sync::Arc;
use std::time::Instant;

use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, Time};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use serde_json::json;
use tokio::task::JoinSet;

use super::blocks::{self, BuildPlan, BuildSpec, Model, Sample, Segment};
use crate::dataset::Dataset;
use crate::kmeans::{Accelerator, Backend, DeviceMemory, backend_for};
use crate::progress::{ProgressHook, report};
use crate::quantizer::IndexKind;

/// Seconds spent per phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseSeconds {
    pub sample: f64,
    pub train_ivf: f64,
    pub train_quantizer: f64,
    pub encode: f64,
    pub write: f64,
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
    /// The device the build ran on (`cpu`, `cuda:0`, ...).
    pub accelerator: String,
    pub seconds: PhaseSeconds,
    /// The dataset version that records the index.
    pub version: u64,
    pub file_bytes: u64,
    pub spilled_runs: usize,
}

/// Per-phase metrics shown by `EXPLAIN ANALYZE`.
#[derive(Debug, Clone)]
pub struct BuildMetrics {
    sample: Time,
    train_ivf: Time,
    train_quantizer: Time,
    encode: Time,
    write: Time,
    rows_indexed: Count,
    rows_skipped: Count,
    spilled_runs: Count,
    /// GPU builds: the device memory planned for, and the rows copied to the device.
    device_memory_budget_bytes: Count,
    device_bytes_uploaded: Count,
}

impl BuildMetrics {
    pub fn new(set: &ExecutionPlanMetricsSet) -> Self {
        let time = |name: &'static str| MetricBuilder::new(set).subset_time(name, 0);
        let count = |name: &'static str| MetricBuilder::new(set).counter(name, 0);
        Self {
            sample: time("time_sample"),
            train_ivf: time("time_train_ivf"),
            train_quantizer: time("time_train_quantizer"),
            encode: time("time_encode"),
            write: time("time_write"),
            rows_indexed: count("rows_indexed"),
            rows_skipped: count("rows_skipped"),
            spilled_runs: count("spilled_runs"),
            device_memory_budget_bytes: count("device_memory_budget_bytes"),
            device_bytes_uploaded: count("device_bytes_uploaded"),
        }
    }

    fn record(
        &self,
        s: &PhaseSeconds,
        segment: &Segment,
        skipped: u64,
        device: Option<DeviceMemory>,
    ) {
        let add = |t: &Time, secs: f64| t.add_duration(std::time::Duration::from_secs_f64(secs));
        add(&self.sample, s.sample);
        add(&self.train_ivf, s.train_ivf);
        add(&self.train_quantizer, s.train_quantizer);
        add(&self.encode, s.encode);
        add(&self.write, s.write);
        self.rows_indexed.add(segment.meta.rows as usize);
        self.rows_skipped.add(skipped as usize);
        self.spilled_runs.add(segment.spilled_runs);
        if let Some(d) = device {
            self.device_memory_budget_bytes.add(d.budget_bytes as usize);
            self.device_bytes_uploaded.add(d.uploaded_bytes as usize);
        }
    }
}

/// Block 1 over every DataFusion partition of `input` at once, merged.
async fn sample_partitions(
    plan: &BuildPlan,
    input: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
    hook: Option<&ProgressHook>,
) -> Result<Sample> {
    let mut tasks = JoinSet::new();
    for p in 0..input.properties().partitioning.partition_count() {
        let stream = input.execute(p, context.clone())?;
        let (plan, hook) = (plan.clone(), hook.cloned());
        tasks.spawn(async move { blocks::sample(&plan, stream, hook.as_ref()).await });
    }
    let mut merged = Sample::empty(plan.dim);
    // Dropping the set (an error here, or the statement cancelled) aborts the other tasks.
    while let Some(part) = tasks.join_next().await {
        merged.merge(part.map_err(|e| exec_datafusion_err!("index sample task failed: {e}"))??);
    }
    Ok(merged)
}

/// Builds the index `spec` describes over the rows of `input` (a scan of every fragment of
/// `dataset`: the vector column and row addresses) and commits it on top of `dataset`.
#[allow(clippy::too_many_arguments)]
pub async fn build_index(
    dataset: Dataset,
    dim: usize,
    spec: &BuildSpec,
    accelerator: Accelerator,
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    hook: Option<&ProgressHook>,
    metrics: &BuildMetrics,
) -> Result<BuildReport> {
    let started = Instant::now();
    let gpu_budget = spec
        .options
        .gpu_memory_budget_mb
        .map(|mb| mb.saturating_mul(1 << 20));
    let backend: Arc<dyn Backend> = Arc::from(backend_for(&accelerator, gpu_budget));
    let plan = BuildPlan {
        spec: spec.clone(),
        dim,
        rows: dataset.count_rows(),
    };
    let t = Instant::now();
    let sample = sample_partitions(&plan, &input, &context, hook).await?;
    let (usable, skipped) = (sample.usable_rows(), sample.skipped_rows());
    let sample_seconds = t.elapsed().as_secs_f64();

    let model: Model =
        blocks::train(&plan, sample, backend.clone(), dataset.location(), hook).await?;

    let fragments = dataset.fragments().iter().map(|f| f.id).collect();
    let stream = execute_stream(input, context)?;
    let segment = blocks::encode(
        &model.model,
        fragments,
        stream,
        backend.clone(),
        spec.options.memory_budget_mb.saturating_mul(1 << 20),
        dataset.location(),
        usable,
        hook,
    )
    .await?;

    let seconds = PhaseSeconds {
        sample: sample_seconds,
        train_ivf: model.seconds_train_ivf,
        train_quantizer: model.seconds_train_quantizer,
        encode: segment.seconds_encode,
        write: segment.seconds_write,
        total: started.elapsed().as_secs_f64(),
    };
    let device = backend.device_memory();
    metrics.record(&seconds, &segment, skipped, device);
    let details = json!({
        "accelerator": backend.name(), "rows_skipped": skipped, "file_bytes": segment.bytes,
        "device_memory_budget_bytes": device.map(|d| d.budget_bytes),
        "device_bytes_uploaded": device.map(|d| d.uploaded_bytes),
        "mean_sq_distance": segment.mean_sq_distance(),
        "seconds": {
            "sample": seconds.sample, "train_ivf": seconds.train_ivf,
            "train_quantizer": seconds.train_quantizer, "encode": seconds.encode,
            "write": seconds.write, "total": seconds.total,
        },
    });
    let committed = blocks::commit(
        &dataset,
        &plan,
        &model.summary(),
        std::slice::from_ref(&segment),
        details,
    )
    .await?;
    report(hook, "commit", 1, 1, "versions");
    Ok(BuildReport {
        name: spec.name.clone(),
        kind: spec.options.kind,
        rows_indexed: segment.meta.rows,
        rows_skipped: skipped,
        partitions: model.model.num_partitions,
        accelerator: backend.name().to_string(),
        seconds,
        version: committed.version(),
        file_bytes: segment.bytes,
        spilled_runs: segment.spilled_runs,
    })
}
