//! An index opened for searching: its file mapped, its parameters decoded, cached per
//! dataset (index files are immutable), so repeated queries pay nothing to open it.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::error::{DataFusionError, Result};
use vecfusion_kernels::distance::{dot, l2_squared};
use vecfusion_kernels::scan::{neg_dot_batch, pq_adc, sq_l2, sq_linear};

use crate::dataset::{Dataset, IndexMeta};
use crate::index::IndexKind;
use crate::index::format::IndexFile;
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
    covered: HashSet<u32>,
}

/// What a query needs per index, prepared once.
pub struct PreparedQuery {
    /// The query as the index compares it (normalised for cosine).
    pub vector: Vec<f32>,
    /// Dot: the partition-independent PQ table `−q_s · codeword`.
    dot_lut: Vec<f32>,
    /// SQ: per-dimension weights / offsets and a constant.
    sq_a: Vec<f32>,
    sq_w: Vec<f32>,
    sq_bias: f32,
}

impl LoadedIndex {
    /// Opens (or takes from the dataset's cache) the index described by `meta`.
    pub async fn open(dataset: &Dataset, meta: &IndexMeta) -> Result<Arc<Self>> {
        let file_name = meta.files.first().ok_or_else(|| {
            DataFusionError::Execution(format!("index '{}' lists no file", meta.name))
        })?;
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
            IndexKind::IvfPq => Some(file.section_f32("pq_codebooks")?),
            IndexKind::IvfSq => Some(file.section_f32("sq_bounds")?),
            IndexKind::IvfFlat => None,
        };
        if kind == IndexKind::IvfPq && h.num_bits != 8 && h.num_bits != 4 {
            return Err(DataFusionError::Execution(format!(
                "index '{}' uses {}-bit codes, which this vecfusion cannot search",
                meta.name, h.num_bits
            )));
        }
        Ok(Self {
            covered: meta.fragments.iter().copied().collect(),
            centroids: file.section_f32("centroids")?,
            sub_vectors: h.num_sub_vectors,
            ksub: 1 << h.num_bits,
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
            (IndexKind::IvfPq, Some(cb)) if self.metric == Metric::Dot => {
                let ds = self.dim / self.sub_vectors;
                dot_lut = vec![0.0; self.sub_vectors * 256];
                for s in 0..self.sub_vectors {
                    for j in 0..self.ksub {
                        let cw = &cb[(s * self.ksub + j) * ds..(s * self.ksub + j + 1) * ds];
                        dot_lut[s * 256 + j] = -dot(&vector[s * ds..(s + 1) * ds], cw);
                    }
                }
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

    /// Partitions nearest to the query first (by the index metric).
    pub fn rank_partitions(&self, q: &PreparedQuery) -> Vec<usize> {
        let mut scored: Vec<(f32, usize)> = self
            .centroids
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(p, c)| match self.metric {
                Metric::Dot => (-dot(&q.vector, c), p),
                Metric::L2 | Metric::Cosine => (l2_squared(&q.vector, c), p),
            })
            .collect();
        scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(_, p)| p).collect()
    }

    /// Approximate scores (smaller is closer) of every row of partition `p`, with their row
    /// addresses. `lut` is scratch space.
    pub fn scan_partition(
        &self,
        p: usize,
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
                let ds = self.dim / m;
                match self.metric {
                    Metric::Dot => pq_adc(
                        codes.as_slice(),
                        m,
                        &q.dot_lut,
                        -dot(&q.vector, centroid),
                        scores,
                    ),
                    _ => {
                        // Residual tables: ‖(q − c_p)_s − codeword‖² for every sub-space.
                        let residual: Vec<f32> =
                            q.vector.iter().zip(centroid).map(|(a, b)| a - b).collect();
                        lut.clear();
                        lut.resize(m * 256, 0.0);
                        let k = self.ksub;
                        for s in 0..m {
                            let r = &residual[s * ds..(s + 1) * ds];
                            for j in 0..k {
                                let cw = &cb[(s * k + j) * ds..(s * k + j + 1) * ds];
                                lut[s * 256 + j] = l2_squared(r, cw);
                            }
                        }
                        pq_adc(codes.as_slice(), m, lut, 0.0, scores)
                    }
                }
            }
            _ => {
                return Err(DataFusionError::Internal("index quantizer missing".into()));
            }
        }
        Ok(addrs)
    }
}
