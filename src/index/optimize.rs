//! `OPTIMIZE VECTOR INDEX` as the building blocks (`super::blocks`): the fragments the index
//! does not cover are encoded with the existing model as one new segment (cost proportional
//! to the new rows), `merge_segments = n` merges the smallest segments into one by copying
//! their codes, and `retrain = true` rebuilds the index — a new model over the current rows.
//! One commit swaps the segments; a concurrent change to the same index makes it fail
//! cleanly (the index's previous version stays).

use std::sync::Arc;
use std::time::Instant;

use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, Time};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};

use super::blocks::{self, BuildSpec, Segment};
use super::create::{BuildMetrics, build_index};
use super::options::{OptimizeOptions, ResolvedOptions};
use crate::dataset::{Dataset, IndexMeta, Operation, SegmentMeta, SegmentSwap};
use crate::index_format::IndexModel;
use crate::kmeans::{Accelerator, AcceleratorRequest, Backend, backend_for};
use crate::progress::{ProgressHook, report};
use object_store::ObjectStoreExt;

/// What to optimize.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OptimizeSpec {
    /// The index as the planned version records it.
    pub index: IndexMeta,
    pub options: OptimizeOptions,
    /// Fragments with live rows that no segment covers (what a plain OPTIMIZE encodes).
    pub new_fragments: Vec<u32>,
}

impl OptimizeSpec {
    /// The options the index was built with (`params` in the manifest).
    pub fn built_with(&self) -> Result<ResolvedOptions> {
        serde_json::from_value(self.index.params.clone()).or_else(|e| {
            plan_err!(
                "index '{}' records build options this vecfusion cannot read ({e}); rebuild it \
                 with CREATE VECTOR INDEX ... WITH (replace = true)",
                self.index.name
            )
        })
    }

    /// The accelerator asked for: the statement's, else the one the index was built with.
    pub fn accelerator(&self) -> Result<AcceleratorRequest> {
        Ok(match self.options.accelerator {
            Some(a) => a,
            None => self.built_with()?.options.accelerator,
        })
    }

    fn memory_budget_bytes(&self) -> Result<usize> {
        let mb = match self.options.memory_budget_mb {
            Some(mb) => mb,
            None => self.built_with()?.options.memory_budget_mb,
        };
        Ok(mb.saturating_mul(1 << 20))
    }

    /// The cap on GPU memory: the statement's, else the one the index was built with.
    fn gpu_memory_budget_bytes(&self) -> Result<Option<usize>> {
        let mb = match self.options.gpu_memory_budget_mb {
            Some(mb) => Some(mb),
            None => self.built_with()?.options.gpu_memory_budget_mb,
        };
        Ok(mb.map(|mb| mb.saturating_mul(1 << 20)))
    }
}

/// Seconds per phase.
#[derive(Debug, Clone, Default)]
pub struct OptimizeSeconds {
    pub sample: f64,
    pub train: f64,
    pub encode: f64,
    pub merge: f64,
    pub write: f64,
    pub total: f64,
}

/// The outcome, one row of `OPTIMIZE VECTOR INDEX`'s result.
#[derive(Debug, Clone)]
pub struct OptimizeReport {
    pub name: String,
    pub rows_encoded: u64,
    pub segments_before: usize,
    pub segments_after: usize,
    /// Mean squared distance of the newly encoded rows to their centroid over that of the
    /// rows the model was built with: well above 1, the data drifted and `retrain = true`
    /// pays off. `None` when no rows were encoded with the old model.
    pub drift: Option<f64>,
    /// The version that records the change (the version read, when nothing changed).
    pub version: u64,
    pub accelerator: String,
    pub seconds: OptimizeSeconds,
    /// What happened, in words.
    pub message: String,
}

/// Metrics shown by `EXPLAIN ANALYZE OPTIMIZE VECTOR INDEX` (a retrain shows the build's).
#[derive(Debug, Clone)]
pub struct OptimizeMetrics {
    encode: Time,
    merge: Time,
    write: Time,
    rows_encoded: Count,
    segments_merged: Count,
}

impl OptimizeMetrics {
    pub fn new(set: &ExecutionPlanMetricsSet) -> Self {
        let time = |name: &'static str| MetricBuilder::new(set).subset_time(name, 0);
        let count = |name: &'static str| MetricBuilder::new(set).counter(name, 0);
        Self {
            encode: time("time_encode"),
            merge: time("time_merge"),
            write: time("time_write"),
            rows_encoded: count("rows_encoded"),
            segments_merged: count("segments_merged"),
        }
    }
}

fn add_seconds(t: &Time, seconds: f64) {
    t.add_duration(std::time::Duration::from_secs_f64(seconds));
}

