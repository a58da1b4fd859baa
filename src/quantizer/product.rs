//! IVF_PQ: the residual `x − c_p` of a row to its partition's centroid, cut into `m`
//! sub-vectors, each coded as its nearest of `2^bits` codewords (one byte per sub-vector, also
//! for 4-bit codes). A query scores a partition through one table of `m × 2^bits` entries.
//!
//! 4-bit codes are scanned with the tables in registers ([`vecfusion_kernels::fast_scan`]):
//! each partition's codes are packed into blocks when first searched, and each probe
//! quantizes its table to bytes. The byte tables cost a little precision (at most half a
//! step per sub-space), which the refinement by exact distance absorbs.

use std::cell::RefCell;

use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use vecfusion_kernels::distance::{add_assign, sub_assign};
use vecfusion_kernels::fast_scan::{
    BLOCK_ROWS, MAX_SUBSPACES, dequantize, pack_blocks, padded_subspaces, quantize_tables,
    scan_blocks,
};
use vecfusion_kernels::scan::{
    add, pq_adc, pq_codebook_panels, pq_codeword_norms, pq_dot_table, pq_dot_tables, resize_scratch,
};

use super::{Quantizer, QuantizerParams, QueryTables, TrainingData, TrainingOptions};
use crate::kmeans::pq::{PqParams, ProductQuantizer};
use crate::kmeans::{Backend, IterationInfo, Layout};
use crate::metric::Metric;

/// `m × 2^bits × dim/m` f32: the codebooks.
pub const SECTION_PQ_CODEBOOKS: &str = "pq_codebooks";
/// Rows PQ codebooks are trained on at most (256 per codeword, as Faiss and Lance do).
pub const TRAINING_ROWS: usize = 256 * 256;
/// Memory the per-partition PQ tables may take (Faiss's "precomputed tables").
const PRECOMPUTED_TABLES_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub struct ProductCodes {
    params: QuantizerParams,
    /// Codewords per sub-space (`2^num_bits`).
    ksub: usize,
    codebooks: ScalarBuffer<f32>,
    /// The codebooks as [`pq_dot_table`] reads them ([`pq_codebook_panels`]).
    panels: Vec<f32>,
    centroids: ScalarBuffer<f32>,
    /// l2/cosine: `‖codeword‖²` per table entry (`m × ksub`).
    codeword_norms: Vec<f32>,
    /// l2/cosine: per partition `2·c_p,s·codeword + ‖codeword‖²` (`partitions × m × ksub`),
    /// when that fits in [`PRECOMPUTED_TABLES_BYTES`]; computed per probe otherwise.
    partition_tables: Vec<f32>,
    /// Whether partitions are scanned with byte tables in registers (4-bit codes, at most
    /// [`MAX_SUBSPACES`] sub-vectors).
    fast_scan: bool,
}

thread_local! {
    /// A fast scan's byte tables and 16-bit sums, reused across the probes of a thread.
    static FAST_SCAN_SCRATCH: RefCell<(Vec<u8>, Vec<u16>)> = const { RefCell::new((vec![], vec![])) };
}

impl ProductCodes {
    pub fn train(
        params: QuantizerParams,
        data: &TrainingData<'_>,
        backend: &dyn Backend,
        options: TrainingOptions,
        progress: &mut dyn FnMut(&IterationInfo),
    ) -> Result<Self> {
        let dim = params.dim;
        let rows = data.rows.len() / dim.max(1);
        let n = TRAINING_ROWS.min(rows);
        let mut residuals = data.rows[..n * dim].to_vec();
        let k = data.centroids.len() / dim.max(1);
        let assignment = backend.assign(
            &residuals,
            Layout::coarse(dim, k),
            data.centroids,
            params.metric,
        )?;
        for (row, p) in residuals.chunks_exact_mut(dim).zip(&assignment.codes) {
            sub_assign(row, centroid(data.centroids, dim, *p as usize));
        }
        let pq = ProductQuantizer::train(
            backend,
            &residuals,
            dim,
            &PqParams {
                num_sub_vectors: params.num_sub_vectors,
                num_bits: params.num_bits,
                max_iterations: options.max_iterations,
                tolerance: options.tolerance,
                seed: options.seed,
                cancel: options.cancel.clone(),
            },
            progress,
        )?;
        Self::new(params, pq.codebooks.into(), data.centroids.clone())
    }

