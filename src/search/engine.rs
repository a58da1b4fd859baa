//! Top-k search over one dataset version: through a vector index when one fits, exactly
//! otherwise, with the exactness rules that make it the same query as the exact plan:
//!
//! - deleted rows never appear (the version's deletion vectors are checked);
//! - rows of fragments the index does not cover (appended after the build) are searched
//!   exactly and merged;
//! - a filter is applied *before* the top-k: candidates are checked against the set of rows
//!   the filter allows, probing widens until k allowed rows are found (or every partition was
//!   probed), and a very selective filter switches to an exact search of the allowed rows;
//! - the final k are ordered by the exact distance, so results and `_distance` equal what the
//!   SQL distance function computes.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::error::Result;
use roaring::RoaringBitmap;
use vecfusion_kernels::topk::TopK;

use super::loaded::LoadedIndex;
use crate::dataset::{Dataset, VectorColumn, row_address, split_row_address};
use crate::metric::Metric;
use crate::udf::DistanceFunction;

/// Rows a filter allows, per fragment. `None` where used means "every row".
pub type AllowedRows = HashMap<u32, RoaringBitmap>;

/// How to search.
#[derive(Debug, Clone, Copy)]
pub struct SearchParams {
    pub k: usize,
    pub nprobes: usize,
    pub refine_factor: usize,
    pub use_index: bool,
}

/// What a search did, for `EXPLAIN ANALYZE` and tests.
#[derive(Debug, Clone, Default)]
pub struct SearchStats {
    /// The index used, if any.
    pub index: Option<String>,
    pub partitions_probed: usize,
    /// Rows whose approximate distance was computed from index codes.
    pub rows_scored: usize,
    /// Rows whose exact distance was computed (refinement, unindexed fragments, exact search).
    pub rows_exact: usize,
}

/// Rows found, closest first, with their exact distance as the SQL function computes it.
#[derive(Debug, Clone, Default)]
pub struct SearchOutcome {
    pub addresses: Vec<u64>,
    pub distances: Vec<f32>,
    pub stats: SearchStats,
}

/// The metric an index must have to answer a distance function.
pub fn metric_of(function: DistanceFunction) -> Metric {
    match function {
        DistanceFunction::L2 => Metric::L2,
        DistanceFunction::Cosine => Metric::Cosine,
        DistanceFunction::InnerProduct | DistanceFunction::NegativeInnerProduct => Metric::Dot,
    }
}

/// Ordering key of an exact distance value: smaller is closer (inner product: larger is).
fn key(function: DistanceFunction, value: f32) -> f32 {
    let k = if function == DistanceFunction::InnerProduct {
        -value
    } else {
        value
    };
    // NaN (e.g. cosine of a zero vector) sorts after every number, as in ORDER BY.
    if k.is_nan() { f32::INFINITY } else { k }
}

/// Per-fragment state the search needs: deletions, and the vector column when read.
struct Fragments {
    deleted: HashMap<u32, Arc<RoaringBitmap>>,
    vectors: HashMap<u32, Arc<VectorColumn>>,
}

impl Fragments {
    async fn load(dataset: &Dataset, column: usize) -> Result<Self> {
        let mut deleted = HashMap::new();
        let mut vectors = HashMap::new();
        for f in dataset.fragments() {
            let d = dataset.deletions(f).await?;
            if !d.is_empty() {
                deleted.insert(f.id, d);
            }
            let reader = dataset.fragment_reader(f).await?;
            vectors.insert(f.id, reader.vector_column(column)?);
        }
        Ok(Self { deleted, vectors })
    }

    fn visible(&self, frag: u32, offset: u32, allowed: Option<&AllowedRows>) -> bool {
        if self.deleted.get(&frag).is_some_and(|d| d.contains(offset)) {
            return false;
        }
        allowed.is_none_or(|a| a.get(&frag).is_some_and(|rows| rows.contains(offset)))
    }

    fn vector(&self, addr: u64) -> Option<&[f32]> {
        let (frag, offset) = split_row_address(addr);
        self.vectors.get(&frag)?.get(offset as usize)
    }
}