/// Runs `spec` on `dataset` (the version it was planned against). `input` scans the vector
/// column with row addresses: of the new fragments, or of every fragment for a retrain; it
/// is `None` when there is nothing to encode.
#[allow(clippy::too_many_arguments)]
pub async fn optimize_index(
    dataset: Dataset,
    dim: usize,
    spec: &OptimizeSpec,
    accelerator: Accelerator,
    input: Option<Arc<dyn ExecutionPlan>>,
    context: Arc<TaskContext>,
    hook: Option<&ProgressHook>,
    metrics: &ExecutionPlanMetricsSet,
) -> Result<OptimizeReport> {
    let index = &spec.index;
    let segments_before = index.segments.len();
    if spec.options.retrain {
        let Some(input) = input else {
            return plan_err!("index '{}' has no rows to retrain on", index.name);
        };
        let mut options = spec.built_with()?.options;
        options.replace = true;
        options.accelerator = spec.accelerator()?;
        if let Some(mb) = spec.options.memory_budget_mb {
            options.memory_budget_mb = mb;
        }
        if let Some(mb) = spec.options.gpu_memory_budget_mb {
            options.gpu_memory_budget_mb = Some(mb);
        }
        let build = BuildSpec {
            name: index.name.clone(),
            column: index.column.clone(),
            options,
        };
        let metrics = BuildMetrics::new(metrics);
        let r = build_index(
            dataset,
            dim,
            &build,
            accelerator,
            input,
            context,
            hook,
            &metrics,
        )
        .await?;
        return Ok(OptimizeReport {
            name: r.name,
            rows_encoded: r.rows_indexed,
            segments_before,
            segments_after: 1,
            drift: None,
            version: r.version,
            accelerator: r.accelerator,
            seconds: OptimizeSeconds {
                sample: r.seconds.sample,
                train: r.seconds.train_ivf + r.seconds.train_quantizer,
                encode: r.seconds.encode,
                merge: 0.0,
                write: r.seconds.write,
                total: r.seconds.total,
            },
            message: format!(
                "retrained index '{}': a new model over {} rows, one segment",
                index.name, r.rows_indexed
            ),
        });
    }

    let started = Instant::now();
    let metrics = OptimizeMetrics::new(metrics);
    let backend: Arc<dyn Backend> =
        Arc::from(backend_for(&accelerator, spec.gpu_memory_budget_bytes()?));
    let location = dataset.location();
    let model = Arc::new(IndexModel::open(location, &index.model.file).await?);
    let mut seconds = OptimizeSeconds::default();

    // Encode the new fragments with the existing model.
    let mut new: Option<Segment> = None;
    if let (Some(input), false) = (input, spec.new_fragments.is_empty()) {
        let expected = spec
            .new_fragments
            .iter()
            .filter_map(|id| dataset.fragment(*id))
            .map(|f| f.live_rows())
            .sum();
        let segment = blocks::encode(
            &model,
            spec.new_fragments.clone(),
            execute_stream(input, context)?,
            backend.clone(),
            spec.memory_budget_bytes()?,
            location,
            expected,
            hook,
        )
        .await?;
        seconds.encode = segment.seconds_encode;
        seconds.write = segment.seconds_write;
        add_seconds(&metrics.encode, segment.seconds_encode);
        add_seconds(&metrics.write, segment.seconds_write);
        metrics.rows_encoded.add(segment.meta.rows as usize);
        new = Some(segment);
    }
    let rows_encoded = new.as_ref().map_or(0, |s| s.meta.rows);
    let baseline = index.details["mean_sq_distance"]
        .as_f64()
        .filter(|b| *b > 0.0);
    let drift = match (&new, baseline) {
        (Some(s), Some(b)) if s.meta.rows > 0 => Some(s.mean_sq_distance() / b),
        _ => None,
    };

    // Merge the smallest segments, the new one among them.
    let mut removed: Vec<String> = vec![];
    let mut added: Vec<SegmentMeta> = new.iter().map(|s| s.meta.clone()).collect();
    if let Some(n) = spec.options.merge_segments {
        let mut candidates: Vec<SegmentMeta> =
            index.segments.iter().chain(&added).cloned().collect();
        candidates.sort_by_key(|s| (s.rows, s.file.clone()));
        candidates.truncate(n);
        if candidates.len() >= 2 {
            let t = Instant::now();
            let merged = blocks::merge(&model, &candidates, location, hook).await?;
            seconds.merge = t.elapsed().as_secs_f64();
            add_seconds(&metrics.merge, seconds.merge);
            metrics.segments_merged.add(candidates.len());
            for c in &candidates {
                if added.iter().any(|a| a.file == c.file) {
                    // The new segment was merged before it was ever committed.
                    let _ = location.store.delete(&location.path(&c.file)).await;
                    added.retain(|a| a.file != c.file);
                } else {
                    removed.push(c.file.clone());
                }
            }
            added.push(merged.meta);
        }
    }

    let segments_after = segments_before - removed.len() + added.len();
    if removed.is_empty() && added.is_empty() {
        seconds.total = started.elapsed().as_secs_f64();
        return Ok(OptimizeReport {
            name: index.name.clone(),
            rows_encoded: 0,
            segments_before,
            segments_after,
            drift: None,
            version: dataset.version(),
            accelerator: backend.name().to_string(),
            seconds,
            message: format!(
                "nothing to do: index '{}' covers every fragment with rows{}",
                index.name,
                if spec.options.merge_segments.is_some() {
                    " and has a single segment"
                } else {
                    ""
                }
            ),
        });
    }
    let committed = dataset
        .commit(&Operation::OptimizeIndex(SegmentSwap {
            index: index.name.clone(),
            model_id: index.model.id.clone(),
            removed: removed.clone(),
            added,
        }))
        .await?;
    report(hook, "commit", 1, 1, "versions");
    seconds.total = started.elapsed().as_secs_f64();
    Ok(OptimizeReport {
        name: index.name.clone(),
        rows_encoded,
        segments_before,
        segments_after,
        drift,
        version: committed.version(),
        accelerator: backend.name().to_string(),
        seconds,
        message: format!(
            "encoded {rows_encoded} new rows of {} fragments{}",
            spec.new_fragments.len(),
            if removed.is_empty() && spec.options.merge_segments.is_none() {
                String::new()
            } else {
                format!("; segments {segments_before} → {segments_after}")
            }
        ),
    })
}
