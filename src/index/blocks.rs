//! The building blocks of an index, each a function of the rows of some fragments of one
//! dataset version and the build's options, so that a build can be cut into pieces that run
//! in parallel, on other machines, or later (`OPTIMIZE VECTOR INDEX`):
//!
//! ```text
//! sample(fragments) → Sample          validate rows (skip NULL / non-finite / zero-for-cosine),
//!                                     keep those whose hash(seed, row address) is under the
//!                                     plan's threshold; samples of disjoint fragment sets
//!                                     merge by union
//! train(Sample) → Model               IVF centroids, then the quantizer, on the accelerator;
//!                                     writes the model file
//! encode(fragments, model) → Segment  assign + encode in chunks on the accelerator; partition
//!                                     lists (spilling over the memory budget) written as one
//!                                     segment file; nothing committed
//! merge(segments) → Segment           partition lists of several segments as one, codes reused
//! remap(segment, rewritten) → Segment rows of compacted fragments at their new addresses
//! commit(Model, Segments)             one put-if-absent manifest that records the index
//! ```
//!
//! The sample is the only large resident: nothing holds all vectors. It depends only on the
//! seed, the row addresses and the number of rows the whole build covers ([`BuildPlan`]) —
//! not on the order rows arrive in or how fragments were split — and segments list rows by
//! address, so for a given seed the index is the same whatever the number of DataFusion
//! partitions or segments. A failure or a kill before the commit leaves only unreferenced
//! files (removed by `vecfusion_cleanup`), and the previous version intact.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::datatypes::{Float32Type, UInt64Type};
use datafusion::common::{exec_datafusion_err, internal_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use serde_json::json;
use vecfusion_kernels::distance::{all_finite, l2_squared, norm_squared, scale};

use super::inverted_lists::{InvertedLists, by_address};
use super::options::{IndexOptions, IvfKMeans, ResolvedOptions};
use crate::dataset::{
    Dataset, DatasetLocation, IndexMeta, ModelMeta, Operation, Rewritten, SegmentMeta, files,
    split_row_address,
};
use crate::index_format::{IndexModel, SegmentFile, SegmentWriter};
use crate::kmeans::{Backend, Cancel, IterationInfo, KMeansParams};
use crate::metric::Metric;
use crate::progress::{ProgressHook, report};
use crate::quantizer::{QuantizerParams, TrainingData, TrainingOptions, training_rows};

/// Rows assigned and encoded per accelerator call in the encode pass.
const ENCODE_CHUNK_ROWS: usize = 65_536;

/// What to build: an index `name` on `column` with `options`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuildSpec {
    pub name: String,
    pub column: String,
    pub options: IndexOptions,
}

/// What every block of one build agrees on.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub spec: BuildSpec,
    pub dim: usize,
    /// Live rows of all the fragments the build samples. It fixes the sampling threshold, so
    /// that samples of parts merge into exactly the sample of the whole.
    pub rows: u64,
}

impl BuildPlan {
    /// Sampling keys at or below this are kept: a share of the rows that gives the IVF (and
    /// PQ) training sets their size.
    fn threshold(&self) -> Result<u64> {
        let o = &self.spec.options;
        let planned = o.resolve(self.rows.max(1), self.dim)?;
        let wanted = planned
            .num_partitions
            .saturating_mul(o.sample_rate)
            .max(training_rows(o.kind)) as f64;
        Ok(if wanted >= self.rows as f64 {
            u64::MAX
        } else {
            (wanted / self.rows as f64 * u64::MAX as f64) as u64
        })
    }
}