/// Searches `dataset` (one version) for the `params.k` rows whose `column` is closest to
/// `query` under `function`, among the rows `allowed` (all rows when `None`).
pub async fn search(
    dataset: &Dataset,
    column: usize,
    function: DistanceFunction,
    query: &[f32],
    params: SearchParams,
    allowed: Option<&AllowedRows>,
) -> Result<SearchOutcome> {
    let name = dataset.schema().field(column).name().clone();
    let fragments = Fragments::load(dataset, column).await?;
    let metric = metric_of(function);
    let meta = dataset
        .manifest()
        .indexes
        .iter()
        .rev()
        .find(|i| i.column == name && i.metric == metric.name());
    let index = match (params.use_index, meta) {
        (true, Some(meta)) => Some(LoadedIndex::open(dataset, meta).await?),
        _ => None,
    };
    let mut stats = SearchStats::default();
    let k = params.k;
    let mut exact = TopK::new(k);
    let mut approx = TopK::new(k * params.refine_factor.max(1));

    // A very selective filter: scoring the allowed rows exactly is cheaper than probing.
    let allowed_rows: Option<u64> = allowed.map(|a| a.values().map(|b| b.len()).sum());
    let index = match (index, allowed_rows) {
        (Some(ix), Some(n)) => {
            let probed_share = params.nprobes as f64 / ix.partitions.max(1) as f64;
            let indexed = ix.meta.rows_indexed.max(1) as f64;
            (n as f64 > (indexed * probed_share).max(1000.0)).then_some(ix)
        }
        (ix, _) => ix,
    };

    let visit_exact = |exact: &mut TopK, stats: &mut SearchStats, addr: u64| {
        if let Some(v) = fragments.vector(addr) {
            stats.rows_exact += 1;
            exact.push(key(function, function.eval(v, query)), addr);
        }
    };
    // Rows the index does not hold, searched exactly: everything without an index, else the
    // fragments it does not cover.
    for f in dataset.fragments() {
        if index.as_ref().is_some_and(|ix| ix.covers(f.id)) {
            continue;
        }
        let vectors = &fragments.vectors[&f.id];
        let deleted = fragments.deleted.get(&f.id);
        let mut visit = |offset: u32| {
            if deleted.is_some_and(|d| d.contains(offset)) {
                return;
            }
            if let Some(v) = vectors.get(offset as usize) {
                stats.rows_exact += 1;
                exact.push(
                    key(function, function.eval(v, query)),
                    row_address(f.id, offset),
                );
            }
        };
        match allowed {
            Some(a) => a
                .get(&f.id)
                .into_iter()
                .flat_map(|b| b.iter())
                .for_each(&mut visit),
            None => (0..f.physical_rows as u32).for_each(&mut visit),
        }
    }

    if let Some(ix) = &index {
        stats.index = Some(ix.meta.name.clone());
        let q = ix.prepare(query);
        let order = ix.rank_partitions(&q);
        let (mut scores, mut lut) = (vec![], vec![]);
        let mut found = 0usize;
        for (probed, &(coarse, p)) in order.iter().enumerate() {
            // Probe `nprobes` partitions, and more while fewer than k allowed rows were seen.
            if probed >= params.nprobes && found >= k {
                break;
            }
            let addrs = ix.scan_partition(p, coarse, &q, &mut scores, &mut lut)?;
            stats.partitions_probed += 1;
            stats.rows_scored += addrs.len();
            if allowed.is_none() && fragments.deleted.is_empty() {
                found += addrs.len();
                approx.push_all(&scores, &addrs);
            } else {
                for (a, s) in addrs.iter().zip(&scores) {
                    let (frag, offset) = split_row_address(*a);
                    if fragments.visible(frag, offset, allowed) {
                        found += 1;
                        approx.push(*s, *a);
                    }
                }
            }
        }
        // Refine: exact distances for the best candidates.
        for (_, addr) in approx.into_sorted() {
            visit_exact(&mut exact, &mut stats, addr);
        }
    }

    let best = exact.into_sorted();
    let mut out = SearchOutcome {
        addresses: Vec::with_capacity(best.len()),
        distances: Vec::with_capacity(best.len()),
        stats,
    };
    for (_, addr) in best {
        let v = fragments.vector(addr).expect("candidate has a vector");
        out.addresses.push(addr);
        out.distances.push(function.eval(v, query));
    }
    Ok(out)
}

impl SearchOutcome {
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}