    pub fn load(
        params: QuantizerParams,
        centroids: &ScalarBuffer<f32>,
        section: &dyn Fn(&str) -> Result<ScalarBuffer<f32>>,
    ) -> Result<Self> {
        if params.num_bits != 8 && params.num_bits != 4 {
            return plan_err!(
                "the index uses {}-bit PQ codes, which this vecfusion cannot search",
                params.num_bits
            );
        }
        let codebooks = section(SECTION_PQ_CODEBOOKS)?;
        // `dim` comes from the file's header: a crafted one must not wrap the product.
        let want = params.dim.checked_mul(1 << params.num_bits);
        if want != Some(codebooks.len()) {
            return exec_err!(
                "the PQ codebooks hold {} values, expected {} dimensions × {} codewords",
                codebooks.len(),
                params.dim,
                1usize << params.num_bits
            );
        }
        Self::new(params, codebooks, centroids.clone())
    }

    fn new(
        params: QuantizerParams,
        codebooks: ScalarBuffer<f32>,
        centroids: ScalarBuffer<f32>,
    ) -> Result<Self> {
        let (dim, m) = (params.dim, params.num_sub_vectors);
        if m == 0 || !dim.is_multiple_of(m) {
            return exec_err!("num_sub_vectors = {m} does not divide the dimension {dim}");
        }
        let ksub = 1usize << params.num_bits;
        let panels = pq_codebook_panels(&codebooks, m, ksub);
        let (mut codeword_norms, mut partition_tables) = (vec![], vec![]);
        if params.metric != Metric::Dot {
            codeword_norms = pq_codeword_norms(&codebooks, m, ksub, dim / m);
            let partitions = centroids.len() / dim;
            let table = m * ksub;
            if partitions.saturating_mul(table).saturating_mul(4) <= PRECOMPUTED_TABLES_BYTES {
                partition_tables = vec![0.0; partitions * table];
                for (p, out) in partition_tables.chunks_exact_mut(table).enumerate() {
                    let c = centroid(&centroids, dim, p);
                    pq_dot_table(c, &panels, m, ksub, 2.0, &codeword_norms, out);
                }
            }
        }
        Ok(Self {
            fast_scan: ksub == 16 && m <= MAX_SUBSPACES,
            params,
            ksub,
            codebooks,
            panels,
            centroids,
            codeword_norms,
            partition_tables,
        })
    }

    fn layout(&self) -> Layout {
        Layout {
            dim: self.params.dim,
            subspaces: self.params.num_sub_vectors,
            k: self.ksub,
        }
    }

    /// The factor of `q_s·codeword` in a query's table: −2 in `‖q − c − w‖²` for l2/cosine,
    /// −1 in the negated inner product for dot.
    fn query_scale(&self) -> f32 {
        if self.params.metric == Metric::Dot {
            -1.0
        } else {
            -2.0
        }
    }
}

fn centroid(centroids: &[f32], dim: usize, p: usize) -> &[f32] {
    &centroids[p * dim..(p + 1) * dim]
}

impl Quantizer for ProductCodes {
    fn params(&self) -> &QuantizerParams {
        &self.params
    }

    fn code_size(&self) -> usize {
        self.params.num_sub_vectors
    }

    fn sections(&self) -> Vec<(&'static str, &[f32])> {
        vec![(SECTION_PQ_CODEBOOKS, &self.codebooks)]
    }

    fn encode(&self, backend: &dyn Backend, rows: &[f32], partitions: &[u32]) -> Result<Vec<u8>> {
        let dim = self.params.dim;
        let mut residuals = rows.to_vec();
        for (row, p) in residuals.chunks_exact_mut(dim).zip(partitions) {
            sub_assign(row, centroid(&self.centroids, dim, *p as usize));
        }
        crate::kmeans::pq::encode(backend, &self.codebooks, self.layout(), &residuals)
    }

    fn arrange(&self, codes: Buffer) -> Buffer {
        if !self.fast_scan {
            return codes;
        }
        Buffer::from_vec(pack_blocks(codes.as_slice(), self.params.num_sub_vectors))
    }

    /// The partition-independent part of the table: `−2·q_s·codeword` for l2/cosine,
    /// `−q_s·codeword` for dot.
    fn prepare(&self, query: &[f32]) -> QueryTables {
        let mut lut = vec![0.0; self.params.num_sub_vectors * self.ksub];
        pq_dot_table(
            query,
            &self.panels,
            self.params.num_sub_vectors,
            self.ksub,
            self.query_scale(),
            &[],
            &mut lut,
        );
        QueryTables::new(lut)
    }

    fn prepare_all(&self, queries: &[f32]) -> Vec<QueryTables> {
        let (m, ksub) = (self.params.num_sub_vectors, self.ksub);
        let table = m * ksub;
        let mut luts = vec![0.0; queries.len() / self.params.dim.max(1) * table];
        pq_dot_tables(
            queries,
            &self.panels,
            m,
            ksub,
            self.query_scale(),
            &[],
            &mut luts,
        );
        luts.chunks_exact(table)
            .map(|lut| QueryTables::new(lut.to_vec()))
            .collect()
    }

