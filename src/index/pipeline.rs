//! The index build pipeline, phase by phase (the body of `CreateVectorIndexExec`).
//!
//! ```text
//! pass 1  scan (vector, row address) → validate (skip NULL / non-finite / zero-for-cosine)
//!         → deterministic sample by hash(seed, row address) → SQ bounds over all rows
//! train   IVF centroids on the sample → PQ codebooks on sample residuals (IVF_PQ)
//! pass 2  scan again → assign + encode in chunks on the accelerator → partition lists
//!         (spilling to temporary files over the memory budget)
//! write   one index file → commit a new dataset version that records the index
//! ```
//!
//! The sample is the only large resident: nothing holds all vectors. Sampling by a hash of
//! the row address makes the sample (and so the index) the same whatever order the scan's
//! partitions deliver rows in. A failure or a kill at any point before the commit leaves the
//! dataset at its previous version: the index file is unreferenced and removed by cleanup.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float32Type, UInt64Type};
use datafusion::common::{exec_datafusion_err, internal_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, Time};
use futures::StreamExt;
use serde_json::json;
use vecfusion_kernels::distance::{all_finite, norm_squared, scale, sub_assign};

use super::inverted_lists::InvertedLists;
use super::options::{IndexOptions, ResolvedOptions};
use super::progress::{ProgressEvent, ProgressHook};
use crate::dataset::{Dataset, IndexMeta, Operation, random_name};
use crate::index_format::{
    FORMAT_VERSION, IndexHeader, IndexKind, IndexWriter, SECTION_CENTROIDS, SECTION_PQ_CODEBOOKS,
    SECTION_SQ_BOUNDS,
};
use crate::kmeans::pq::{PqParams, ProductQuantizer};
use crate::kmeans::sq::ScalarBounds;
use crate::kmeans::{Accelerator, Backend, IterationInfo, KMeansModel, KMeansParams, backend_for};
use crate::metric::Metric;

/// Rows PQ codebooks are trained on at most (256 per codeword, as Faiss and Lance do).
const PQ_TRAINING_ROWS: usize = 256 * 256;
/// Rows assigned and encoded per accelerator call in the encode pass.
const ENCODE_CHUNK_ROWS: usize = 65_536;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub name: String,
    pub column: String,
    pub options: IndexOptions,
}

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
        }
    }
}

/// A source of scans of `(vector, row address)` batches; called once per pass.
pub type ScanFn<'a> = dyn Fn() -> Result<SendableRecordBatchStream> + Send + Sync + 'a;

struct Reporter<'a>(Option<&'a ProgressHook>);

impl Reporter<'_> {
    fn report(&self, phase: &'static str, done: u64, total: u64, unit: &'static str) {
        if let Some(h) = self.0 {
            h.report(&ProgressEvent {
                phase,
                done,
                total,
                unit,
            });
        }
    }
}

