//! An index opened for searching: its file mapped, its parameters decoded, cached per
//! dataset (index files are immutable), so repeated queries pay nothing to open it.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::common::{exec_datafusion_err, exec_err, internal_err};
use datafusion::error::Result;

use vecfusion_kernels::scan::{
    add, neg_dot_batch, pq_adc, pq_codeword_norms, pq_dot_table, sq_l2, sq_linear,
};

use crate::dataset::{Dataset, IndexMeta};
use crate::index_format::{
    IndexFile, IndexKind, SECTION_CENTROIDS, SECTION_PQ_CODEBOOKS, SECTION_SQ_BOUNDS,
};
use crate::metric::Metric;

/// An opened vector index.
#[derive(Debug)]
pub struct LoadedIndex {
    pub meta: IndexMeta,
    pub kind: IndexKind,
    pub metric: Metric,
    pub dim: usize,
    pub partitions: usize,
    file: Arc<IndexFile>,
    centroids: ScalarBuffer<f32>,
    /// PQ: `m × 256 × (dim / m)`; SQ: `dim` minimums then `dim` maximums.
    quantizer: Option<ScalarBuffer<f32>>,
    sub_vectors: usize,
    /// Codewords per PQ sub-space (2^num_bits).
    ksub: usize,
    /// PQ with L2/cosine: `‖codeword‖²` per table entry (`m × 256`).
    codeword_norms: Vec<f32>,
    /// PQ with L2/cosine: per partition `2·c_p,s·codeword + ‖codeword‖²` (`partitions × m ×
    /// 256`), when that fits in [`PRECOMPUTED_TABLES_BYTES`]; computed per probe otherwise.
    partition_tables: Vec<f32>,
    covered: HashSet<u32>,
}

/// Memory the per-partition PQ tables may take (Faiss's "precomputed tables").
const PRECOMPUTED_TABLES_BYTES: usize = 64 << 20;

/// What a query needs per index, prepared once.
pub struct PreparedQuery {
    /// The query as the index compares it (normalised for cosine).
    pub vector: Vec<f32>,
    /// PQ: the partition-independent part of the distance table (`−2·q_s·codeword` for
    /// L2/cosine, `−q_s·codeword` for dot).
    dot_lut: Vec<f32>,
    /// SQ: per-dimension weights / offsets and a constant.
    sq_a: Vec<f32>,
    sq_w: Vec<f32>,
    sq_bias: f32,
}

impl LoadedIndex {
    /// Opens (or takes from the dataset's cache) the index described by `meta`.
    pub async fn open(dataset: &Dataset, meta: &IndexMeta) -> Result<Arc<Self>> {
        let file_name = meta
            .files
            .first()
            .ok_or_else(|| exec_datafusion_err!("index '{}' lists no file", meta.name))?;
        let meta = meta.clone();
        let location = dataset.location().clone();
        dataset
            .cached_derived(file_name, || async move {
                let file = IndexFile::open(&location, &meta.files[0]).await?;
                Self::from_file(meta, file)
            })
            .await
    }

    fn from_file(meta: IndexMeta, file: Arc<IndexFile>) -> Result<Self> {
        let h = &file.header;
        let (kind, metric, dim, partitions) = (h.kind, h.metric, h.dim, h.num_partitions);
        let quantizer = match kind {
            IndexKind::IvfPq => Some(file.section_f32(SECTION_PQ_CODEBOOKS)?),
            IndexKind::IvfSq => Some(file.section_f32(SECTION_SQ_BOUNDS)?),
            IndexKind::IvfFlat => None,
        };
        if kind == IndexKind::IvfPq && h.num_bits != 8 && h.num_bits != 4 {
            return exec_err!(
                "index '{}' uses {}-bit codes, which this vecfusion cannot search",
                meta.name,
                h.num_bits
            );
        }
        let centroids = file.section_f32(SECTION_CENTROIDS)?;
        let (m, ksub) = (h.num_sub_vectors, 1usize << h.num_bits);
        let (mut codeword_norms, mut partition_tables) = (vec![], vec![]);
        if let (IndexKind::IvfPq, Some(cb), false) = (kind, &quantizer, metric == Metric::Dot) {
            codeword_norms = pq_codeword_norms(cb, m, ksub, dim / m);
            if partitions * m * 256 * 4 <= PRECOMPUTED_TABLES_BYTES {
                partition_tables = vec![0.0; partitions * m * 256];
                for (p, table) in partition_tables.chunks_exact_mut(m * 256).enumerate() {
                    let c = &centroids[p * dim..(p + 1) * dim];
                    pq_dot_table(c, cb, m, ksub, 2.0, &codeword_norms, table);
                }
            }
        }
        Ok(Self {
            covered: meta.fragments.iter().copied().collect(),
            centroids,
            sub_vectors: m,
            ksub,
            codeword_norms,
            partition_tables,
            quantizer,
            kind,
            metric,
            dim,
            partitions,
            file,
            meta,
        })
    }

    pub fn covers(&self, fragment: u32) -> bool {
        self.covered.contains(&fragment)
    }

