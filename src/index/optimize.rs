//! `OPTIMIZE VECTOR INDEX` as the building blocks (`super::blocks`): the fragments the index
//! does not cover are encoded with the existing model by the build's encode stage
//! (`stages::plan_encode`, a task per group of fragments) and kept as one new segment (cost
//! proportional to the new rows), `merge_segments = n` merges the smallest segments into one
//! by copying their codes, and `retrain = true` runs the whole build again
//! (`stages::plan_build`) — a new model over the current rows.
//! One commit swaps the segments; a concurrent change to the same index makes it fail
//! cleanly (the index's previous version stays).

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, UInt64Type};
use datafusion::common::{internal_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, Time};
use datafusion::physical_plan::{ExecutionPlan, collect};
use object_store::ObjectStoreExt;

use super::blocks::{self, BuildSpec, ModelSummary, Segment};
use super::options::{OptimizeOptions, ResolvedOptions};
use super::stages::encode_exec::ENCODED_COLUMN;
use super::stages::rows::{Encoded, from_json_batches};
use crate::dataset::{Dataset, DatasetLocation, IndexMeta, Operation, SegmentMeta, SegmentSwap};
use crate::index_format::IndexModel;
use crate::kmeans::AcceleratorRequest;
use crate::progress::{ProgressHook, report};

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
    /// The build a retrain runs, or whose encode stage encodes new fragments: the options
    /// the index was built with, replacing it, with this statement's accelerator and memory
    /// budgets.
    pub fn build_spec(&self) -> Result<BuildSpec> {
        let mut options = self.built_with()?.options;
        options.replace = true;
        options.accelerator = self.accelerator()?;
        if let Some(mb) = self.options.memory_budget_mb {
            options.memory_budget_mb = mb;
        }
        if let Some(mb) = self.options.gpu_memory_budget_mb {
            options.gpu_memory_budget_mb = Some(mb);
        }
        Ok(BuildSpec {
            name: self.index.name.clone(),
            column: self.index.column.clone(),
            options,
        })
    }

    /// The index's model, as the encode stage takes it.
    pub fn model(&self) -> Result<ModelSummary> {
        Ok(ModelSummary {
            meta: self.index.model.clone(),
            resolved: self.built_with()?,
            ivf_objective: self.index.details["ivf_objective"].as_f64(),
            seconds_train_ivf: 0.0,
            seconds_train_quantizer: 0.0,
        })
    }

    pub fn accelerator(&self) -> Result<AcceleratorRequest> {
        Ok(match self.options.accelerator {
            Some(a) => a,
            None => self.built_with()?.options.accelerator,
        })
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

/// Runs `spec` on `dataset` (the version it was planned against). `input` is the work done
/// before: for a retrain, the whole build (`stages::plan_build`, which commits the new
/// index); otherwise the encode stage over the new fragments (`stages::plan_encode`, one
/// segment per group of fragments), or `None` when there is nothing to encode.
pub async fn optimize_index(
    dataset: Dataset,
    spec: &OptimizeSpec,
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
        let built = collect(input, context).await?;
        return retrained(&dataset, spec, &built).await;
    }

    let started = Instant::now();
    let metrics = OptimizeMetrics::new(metrics);
    let location = dataset.location();
    let model = Arc::new(IndexModel::open(location, &index.model.file).await?);
    let mut seconds = OptimizeSeconds::default();
    let mut accelerator = spec.accelerator()?.to_string();

    // The new fragments, encoded with the existing model by the encode stage, as one segment.
    let mut new: Option<Segment> = None;
    if let Some(input) = input {
        let encoded: Vec<Encoded> =
            from_json_batches(ENCODED_COLUMN, &collect(input, context).await?)?;
        if let Some(e) = encoded.first() {
            accelerator = e.accelerator.clone();
        }
        let segment = one_segment(&model, encoded, &spec.new_fragments, location, hook).await?;
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
            accelerator: accelerator.clone(),
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
        accelerator,
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

/// The encode tasks' segments as the one segment of the new fragments: the segments with
/// rows merged into one when there are several (codes copied), the others' files removed.
/// It covers every new fragment, with rows or not.
async fn one_segment(
    model: &IndexModel,
    encoded: Vec<Encoded>,
    new_fragments: &[u32],
    location: &DatasetLocation,
    hook: Option<&ProgressHook>,
) -> Result<Segment> {
    let mut parts: Vec<Segment> = encoded.into_iter().map(|e| e.segment).collect();
    // Keep the ones with rows, or one empty one when no new row had a usable vector.
    parts.sort_by_key(|s| std::cmp::Reverse(s.meta.rows));
    let keep = parts.iter().filter(|s| s.meta.rows > 0).count().max(1);
    let Some(first) = parts.first() else {
        return plan_err!("the encode stage yielded no segment");
    };
    let (encode, write) = Segment::slowest(&parts);
    let sum_sq_distance = parts.iter().map(|s| s.sum_sq_distance).sum();
    let spilled_runs = parts.iter().map(|s| s.spilled_runs).sum();
    let mut segment = if keep == 1 {
        first.clone()
    } else {
        let metas: Vec<SegmentMeta> = parts[..keep].iter().map(|s| s.meta.clone()).collect();
        let merged = blocks::merge(model, &metas, location, hook).await?;
        Segment {
            seconds_write: write + merged.seconds_write,
            ..merged
        }
    };
    for part in &parts[if keep == 1 { 1 } else { 0 }..] {
        // Written by this statement and referenced by no version.
        let _ = location.store.delete(&location.path(&part.meta.file)).await;
    }
    segment.meta.fragments = new_fragments.to_vec();
    segment.meta.fragments.sort_unstable();
    segment.sum_sq_distance = sum_sq_distance;
    segment.spilled_runs = spilled_runs;
    segment.seconds_encode = encode;
    if keep == 1 {
        segment.seconds_write = write;
    }
    Ok(segment)
}

/// The report of a retrain from the result row of the build it ran.
async fn retrained(
    dataset: &Dataset,
    spec: &OptimizeSpec,
    built: &[RecordBatch],
) -> Result<OptimizeReport> {
    let Some(row) = built.iter().find(|b| b.num_rows() == 1) else {
        return plan_err!("the retrain of index '{}' returned no row", spec.index.name);
    };
    let column = |name: &str| {
        row.column_by_name(name)
            .ok_or_else(|| internal_datafusion_err!("a build's result has no column {name}"))
    };
    let u64_of =
        |name: &str| -> Result<u64> { Ok(column(name)?.as_primitive::<UInt64Type>().value(0)) };
    let f64_of =
        |name: &str| -> Result<f64> { Ok(column(name)?.as_primitive::<Float64Type>().value(0)) };
    let version = u64_of("version")?;
    let committed = dataset.checkout_version(version).await?;
    let segments_after = committed
        .manifest()
        .index(&spec.index.name)
        .map_or(0, |i| i.segments.len());
    let rows = u64_of("rows_indexed")?;
    Ok(OptimizeReport {
        name: spec.index.name.clone(),
        rows_encoded: rows,
        segments_before: spec.index.segments.len(),
        segments_after,
        drift: None,
        version,
        accelerator: column("accelerator")?
            .as_string::<i32>()
            .value(0)
            .to_string(),
        seconds: OptimizeSeconds {
            sample: f64_of("seconds_sample")?,
            train: f64_of("seconds_train_ivf")? + f64_of("seconds_train_quantizer")?,
            encode: f64_of("seconds_encode")?,
            merge: 0.0,
            write: f64_of("seconds_write")?,
            total: f64_of("seconds_total")?,
        },
        message: format!(
            "retrained index '{}': a new model over {rows} rows, {segments_after} segment(s)",
            spec.index.name
        ),
    })
}