/// SplitMix64 of the row address: a uniform, order-independent sampling key.
fn sample_key(seed: u64, address: u64) -> u64 {
    let mut z = address ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Appends the usable rows of a batch (vector column first, row address last) to `addrs` and
/// `vectors` (normalised for cosine). Returns how many rows were skipped: NULL, non-finite or
/// overflowing vectors, and zero vectors for cosine.
fn usable_rows(
    batch: &RecordBatch,
    dim: usize,
    metric: Metric,
    addrs: &mut Vec<u64>,
    vectors: &mut Vec<f32>,
) -> u64 {
    let list = batch.column(0).as_fixed_size_list();
    let values = list.values().as_primitive::<Float32Type>();
    let value_nulls = values.nulls();
    let raw = values.values();
    let addresses = batch
        .column(batch.num_columns() - 1)
        .as_primitive::<UInt64Type>();
    let mut skipped = 0;
    for row in 0..batch.num_rows() {
        if list.is_null(row) {
            skipped += 1;
            continue;
        }
        let start = list.value_offset(row) as usize;
        let v = &raw[start..start + dim];
        let has_null = value_nulls.is_some_and(|n| (start..start + dim).any(|i| n.is_null(i)));
        if has_null || !all_finite(v) {
            skipped += 1;
            continue;
        }
        // A finite row whose squared length overflows f32 (|x| beyond about 1.8e19) has no
        // distance f32 arithmetic can compute (inf − inf in the expanded L2 is NaN): it is
        // skipped like a non-finite one rather than poisoning a centroid.
        let norm2 = norm_squared(v);
        if !norm2.is_finite() {
            skipped += 1;
            continue;
        }
        if metric == Metric::Cosine {
            let norm = norm2.sqrt();
            if norm == 0.0 {
                skipped += 1; // a zero vector has no direction
                continue;
            }
            let start = vectors.len();
            vectors.extend_from_slice(v);
            scale(&mut vectors[start..], 1.0 / norm);
        } else {
            vectors.extend_from_slice(v);
        }
        addrs.push(addresses.value(row));
    }
    skipped
}

/// Runs `f` on a blocking thread (training and encoding are seconds of CPU or GPU work that
/// must not stall the async runtime).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| exec_datafusion_err!("index build task failed: {e}"))?
}

/// The sampled rows of some fragments, and what the pass learned about all their rows.
#[derive(Debug, Clone)]
pub struct Sample {
    dim: usize,
    /// `(sampling key, row address)` of each sampled row, aligned with `vectors`.
    keys: Vec<(u64, u64)>,
    vectors: Vec<f32>,
    usable: u64,
    skipped: u64,
}

impl Sample {
    pub fn empty(dim: usize) -> Self {
        Self {
            dim,
            keys: vec![],
            vectors: vec![],
            usable: 0,
            skipped: 0,
        }
    }

    /// Adds the sample of a disjoint set of fragments.
    pub fn merge(&mut self, other: Sample) {
        self.keys.extend(other.keys);
        self.vectors.extend(other.vectors);
        self.usable += other.usable;
        self.skipped += other.skipped;
    }

    /// Rows with a usable vector in the sampled fragments.
    pub fn usable_rows(&self) -> u64 {
        self.usable
    }

    /// Rows skipped (NULL, non-finite, or zero for cosine).
    pub fn skipped_rows(&self) -> u64 {
        self.skipped
    }

    /// Rows kept in the sample.
    pub fn sampled_rows(&self) -> usize {
        self.keys.len()
    }

    /// The sampled rows' addresses and vectors (`dim` values each), in the order gathered:
    /// what a sample task sends on.
    pub fn rows(&self) -> (impl Iterator<Item = u64> + '_, &[f32]) {
        (self.keys.iter().map(|(_, address)| *address), &self.vectors)
    }

    /// Adds one sampled row received from a sample task of the build `plan` describes.
    pub fn add_row(&mut self, plan: &BuildPlan, address: u64, vector: &[f32]) {
        let key = sample_key(plan.spec.options.seed, address);
        self.keys.push((key, address));
        self.vectors.extend_from_slice(vector);
    }

    /// Adds the tallies of a sample task: rows with a usable vector, rows skipped.
    pub fn add_tally(&mut self, usable: u64, skipped: u64) {
        self.usable += usable;
        self.skipped += skipped;
    }

    /// The sampled rows in their seeded random order (by key, then address): the same order
    /// whatever order they were gathered in.
    fn into_ordered(self) -> Vec<f32> {
        let dim = self.dim;
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_unstable_by_key(|i| self.keys[*i]);
        let mut rows = Vec::with_capacity(self.vectors.len());
        for i in order {
            rows.extend_from_slice(&self.vectors[i * dim..(i + 1) * dim]);
        }
        rows
    }
}

