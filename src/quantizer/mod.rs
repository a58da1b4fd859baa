//! The quantizer contract: what an index kind stores for each row and how a query scores it.
//!
//! Every index kind is an IVF model (centroids) plus a [`Quantizer`]: IVF_FLAT keeps the
//! vectors ([`flat`]), IVF_SQ 8-bit scalar codes ([`scalar`]), IVF_PQ product-quantized
//! residuals ([`product`]). The index builder trains and encodes through the trait, the model
//! file stores the sections it names, and the searcher prepares queries and scans partitions
//! through it — none of them matches on the kind. Adding a kind is one file implementing
//! [`Quantizer`] plus its line in [`IndexKind`], [`train`] and [`load`].

mod flat;
mod kind;
mod product;
mod scalar;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::error::Result;

pub use kind::IndexKind;
pub use scalar::ScalarBounds;

use crate::kmeans::{Backend, Cancel, IterationInfo};
use crate::metric::Metric;

/// The shape of a quantizer, recorded in the model file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizerParams {
    pub kind: IndexKind,
    pub dim: usize,
    pub metric: Metric,
    /// Sub-vectors per row (IVF_PQ; 0 otherwise).
    pub num_sub_vectors: usize,
    /// Bits per sub-vector code (IVF_PQ: 4 or 8).
    pub num_bits: u32,
}

/// What training sees: the IVF model and rows of the build's sample.
pub struct TrainingData<'a> {
    /// Sample rows in the sample's (seeded) order, normalised for cosine, row-major.
    pub rows: &'a [f32],
    /// The trained IVF centroids (`num_partitions × dim`).
    pub centroids: &'a ScalarBuffer<f32>,
}

/// Options of quantizer training (Lloyd iterations for PQ codebooks).
#[derive(Debug, Clone)]
pub struct TrainingOptions {
    pub max_iterations: usize,
    pub tolerance: f64,
    pub seed: u64,
    pub cancel: Cancel,
}

/// A query's tables as one quantizer prepared them, opaque to the searcher.
pub struct QueryTables(Box<dyn Any + Send + Sync>);

impl QueryTables {
    fn new<T: Any + Send + Sync>(tables: T) -> Self {
        Self(Box::new(tables))
    }

    fn get<T: Any>(&self) -> &T {
        self.0
            .downcast_ref()
            .expect("query tables come from the quantizer that scans them")
    }
}

/// One index kind's codes: how rows are encoded and how a query scores encoded rows.
///
/// Rows and queries reach a quantizer already normalised when the metric is cosine. Scores
/// are "smaller is closer": squared L2 for l2/cosine, the negated inner product for dot.
pub trait Quantizer: Debug + Send + Sync {
    fn params(&self) -> &QuantizerParams;

    /// Bytes of one row's code.
    fn code_size(&self) -> usize;

    /// The named `f32` sections this quantizer stores in the model file (read back by
    /// [`load`]).
    fn sections(&self) -> Vec<(&'static str, &[f32])>;

    /// Codes of `rows` (row-major), each assigned to the IVF partition in `partitions`:
    /// `rows × code_size` bytes.
    fn encode(&self, backend: &dyn Backend, rows: &[f32], partitions: &[u32]) -> Result<Vec<u8>>;

    /// A partition's codes (row-major, as stored) laid out as [`Quantizer::scan`] reads
    /// them. Called once per partition of an opened segment, when a search first reads it;
    /// the stored format stays one layout for every reader. As stored by default.
    fn arrange(&self, codes: Buffer) -> Buffer {
        codes
    }

    /// The per-query part of scoring, computed once per query.
    fn prepare(&self, query: &[f32]) -> QueryTables;

    /// [`Quantizer::prepare`] for many queries (row-major), in order. A kind whose tables are
    /// matrix products builds them together (IVF_PQ: each codebook line read serves several
    /// queries of a batch).
    fn prepare_all(&self, queries: &[f32]) -> Vec<QueryTables> {
        let dim = self.params().dim.max(1);
        queries.chunks_exact(dim).map(|q| self.prepare(q)).collect()
    }

    /// The per-partition part of scoring, computed once per probed partition into `scratch`
    /// and used by [`Quantizer::scan`] for that partition's rows in every segment (IVF_PQ's
    /// partition-plus-query table: computing it once per segment cost 1.4–1.7× at 10
    /// segments). Nothing by default.
    fn prepare_partition(&self, _partition: usize, _tables: &QueryTables, _scratch: &mut Vec<f32>) {
    }

    /// Scores every row of one partition's code block (`codes` as [`Quantizer::arrange`]
    /// laid them out; `scores` has one slot per row). `coarse` is the query's score against
    /// the partition's centroid; `scratch` holds what [`Quantizer::prepare_partition`] wrote
    /// for this partition.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        partition: usize,
        coarse: f32,
        query: &[f32],
        tables: &QueryTables,
        codes: &Buffer,
        scores: &mut [f32],
        scratch: &mut Vec<f32>,
    );
}

/// Sample rows a kind trains on beyond the IVF sample (PQ codebooks need 256 per codeword).
pub fn training_rows(kind: IndexKind) -> usize {
    match kind {
        IndexKind::IvfPq => product::TRAINING_ROWS,
        IndexKind::IvfFlat | IndexKind::IvfSq => 0,
    }
}

/// Trains the quantizer of `params.kind` on the accelerator `backend` runs on.
pub fn train(
    params: QuantizerParams,
    data: &TrainingData<'_>,
    backend: &dyn Backend,
    options: TrainingOptions,
    progress: &mut dyn FnMut(&IterationInfo),
) -> Result<Arc<dyn Quantizer>> {
    Ok(match params.kind {
        IndexKind::IvfFlat => Arc::new(flat::FlatQuantizer::new(params)),
        IndexKind::IvfSq => Arc::new(scalar::ScalarQuantizer::new(
            params,
            ScalarBounds::trimmed(data.rows, params.dim),
        )),
        IndexKind::IvfPq => Arc::new(product::ProductCodes::train(
            params, data, backend, options, progress,
        )?),
    })
}

/// Reads back the quantizer of `params.kind` from the sections of a model file.
pub fn load(
    params: QuantizerParams,
    centroids: &ScalarBuffer<f32>,
    section: &dyn Fn(&str) -> Result<ScalarBuffer<f32>>,
) -> Result<Arc<dyn Quantizer>> {
    Ok(match params.kind {
        IndexKind::IvfFlat => Arc::new(flat::FlatQuantizer::new(params)),
        IndexKind::IvfSq => Arc::new(scalar::ScalarQuantizer::load(params, section)?),
        IndexKind::IvfPq => Arc::new(product::ProductCodes::load(params, centroids, section)?),
    })
}