    fn prepare_partition(&self, partition: usize, tables: &QueryTables, scratch: &mut Vec<f32>) {
        let (m, ksub) = (self.params.num_sub_vectors, self.ksub);
        let query_lut: &Vec<f32> = tables.get();
        if self.params.metric == Metric::Dot {
            return; // the query table alone scores every partition
        }
        // ‖q − c_p − r‖² = ‖q − c_p‖² + Σ_s (−2·q_s·w + 2·c_p,s·w + ‖w‖²)
        let table = m * ksub;
        resize_scratch(scratch, table);
        if self.partition_tables.is_empty() {
            let c = centroid(&self.centroids, self.params.dim, partition);
            pq_dot_table(c, &self.panels, m, ksub, 2.0, &self.codeword_norms, scratch);
            add_assign(scratch, query_lut);
        } else {
            let pre = &self.partition_tables[partition * table..(partition + 1) * table];
            add(pre, query_lut, scratch);
        }
    }

    fn scan(
        &self,
        _partition: usize,
        coarse: f32,
        _query: &[f32],
        tables: &QueryTables,
        codes: &Buffer,
        scores: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (m, ksub) = (self.params.num_sub_vectors, self.ksub);
        // Dot: −q·x ≈ −q·c_p − Σ_s q_s·codeword, the query table alone; l2/cosine: the
        // partition's table `prepare_partition` wrote.
        let lut: &[f32] = if self.params.metric == Metric::Dot {
            tables.get::<Vec<f32>>()
        } else {
            scratch
        };
        if !self.fast_scan {
            return pq_adc(codes.as_slice(), m, ksub, lut, coarse, scores);
        }
        FAST_SCAN_SCRATCH.with_borrow_mut(|(bytes, sums)| {
            bytes.resize(padded_subspaces(m) * ksub, 0);
            let (scale, bias) = quantize_tables(lut, m, bytes);
            sums.resize(scores.len().div_ceil(BLOCK_ROWS) * BLOCK_ROWS, 0);
            scan_blocks(codes.as_slice(), m, bytes, sums);
            dequantize(sums, scale, bias, coarse, scores);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantizer::IndexKind;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    #[test]
    fn four_bit_codes_are_scanned_with_byte_tables_within_half_a_step_per_subspace() {
        let (dim, m, partitions, rows) = (32, 16, 3, 75);
        for metric in [Metric::L2, Metric::Dot] {
            let params = QuantizerParams {
                kind: IndexKind::IvfPq,
                dim,
                metric,
                num_sub_vectors: m,
                num_bits: 4,
            };
            let codebooks = ScalarBuffer::from(values(16 * dim, 1));
            let centroids = ScalarBuffer::from(values(partitions * dim, 2));
            let pq = ProductCodes::new(params, codebooks, centroids).unwrap();
            let codes: Vec<u8> = (0..rows * m)
                .map(|i| ((i * 7 + i / 5) % 16) as u8)
                .collect();
            let arranged = pq.arrange(Buffer::from_vec(codes.clone()));
            assert_ne!(arranged.len(), codes.len(), "packed into scan blocks");
            let query = values(dim, 3);
            let tables = pq.prepare(&query);
            for p in 0..partitions {
                let mut scratch = vec![];
                pq.prepare_partition(p, &tables, &mut scratch);
                let mut got = vec![0.0; rows];
                pq.scan(p, 0.5, &query, &tables, &arranged, &mut got, &mut scratch);
                let lut: &[f32] = match metric {
                    Metric::Dot => tables.get::<Vec<f32>>(),
                    _ => &scratch,
                };
                let mut want = vec![0.0; rows];
                pq_adc(&codes, m, 16, lut, 0.5, &mut want);
                let mut bytes = vec![0; padded_subspaces(m) * 16];
                let (step, _) = quantize_tables(lut, m, &mut bytes);
                let bound = m as f32 * step / 2.0 + 1e-4 * want[0].abs().max(1.0);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= bound, "{metric:?} p={p}: {g} vs {w}");
                }
            }
        }
        // 8-bit codes are scanned as stored.
        let params = QuantizerParams {
            kind: IndexKind::IvfPq,
            dim,
            metric: Metric::L2,
            num_sub_vectors: m,
            num_bits: 8,
        };
        let pq = ProductCodes::new(
            params,
            ScalarBuffer::from(values(256 * dim, 4)),
            ScalarBuffer::from(values(dim, 5)),
        )
        .unwrap();
        let codes = Buffer::from_vec(vec![9u8; 3 * m]);
        assert_eq!(pq.arrange(codes.clone()), codes);
    }
}