/// Block 1: validates and samples the rows `input` yields (`(vector, row address)` batches of
/// the fragments being sampled).
pub async fn sample(
    plan: &BuildPlan,
    mut input: SendableRecordBatchStream,
    hook: Option<&ProgressHook>,
) -> Result<Sample> {
    let (dim, metric, seed) = (plan.dim, plan.spec.options.metric, plan.spec.options.seed);
    let threshold = plan.threshold()?;
    let mut out = Sample::empty(dim);
    let (mut addrs, mut vectors) = (vec![], vec![]);
    while let Some(batch) = input.next().await {
        let batch = batch?;
        addrs.clear();
        vectors.clear();
        out.skipped += usable_rows(&batch, dim, metric, &mut addrs, &mut vectors);
        out.usable += addrs.len() as u64;
        for (i, a) in addrs.iter().enumerate() {
            let key = sample_key(seed, *a);
            if key <= threshold {
                out.keys.push((key, *a));
                out.vectors
                    .extend_from_slice(&vectors[i * dim..(i + 1) * dim]);
            }
        }
        report(hook, "sample", out.usable + out.skipped, plan.rows, "rows");
    }
    Ok(out)
}

/// A trained model, its file written (not yet committed).
#[derive(Debug, Clone)]
pub struct Model {
    /// The model file, relative to the dataset root.
    pub file: String,
    pub model: Arc<IndexModel>,
    pub resolved: ResolvedOptions,
    /// The IVF objective after the last iteration.
    pub ivf_objective: Option<f64>,
    pub seconds_train_ivf: f64,
    pub seconds_train_quantizer: f64,
}

impl Model {
    pub fn meta(&self) -> ModelMeta {
        ModelMeta {
            file: self.file.clone(),
            id: self.model.id.clone(),
        }
    }

    /// What the commit records of the model (the model itself is in its file).
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            meta: self.meta(),
            resolved: self.resolved.clone(),
            ivf_objective: self.ivf_objective,
            seconds_train_ivf: self.seconds_train_ivf,
            seconds_train_quantizer: self.seconds_train_quantizer,
        }
    }
}

/// A trained model as the commit needs it, and as it crosses from the training task to the
/// tasks after it: its file and id, the options it resolved, how training went.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelSummary {
    pub meta: ModelMeta,
    pub resolved: ResolvedOptions,
    pub ivf_objective: Option<f64>,
    pub seconds_train_ivf: f64,
    pub seconds_train_quantizer: f64,
}

/// A Lloyd-iteration callback reporting `phase` progress to `hook`, if any.
fn iterations(
    hook: Option<ProgressHook>,
    phase: &'static str,
    total: u64,
) -> impl FnMut(&IterationInfo) {
    move |i| {
        report(
            hook.as_ref(),
            phase,
            i.iteration as u64,
            total,
            "iterations",
        )
    }
}