    pub fn partition_rows(&self, p: usize) -> u64 {
        self.file.partition_rows(p)
    }

    pub fn prepare(&self, query: &[f32]) -> PreparedQuery {
        let mut vector = query.to_vec();
        if self.metric == Metric::Cosine {
            crate::metric::normalize_rows(&mut vector, self.dim);
        }
        let (mut dot_lut, mut sq_a, mut sq_w, mut sq_bias) = (vec![], vec![], vec![], 0.0);
        match (self.kind, &self.quantizer) {
            (IndexKind::IvfPq, Some(cb)) => {
                let scale = if self.metric == Metric::Dot {
                    -1.0
                } else {
                    -2.0
                };
                dot_lut = vec![0.0; self.sub_vectors * 256];
                pq_dot_table(
                    &vector,
                    cb,
                    self.sub_vectors,
                    self.ksub,
                    scale,
                    &[],
                    &mut dot_lut,
                );
            }
            (IndexKind::IvfSq, Some(bounds)) => {
                let (lo, hi) = bounds.split_at(self.dim);
                for d in 0..self.dim {
                    let step = (hi[d] - lo[d]) / 255.0;
                    if self.metric == Metric::Dot {
                        sq_bias -= vector[d] * lo[d];
                        sq_w.push(-vector[d] * step);
                    } else if step > 0.0 {
                        sq_a.push((vector[d] - lo[d]) / step);
                        sq_w.push(step * step);
                    } else {
                        sq_bias += (vector[d] - lo[d]).powi(2);
                        sq_a.push(0.0);
                        sq_w.push(0.0);
                    }
                }
            }
            _ => {}
        }
        PreparedQuery {
            vector,
            dot_lut,
            sq_a,
            sq_w,
            sq_bias,
        }
    }

    /// Partitions nearest to the query first (by the index metric), with the query's coarse
    /// score against each (squared distance, or negated inner product).
    pub fn rank_partitions(&self, q: &PreparedQuery) -> Vec<(f32, usize)> {
        let mut scored = vec![0.0f32; self.partitions];
        match self.metric {
            Metric::Dot => neg_dot_batch(&self.centroids, &q.vector, &mut scored),
            Metric::L2 | Metric::Cosine => vecfusion_kernels::distance::l2_squared_batch(
                &self.centroids,
                self.dim,
                &q.vector,
                &mut scored,
            ),
        }
        let mut order: Vec<(f32, usize)> = scored.into_iter().zip(0..).collect();
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        order
    }

    /// Approximate scores (smaller is closer) of every row of partition `p`, with their row
    /// addresses. `coarse` is the query's score against the partition's centroid (from
    /// [`Self::rank_partitions`]); `lut` is scratch space.
    pub fn scan_partition(
        &self,
        p: usize,
        coarse: f32,
        q: &PreparedQuery,
        scores: &mut Vec<f32>,
        lut: &mut Vec<f32>,
    ) -> Result<ScalarBuffer<u64>> {
        let (addrs, codes) = self.file.partition(p)?;
        let n = addrs.len();
        scores.clear();
        scores.resize(n, 0.0);
        let centroid = &self.centroids[p * self.dim..(p + 1) * self.dim];
        match (self.kind, &self.quantizer) {
            (IndexKind::IvfFlat, _) => {
                let values: ScalarBuffer<f32> = ScalarBuffer::new(codes, 0, n * self.dim);
                match self.metric {
                    Metric::Dot => neg_dot_batch(&values, &q.vector, scores),
                    _ => vecfusion_kernels::distance::l2_squared_batch(
                        &values, self.dim, &q.vector, scores,
                    ),
                }
            }
            (IndexKind::IvfSq, Some(_)) => match self.metric {
                Metric::Dot => sq_linear(codes.as_slice(), &q.sq_w, q.sq_bias, scores),
                _ => sq_l2(codes.as_slice(), &q.sq_a, &q.sq_w, q.sq_bias, scores),
            },
            (IndexKind::IvfPq, Some(cb)) => {
                let m = self.sub_vectors;
                if self.metric == Metric::Dot {
                    // −q·x ≈ −q·c_p − Σ_s q_s·codeword
                    pq_adc(codes.as_slice(), m, &q.dot_lut, coarse, scores)
                } else {
                    // ‖q − c_p − r‖² = ‖q − c_p‖² + Σ_s (−2·q_s·w + 2·c_p,s·w + ‖w‖²)
                    lut.resize(m * 256, 0.0);
                    if self.partition_tables.is_empty() {
                        pq_dot_table(centroid, cb, m, self.ksub, 2.0, &self.codeword_norms, lut);
                        vecfusion_kernels::distance::add_assign(lut, &q.dot_lut);
                    } else {
                        let table = &self.partition_tables[p * m * 256..(p + 1) * m * 256];
                        add(table, &q.dot_lut, lut);
                    }
                    pq_adc(codes.as_slice(), m, lut, coarse, scores)
                }
            }
            _ => {
                return internal_err!("index quantizer missing");
            }
        }
        Ok(addrs)
    }
}