/// A Lloyd-iteration callback reporting `phase` progress to `hook`, if any.
fn iterations(
    hook: Option<ProgressHook>,
    phase: &'static str,
    total: u64,
) -> impl FnMut(&IterationInfo) {
    move |i| {
        if let Some(h) = &hook {
            h.report(&ProgressEvent {
                phase,
                done: i.iteration as u64,
                total,
                unit: "iterations",
            })
        }
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
/// `vectors` (normalised for cosine). Returns how many rows were skipped.
fn usable_rows(
    batch: &datafusion::arrow::array::RecordBatch,
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
        if metric == Metric::Cosine {
            let norm = norm_squared(v).sqrt();
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

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Runs `f` on a blocking thread (training and encoding are seconds of CPU or GPU work that
/// must not stall the async runtime).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| exec_datafusion_err!("index build task failed: {e}"))?
}

/// Builds the index described by `spec` over the rows `scan` yields and commits it on top of
/// `dataset` (the version scanned).
pub async fn build_index(
    dataset: Dataset,
    dim: usize,
    spec: &BuildSpec,
    accelerator: Accelerator,
    scan: &ScanFn<'_>,
    hook: Option<&ProgressHook>,
    metrics: &BuildMetrics,
) -> Result<BuildReport> {
    let started = Instant::now();
    let progress = Reporter(hook);
    let options = &spec.options;
    let metric = options.metric;
    let backend: Arc<dyn Backend> = Arc::from(backend_for(&accelerator));
    let live = dataset.count_rows();
    let mut seconds = PhaseSeconds::default();

    // Pass 1: validate, sample, SQ bounds.
    let t = Instant::now();
    let planned = options.resolve(live.max(1), dim)?;
    let ivf_rows = planned.num_partitions * options.sample_rate;
    let target = match options.kind {
        IndexKind::IvfPq => ivf_rows.max(PQ_TRAINING_ROWS),
        _ => ivf_rows,
    } as f64;
    let threshold = if target >= live as f64 {
        u64::MAX
    } else {
        (target / live as f64 * u64::MAX as f64) as u64
    };
    let mut keys: Vec<(u64, u32)> = vec![];
    let mut sample: Vec<f32> = vec![];
    let mut bounds = ScalarBounds::empty(dim);
    let (mut usable, mut skipped) = (0u64, 0u64);
    let (mut addrs, mut vectors) = (vec![], vec![]);
    let mut stream = scan()?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        addrs.clear();
        vectors.clear();
        skipped += usable_rows(&batch, dim, metric, &mut addrs, &mut vectors);
        usable += addrs.len() as u64;
        if options.kind == IndexKind::IvfSq {
            bounds.update(&vectors);
        }
        for (i, a) in addrs.iter().enumerate() {
            let key = sample_key(options.seed, *a);
            if key <= threshold {
                keys.push((key, (sample.len() / dim) as u32));
                sample.extend_from_slice(&vectors[i * dim..(i + 1) * dim]);
            }
        }
        progress.report("sample", usable + skipped, live, "rows");
    }
    drop(stream);
    let resolved = options.resolve(usable, dim)?;
    // Order the sample by its hash key: a seeded random order that does not depend on the
    // order rows arrived in.
    keys.sort_unstable();
    let ordered: Vec<f32> = keys
        .iter()
        .flat_map(|(_, i)| {
            sample[*i as usize * dim..(*i as usize + 1) * dim]
                .iter()
                .copied()
        })
        .collect();
    drop(sample);
    seconds.sample = t.elapsed().as_secs_f64();
    metrics.sample.add_duration(t.elapsed());
    metrics.rows_skipped.add(skipped as usize);

    // Train IVF.
    let t = Instant::now();
    let k = resolved.num_partitions;
    let n_ivf = (k * options.sample_rate).min(keys.len());
    let ivf_sample: Vec<f32> = ordered[..n_ivf * dim].to_vec();
    let mut params = KMeansParams::new(k);
    params.max_iterations = options.max_iterations;
    params.tolerance = options.tolerance;
    params.metric = metric;
    params.seed = options.seed;
    let max_iter = options.max_iterations as u64;
    let (model, backend) = {
        let backend = backend.clone();
        let hook = hook.cloned();
        blocking(move || {
            let mut progress = iterations(hook, "train_ivf", max_iter);
            let model =
                crate::kmeans::train(backend.as_ref(), &ivf_sample, dim, &params, &mut progress)?;
            Ok((model, backend))
        })
        .await?
    };
    seconds.train_ivf = t.elapsed().as_secs_f64();
    metrics.train_ivf.add_duration(t.elapsed());

    // Train the quantizer.
    let t = Instant::now();
    let pq = if options.kind == IndexKind::IvfPq {
        let n_pq = PQ_TRAINING_ROWS.min(keys.len());
        let pq_sample: Vec<f32> = ordered[..n_pq * dim].to_vec();
        let (backend2, model2, hook2) = (backend.clone(), model.clone(), hook.cloned());
        let pq_params = PqParams {
            num_sub_vectors: resolved.num_sub_vectors,
            num_bits: options.num_bits,
            max_iterations: options.pq_max_iterations,
            tolerance: options.tolerance,
            seed: options.seed,
        };
        let pq_iter = options.pq_max_iterations as u64;
        Some(
            blocking(move || {
                let residuals = residuals(backend2.as_ref(), &model2, &pq_sample)?;
                let mut progress = iterations(hook2, "train_quantizer", pq_iter);
                ProductQuantizer::train(
                    backend2.as_ref(),
                    &residuals,
                    dim,
                    &pq_params,
                    &mut progress,
                )
            })
            .await?,
        )
    } else {
        None
    };
    drop(ordered);
    let pq = pq.map(Arc::new);
    let bounds = Arc::new(bounds);
    seconds.train_quantizer = t.elapsed().as_secs_f64();
    metrics.train_quantizer.add_duration(t.elapsed());

    // Pass 2: assign + encode.
    let t = Instant::now();
    let code_size = match options.kind {
        IndexKind::IvfFlat => dim * 4,
        IndexKind::IvfSq => dim,
        IndexKind::IvfPq => resolved.num_sub_vectors,
    };
    let model = Arc::new(model);
    let mut lists = InvertedLists::new(k, code_size, options.memory_budget_mb << 20);
    let (mut chunk_addrs, mut chunk_vecs) = (vec![], vec![]);
    let mut encoded = 0u64;
    let mut stream = scan()?;
    loop {
        let next = match stream.next().await {
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
            let (backend, model, pq, bounds) =
                (backend.clone(), model.clone(), pq.clone(), bounds.clone());
            let kind = options.kind;
            let (a, parts, codes) = blocking(move || {
                let assignment = model.assign(backend.as_ref(), &v)?;
                let codes = encode(
                    kind,
                    backend.as_ref(),
                    &model,
                    pq.as_deref(),
                    &bounds,
                    &v,
                    &assignment.codes,
                )?;
                Ok((a, assignment.codes, codes))
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
            progress.report("encode", encoded, usable, "rows");
        }
        if next.is_none() {
            break;
        }
    }
    drop(stream);
    seconds.encode = t.elapsed().as_secs_f64();
    metrics.encode.add_duration(t.elapsed());
    metrics.rows_indexed.add(encoded as usize);
    let spilled_runs = lists.spilled_runs();
    metrics.spilled_runs.add(spilled_runs);

    // Write the index file, then commit.
    let t = Instant::now();
    let file = format!(
        "_indexes/{}-{}.vfidx",
        spec.name.to_ascii_lowercase(),
        random_name()
    );
    let mut writer = IndexWriter::create(dataset.location(), &file).await?;
    let written = write_file(
        &mut writer,
        &model,
        pq.as_deref(),
        &bounds,
        &resolved,
        lists,
        &progress,
    )
    .await;
    let bytes = match written {
        Ok(()) => {
            writer
                .finish(IndexHeader {
                    format_version: FORMAT_VERSION,
                    kind: options.kind,
                    metric,
                    dim,
                    num_partitions: k,
                    num_sub_vectors: resolved.num_sub_vectors,
                    num_bits: options.num_bits,
                    code_size,
                    rows: 0,
                    sections: vec![],
                })
                .await?
        }
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    seconds.write = t.elapsed().as_secs_f64();
    metrics.write.add_duration(t.elapsed());
    seconds.total = started.elapsed().as_secs_f64();

    let meta = IndexMeta {
        name: spec.name.clone(),
        column: spec.column.clone(),
        kind: options.kind.name().into(),
        metric: metric.name().into(),
        params: serde_json::to_value(&resolved)
            .map_err(|e| internal_datafusion_err!("index options do not serialise: {e}"))?,
        files: vec![file],
        fragments: dataset.fragments().iter().map(|f| f.id).collect(),
        dataset_version: dataset.version(),
        rows_indexed: encoded,
        details: json!({
            "accelerator": backend.name(), "rows_skipped": skipped, "file_bytes": bytes,
            "seconds": {
                "sample": seconds.sample, "train_ivf": seconds.train_ivf,
                "train_quantizer": seconds.train_quantizer, "encode": seconds.encode,
                "write": seconds.write, "total": seconds.total,
            },
            "ivf_objective": model.objectives.last(),
            "created_at_ms": chrono::Utc::now().timestamp_millis(),
        }),
    };
    let committed = dataset
        .commit(&Operation::CreateIndex {
            index: meta,
            replace: options.replace,
        })
        .await?;
    progress.report("commit", 1, 1, "versions");
    Ok(BuildReport {
        name: spec.name.clone(),
        kind: options.kind,
        rows_indexed: encoded,
        rows_skipped: skipped,
        partitions: k,
        accelerator: backend.name().to_string(),
        seconds,
        version: committed.version(),
        file_bytes: bytes,
        spilled_runs,
    })
}

/// `x − c[assigned]` for every row.
fn residuals(backend: &dyn Backend, model: &KMeansModel, rows: &[f32]) -> Result<Vec<f32>> {
    let assignment = model.assign(backend, rows)?;
    Ok(subtract_centroids(model, rows, &assignment.codes))
}

/// Residuals `x − c[partition]` of every row.
fn subtract_centroids(model: &KMeansModel, rows: &[f32], partitions: &[u32]) -> Vec<f32> {
    let dim = model.dim;
    let mut out = rows.to_vec();
    for (row, p) in out.chunks_exact_mut(dim).zip(partitions) {
        sub_assign(
            row,
            &model.centroids[*p as usize * dim..(*p as usize + 1) * dim],
        );
    }
    out
}

/// The codes of a chunk of rows (row-major, `code_size` bytes each).
fn encode(
    kind: IndexKind,
    backend: &dyn Backend,
    model: &KMeansModel,
    pq: Option<&ProductQuantizer>,
    bounds: &ScalarBounds,
    rows: &[f32],
    partitions: &[u32],
) -> Result<Vec<u8>> {
    Ok(match kind {
        IndexKind::IvfFlat => f32_bytes(rows),
        IndexKind::IvfSq => {
            let mut out = Vec::with_capacity(rows.len());
            bounds.encode(rows, &mut out);
            out
        }
        IndexKind::IvfPq => {
            let dim = model.dim;
            let mut res = rows.to_vec();
            for (row, p) in res.chunks_exact_mut(dim).zip(partitions) {
                let c = &model.centroids[*p as usize * dim..(*p as usize + 1) * dim];
                row.iter_mut().zip(c).for_each(|(x, c)| *x -= c);
            }
            pq.expect("IVF_PQ has a product quantizer")
                .encode(backend, &res)?
        }
    })
}

async fn write_file(
    writer: &mut IndexWriter,
    model: &KMeansModel,
    pq: Option<&ProductQuantizer>,
    bounds: &ScalarBounds,
    resolved: &ResolvedOptions,
    lists: InvertedLists,
    progress: &Reporter<'_>,
) -> Result<()> {
    writer
        .section(SECTION_CENTROIDS, &f32_bytes(&model.centroids))
        .await?;
    match resolved.options.kind {
        IndexKind::IvfPq => {
            let pq = pq.expect("IVF_PQ has a product quantizer");
            writer
                .section(SECTION_PQ_CODEBOOKS, &f32_bytes(&pq.codebooks))
                .await?;
        }
        IndexKind::IvfSq => {
            let mut both = bounds.min.clone();
            both.extend_from_slice(&bounds.max);
            writer.section(SECTION_SQ_BOUNDS, &f32_bytes(&both)).await?;
        }
        IndexKind::IvfFlat => {}
    }
    let total = resolved.num_partitions as u64;
    let mut drain = lists.into_drain();
    while let Some((p, addrs, codes)) = drain.next_partition()? {
        writer.partition(&addrs, &codes).await?;
        progress.report("write", p as u64 + 1, total, "partitions");
    }
    Ok(())
}