/// Block 2: trains the IVF centroids and the quantizer on `sample` with `backend`, and writes
/// the model file.
pub async fn train(
    plan: &BuildPlan,
    sample: Sample,
    backend: Arc<dyn Backend>,
    location: &DatasetLocation,
    hook: Option<&ProgressHook>,
) -> Result<Model> {
    let options = plan.spec.options.clone();
    let dim = plan.dim;
    let resolved = options.resolve(sample.usable_rows(), dim)?;
    let k = resolved.num_partitions;
    let rows = sample.into_ordered();

    // Training runs on blocking threads; if this future is dropped (the statement was
    // cancelled), the guard's drop stops them at their next iteration.
    let (cancel, _cancel_on_drop) = Cancel::on_drop();
    let t = Instant::now();
    let n_ivf = k.saturating_mul(options.sample_rate).min(rows.len() / dim);
    let mut params = KMeansParams::new(k);
    params.cancel = cancel.clone();
    params.max_iterations = options.max_iterations;
    params.tolerance = options.tolerance;
    params.metric = options.metric;
    params.seed = options.seed;
    let (ivf, rows) = {
        let backend = backend.clone();
        let hook = hook.cloned();
        let ivf_kmeans = options.ivf_kmeans;
        let steps = match ivf_kmeans {
            IvfKMeans::Flat => options.max_iterations,
            // Its progress counts both levels.
            IvfKMeans::Hierarchical => options.max_iterations.saturating_mul(2),
        };
        blocking(move || {
            let mut progress = iterations(hook, "train_ivf", steps as u64);
            let (backend, sample) = (backend.as_ref(), &rows[..n_ivf * dim]);
            let model = match ivf_kmeans {
                IvfKMeans::Flat => {
                    crate::kmeans::train(backend, sample, dim, &params, &mut progress)
                }
                IvfKMeans::Hierarchical => {
                    crate::kmeans::train_hierarchical(backend, sample, dim, &params, &mut progress)
                }
            }?;
            Ok((model, rows))
        })
        .await?
    };
    let seconds_train_ivf = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let ivf_objective = ivf.objectives.last().copied();
    let centroids: ScalarBuffer<f32> = ivf.centroids.into();
    let qparams = QuantizerParams {
        kind: options.kind,
        dim,
        metric: options.metric,
        num_sub_vectors: resolved.num_sub_vectors,
        num_bits: options.num_bits,
    };
    let training = TrainingOptions {
        max_iterations: options.pq_max_iterations,
        tolerance: options.tolerance,
        seed: options.seed,
        cancel,
    };
    let quantizer = {
        let (backend, centroids, hook) = (backend.clone(), centroids.clone(), hook.cloned());
        let total = options.pq_max_iterations as u64;
        blocking(move || {
            let mut progress = iterations(hook, "train_quantizer", total);
            let data = TrainingData {
                rows: &rows,
                centroids: &centroids,
            };
            crate::quantizer::train(qparams, &data, backend.as_ref(), training, &mut progress)
        })
        .await?
    };
    let model = Arc::new(IndexModel {
        id: files::new_model_id(),
        num_partitions: k,
        centroids,
        quantizer,
    });
    let file = files::model_file(&model.id);
    model.write(location, &file).await?;
    Ok(Model {
        file,
        model,
        resolved,
        ivf_objective,
        seconds_train_ivf,
        seconds_train_quantizer: t.elapsed().as_secs_f64(),
    })
}

/// A segment file, written (not yet committed).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub meta: SegmentMeta,
    pub bytes: u64,
    /// `Σ ‖x − c‖²` over the rows encoded, each to its partition's centroid (the drift figure).
    pub sum_sq_distance: f64,
    pub spilled_runs: usize,
    pub seconds_encode: f64,
    pub seconds_write: f64,
}

impl Segment {
    /// Mean squared distance of the rows to their centroid (0 without rows).
    pub fn mean_sq_distance(&self) -> f64 {
        self.sum_sq_distance / self.meta.rows.max(1) as f64
    }

    /// The encode and write seconds of the slowest of `segments` (written by tasks that ran
    /// side by side).
    pub fn slowest(segments: &[Segment]) -> (f64, f64) {
        let max = |f: fn(&Segment) -> f64| segments.iter().map(f).fold(0.0, f64::max);
        (max(|s| s.seconds_encode), max(|s| s.seconds_write))
    }
}

