//! Product quantization: `m` codebooks of `2^bits` centroids over the `m` slices of a vector.
//!
//! All sub-spaces are trained in one Lloyd loop (each iteration assigns every sub-space in
//! the same pass over the data), and encoding is one assignment pass.

use datafusion::common::plan_err;
use datafusion::error::Result;

use super::backend::{Backend, Layout};
use super::cancel::Cancel;
use super::check_rows;
use super::init::random_rows;
use super::lloyd::{IterationInfo, LloydOptions, lloyd};
use crate::metric::Metric;

/// Options of product-quantizer training.
#[derive(Debug, Clone)]
pub struct PqParams {
    pub num_sub_vectors: usize,
    /// 8 (256 centroids per sub-space) or 4 (16).
    pub num_bits: u32,
    pub max_iterations: usize,
    pub tolerance: f64,
    pub seed: u64,
    pub cancel: Cancel,
}

/// Trained codebooks.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    pub dim: usize,
    pub num_sub_vectors: usize,
    pub num_bits: u32,
    /// `m × 2^bits × (dim / m)`.
    pub codebooks: Vec<f32>,
    pub objectives: Vec<f64>,
}

impl ProductQuantizer {
    pub fn layout(&self) -> Layout {
        Layout {
            dim: self.dim,
            subspaces: self.num_sub_vectors,
            k: 1 << self.num_bits,
        }
    }

    pub fn sub_dim(&self) -> usize {
        self.dim / self.num_sub_vectors
    }

    /// Trains on `data` (row-major; usually IVF residuals). PQ always uses L2 in each
    /// sub-space: it approximates vectors, whatever metric later compares them.
    pub fn train(
        backend: &dyn Backend,
        data: &[f32],
        dim: usize,
        params: &PqParams,
        progress: &mut dyn FnMut(&IterationInfo),
    ) -> Result<Self> {
        let n = check_rows(data, dim)?;
        let m = params.num_sub_vectors;
        if m == 0 || !dim.is_multiple_of(m) {
            return plan_err!(
                "num_sub_vectors must divide the dimension: {dim} % {m} != 0 (divisors of {dim} \
                 that work: {})",
                sub_vector_choices(dim)
            );
        }
        if !matches!(params.num_bits, 4 | 8) {
            return plan_err!("num_bits must be 4 or 8, got {}", params.num_bits);
        }
        let k = 1usize << params.num_bits;
        if n < k {
            return plan_err!(
                "product quantizer training needs at least {k} rows (2^num_bits), got {n}"
            );
        }
        let layout = Layout {
            dim,
            subspaces: m,
            k,
        };
        let init = random_rows(data, layout, params.seed);
        let options = LloydOptions {
            max_iterations: params.max_iterations,
            tolerance: params.tolerance,
            seed: params.seed,
            cancel: params.cancel.clone(),
        };
        let result = lloyd(backend, data, layout, init, Metric::L2, options, progress)?;
        Ok(Self {
            dim,
            num_sub_vectors: m,
            num_bits: params.num_bits,
            codebooks: result.centroids,
            objectives: result.objectives,
        })
    }

    /// Codes of every row, row-major `n × m`, one byte per sub-vector.
    pub fn encode(&self, backend: &dyn Backend, data: &[f32]) -> Result<Vec<u8>> {
        encode(backend, &self.codebooks, self.layout(), data)
    }

    /// The vectors the codes stand for.
    pub fn decode(&self, codes: &[u8]) -> Vec<f32> {
        let (m, ds, k) = (
            self.num_sub_vectors,
            self.sub_dim(),
            1usize << self.num_bits,
        );
        let mut out = Vec::with_capacity(codes.len() / m * self.dim);
        for row in codes.chunks_exact(m) {
            for (s, &c) in row.iter().enumerate() {
                let start = (s * k + c as usize) * ds;
                out.extend_from_slice(&self.codebooks[start..start + ds]);
            }
        }
        out
    }
}

/// The valid `num_sub_vectors` for `dim` (its divisors), for error messages.
pub fn sub_vector_choices(dim: usize) -> String {
    (1..=dim)
        .filter(|m| dim.is_multiple_of(*m))
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// PQ codes of every row of `data` against `codebooks` (laid out as `layout` says): the
/// nearest codeword of each sub-vector, one byte each. Codebooks read back from an index file
/// encode through this too.
pub fn encode(
    backend: &dyn Backend,
    codebooks: &[f32],
    layout: Layout,
    data: &[f32],
) -> Result<Vec<u8>> {
    check_rows(data, layout.dim)?;
    let a = backend.assign(data, layout, codebooks, Metric::L2)?;
    Ok(a.codes.into_iter().map(|c| c as u8).collect())
}