/// Block 3: assigns and encodes every usable row `input` yields (the rows of `fragments`) with
/// `model`, and writes them as one segment file. Holds at most `memory_budget_bytes` of
/// partition lists in memory (the rest spills to temporary files).
#[allow(clippy::too_many_arguments)]
pub async fn encode(
    model: &Arc<IndexModel>,
    fragments: Vec<u32>,
    mut input: SendableRecordBatchStream,
    backend: Arc<dyn Backend>,
    memory_budget_bytes: usize,
    location: &DatasetLocation,
    expected_rows: u64,
    hook: Option<&ProgressHook>,
) -> Result<Segment> {
    let t = Instant::now();
    let (dim, metric, code_size) = (model.dim(), model.metric(), model.code_size());
    let mut lists = InvertedLists::new(model.num_partitions, code_size, memory_budget_bytes);
    let (mut chunk_addrs, mut chunk_vecs) = (vec![], vec![]);
    let (mut encoded, mut sum_sq_distance) = (0u64, 0f64);
    loop {
        let next = match input.next().await {
            Some(batch) => Some(batch?),
            None => None,
        };
        if let Some(batch) = &next {
            usable_rows(batch, dim, metric, &mut chunk_addrs, &mut chunk_vecs);
        }
        let full = chunk_addrs.len() >= ENCODE_CHUNK_ROWS;
        if (full || next.is_none()) && !chunk_addrs.is_empty() {
            let (a, v) = (
                std::mem::take(&mut chunk_addrs),
                std::mem::take(&mut chunk_vecs),
            );
            let (backend, model) = (backend.clone(), model.clone());
            let (a, parts, codes, sq) = blocking(move || {
                let assignment = model.assign(backend.as_ref(), &v)?;
                let codes = model
                    .quantizer
                    .encode(backend.as_ref(), &v, &assignment.codes)?;
                let sq: f64 = v
                    .chunks_exact(dim)
                    .zip(&assignment.codes)
                    .map(|(x, p)| l2_squared(x, model.centroid(*p as usize)) as f64)
                    .sum();
                Ok((a, assignment.codes, codes, sq))
            })
            .await?;
            for (i, addr) in a.iter().enumerate() {
                lists.push(
                    parts[i] as usize,
                    *addr,
                    &codes[i * code_size..(i + 1) * code_size],
                )?;
            }
            encoded += a.len() as u64;
            sum_sq_distance += sq;
            report(hook, "encode", encoded, expected_rows, "rows");
        }
        if next.is_none() {
            break;
        }
    }
    drop(input);
    let seconds_encode = t.elapsed().as_secs_f64();
    let spilled_runs = lists.spilled_runs();

    let t = Instant::now();
    let mut drain = lists.into_drain();
    let total = model.num_partitions as u64;
    let (file, bytes) = write_segment(model, location, hook, total, || {
        drain.next_partition().map(|p| p.map(|(_, a, c)| (a, c)))
    })
    .await?;
    Ok(Segment {
        meta: SegmentMeta {
            file,
            model_id: model.id.clone(),
            fragments,
            rows: encoded,
        },
        bytes,
        sum_sq_distance,
        spilled_runs,
        seconds_encode,
        seconds_write: t.elapsed().as_secs_f64(),
    })
}

/// Writes a new segment file from `next`, which yields each partition's `(addresses, codes)`
/// in order. Removes the partial file on an error.
async fn write_segment(
    model: &IndexModel,
    location: &DatasetLocation,
    hook: Option<&ProgressHook>,
    total: u64,
    mut next: impl FnMut() -> Result<Option<(Vec<u64>, Vec<u8>)>>,
) -> Result<(String, u64)> {
    let file = files::new_segment_file();
    let mut writer = SegmentWriter::create(location, &file, model).await?;
    let mut p = 0u64;
    loop {
        let part = match next() {
            Ok(Some(part)) => part,
            Ok(None) => break,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        };
        if let Err(e) = writer.partition(&part.0, &part.1).await {
            writer.abort().await;
            return Err(e);
        }
        p += 1;
        report(hook, "write", p, total, "partitions");
    }
    let bytes = writer.finish().await?;
    Ok((file, bytes))
}

/// Block 4 (for `OPTIMIZE ... merge_segments`): one segment holding every row of `segments`
/// (opened from the files `metas` name), their codes copied, nothing re-encoded.
pub async fn merge(
    model: &IndexModel,
    segments: &[SegmentMeta],
    location: &DatasetLocation,
    hook: Option<&ProgressHook>,
) -> Result<Segment> {
    let t = Instant::now();
    let mut opened = Vec::with_capacity(segments.len());
    for s in segments {
        opened.push(SegmentFile::open(location, &s.file, model).await?);
    }
    let code_size = model.code_size();
    let total = model.num_partitions as u64;
    let mut p = 0usize;
    let (file, bytes) = write_segment(model, location, hook, total, || {
        if p == model.num_partitions {
            return Ok(None);
        }
        let (mut addrs, mut codes) = (vec![], vec![]);
        for s in &opened {
            let (a, c) = s.partition(p)?;
            addrs.extend_from_slice(&a);
            codes.extend_from_slice(c.as_slice());
        }
        p += 1;
        Ok(Some(by_address(addrs, codes, code_size)))
    })
    .await?;
    let mut fragments: Vec<u32> = segments.iter().flat_map(|s| s.fragments.clone()).collect();
    fragments.sort_unstable();
    Ok(Segment {
        meta: SegmentMeta {
            file,
            model_id: model.id.clone(),
            fragments,
            rows: segments.iter().map(|s| s.rows).sum(),
        },
        bytes,
        sum_sq_distance: 0.0,
        spilled_runs: 0,
        seconds_encode: 0.0,
        seconds_write: t.elapsed().as_secs_f64(),
    })
}

/// For `OPTIMIZE TABLE`: `segment` with the rows of the `removed` fragments moved to where
/// `rewritten` put them (rows that were deleted are dropped), codes copied, nothing
/// re-encoded. Each rewritten fragment must hold rows of this segment's fragments only.
pub async fn remap(
    model: &IndexModel,
    segment: &SegmentMeta,
    removed: &HashSet<u32>,
    rewritten: &[Rewritten],
    location: &DatasetLocation,
) -> Result<Segment> {
    let t = Instant::now();
    let file = SegmentFile::open(location, &segment.file, model).await?;
    let by_source: HashMap<u32, &Rewritten> = rewritten
        .iter()
        .flat_map(|r| r.sources.iter().map(move |s| (*s, r)))
        .collect();
    let code_size = model.code_size();
    let (mut p, mut rows) = (0usize, 0u64);
    let (file_name, bytes) =
        write_segment(model, location, None, model.num_partitions as u64, || {
            if p == model.num_partitions {
                return Ok(None);
            }
            let (addrs, codes) = file.partition(p)?;
            p += 1;
            let (mut out_addrs, mut out_codes) = (Vec::with_capacity(addrs.len()), vec![]);
            for (i, a) in addrs.iter().enumerate() {
                let (fragment, _) = split_row_address(*a);
                let moved = if removed.contains(&fragment) {
                    by_source.get(&fragment).and_then(|r| r.remap(*a))
                } else {
                    Some(*a)
                };
                if let Some(new) = moved {
                    out_addrs.push(new);
                    out_codes.extend_from_slice(&codes[i * code_size..(i + 1) * code_size]);
                }
            }
            rows += out_addrs.len() as u64;
            Ok(Some(by_address(out_addrs, out_codes, code_size)))
        })
        .await?;
    let mut fragments: Vec<u32> = segment
        .fragments
        .iter()
        .copied()
        .filter(|f| !removed.contains(f))
        .collect();
    fragments.extend(
        rewritten
            .iter()
            .filter(|r| r.sources.iter().all(|s| segment.fragments.contains(s)))
            .map(|r| r.id),
    );
    fragments.sort_unstable();
    Ok(Segment {
        meta: SegmentMeta {
            file: file_name,
            model_id: model.id.clone(),
            fragments,
            rows,
        },
        bytes,
        sum_sq_distance: 0.0,
        spilled_runs: 0,
        seconds_encode: 0.0,
        seconds_write: t.elapsed().as_secs_f64(),
    })
}

/// Block 5: records the index `plan` describes — `model` and `segments` — in one new version
/// on top of `dataset` (the version the model was trained from). The commit checks that the
/// segments cover disjoint fragments of that version and were all encoded with `model`.
pub async fn commit(
    dataset: &Dataset,
    plan: &BuildPlan,
    model: &ModelSummary,
    segments: &[Segment],
    details: serde_json::Value,
) -> Result<Dataset> {
    let spec = &plan.spec;
    let mut details = details;
    details["ivf_objective"] = json!(model.ivf_objective);
    details["created_at_ms"] = json!(chrono::Utc::now().timestamp_millis());
    let index = IndexMeta {
        name: spec.name.clone(),
        column: spec.column.clone(),
        kind: spec.options.kind,
        metric: spec.options.metric,
        params: serde_json::to_value(&model.resolved)
            .map_err(|e| internal_datafusion_err!("index options do not serialise: {e}"))?,
        model: model.meta.clone(),
        segments: segments.iter().map(|s| s.meta.clone()).collect(),
        dataset_version: dataset.version(),
        details,
    };
    dataset
        .commit(&Operation::CreateIndex {
            index,
            replace: spec.options.replace,
        })
        .await
}
