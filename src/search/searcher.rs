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

use datafusion::error::Result;
use vecfusion_kernels::prefetch::prefetch;
use vecfusion_kernels::topk::TopK;

use super::loaded::{LoadedIndex, PreparedQuery};
use super::prefilter::{AllowedRows, allowed_count};
use super::settings::SearchParams;
use super::version_vectors::VersionVectors;
use crate::dataset::{Dataset, IndexMeta, row_address, split_row_address};
use crate::metric::DistanceFunction;

/// Below this many allowed rows a filtered search scores them exactly rather than probing
/// the index, whatever the index's size: a few thousand exact distances cost less than
/// opening partitions.
const EXACT_SEARCH_MIN_ROWS: f64 = 1000.0;

/// How many candidate rows ahead of the one it scores a refinement requests from memory:
/// enough misses in flight to hide DRAM latency behind 128-d rows, few enough that 784-d
/// ones (49 lines each) do not overflow the core's outstanding-miss queue.
const REFINE_AHEAD: usize = 4;

/// What a search runs against: one dataset version, its vector column, the distance that
/// ranks, the index it probes (`None`: an exact search) and how.
#[derive(Debug, Clone)]
pub struct SearchTarget {
    pub dataset: Dataset,
    /// Position of the vector column in the table schema.
    pub column: usize,
    pub function: DistanceFunction,
    /// Position in the version's `manifest().indexes` of the index to probe (a position,
    /// not a copy: targets are made per query).
    pub index: Option<usize>,
    pub params: SearchParams,
}

impl SearchTarget {
    /// The index the search probes, if any.
    pub fn index_meta(&self) -> Option<&IndexMeta> {
        self.index.map(|i| &self.dataset.manifest().indexes[i])
    }
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

/// Searches the target's dataset version — whose vectors and index are `version`, see
/// [`VersionVectors::of`] — for the `params.k` rows whose vector is closest to `query`,
/// among the rows `allowed` (all rows when `None`). Runs on the calling thread: nothing
/// in it waits.
pub fn search(
    target: &SearchTarget,
    version: &VersionVectors,
    query: &[f32],
    allowed: Option<&AllowedRows>,
) -> Result<SearchOutcome> {
    let index = probed_index(target, version, allowed);
    let prepared = index.map(|ix| ix.prepare(query));
    let probe = index.zip(prepared.as_ref().and_then(|p| p.first()));
    search_prepared(target, version, query, probe, allowed)
}

/// The index a search of `target` among the rows `allowed` probes, if any: none when the
/// target has none, or when the filter is so selective that scoring the allowed rows
/// exactly is cheaper than probing the share of the index the probes would score. The same
/// for every query of a request, so a batch prepares its queries for it together.
pub fn probed_index<'a>(
    target: &SearchTarget,
    version: &'a VersionVectors,
    allowed: Option<&AllowedRows>,
) -> Option<&'a LoadedIndex> {
    let index = version.index()?;
    match allowed {
        Some(a) => {
            let probed_share = target.params.nprobes as f64 / index.partitions().max(1) as f64;
            let indexed = index.rows_indexed().max(1) as f64;
            let probed_rows = (indexed * probed_share).max(EXACT_SEARCH_MIN_ROWS);
            (allowed_count(a) as f64 > probed_rows).then_some(index.as_ref())
        }
        None => Some(index.as_ref()),
    }
}

/// [`search`] with the query already prepared for the index [`probed_index`] chose
/// (`probe`; `None`: an exact search).
pub fn search_prepared(
    target: &SearchTarget,
    version: &VersionVectors,
    query: &[f32],
    probe: Option<(&LoadedIndex, &PreparedQuery)>,
    allowed: Option<&AllowedRows>,
) -> Result<SearchOutcome> {
    let (dataset, function, params) = (&target.dataset, target.function, target.params);
    let mut stats = SearchStats::default();
    let k = params.k;
    let mut exact = TopK::new(k);
    // Never more candidates than rows.
    let candidates = k.saturating_mul(params.refine_factor.max(1));
    let mut approx =
        TopK::new(candidates.min(dataset.count_rows().try_into().unwrap_or(usize::MAX)));

    // Rows the index does not hold, searched exactly: everything without an index, else the
    // fragments it does not cover.
    for f in version.fragments() {
        let id = f.meta.id;
        if probe.is_some_and(|(ix, _)| ix.covers(id)) {
            continue;
        }
        let (vectors, deleted) = (&f.vectors, f.deleted.as_ref());
        let mut visit = |offset: u32| {
            if deleted.is_some_and(|d| d.contains(offset)) {
                return;
            }
            if let Some(v) = vectors.get(offset as usize) {
                stats.rows_exact += 1;
                exact.push(
                    function.closeness_key(function.eval(v, query)),
                    row_address(id, offset),
                );
            }
        };
        match allowed {
            Some(a) => a
                .get(&id)
                .into_iter()
                .flat_map(|b| b.iter())
                .for_each(&mut visit),
            None => (0..f.meta.physical_rows as u32).for_each(&mut visit),
        }
    }

    let unfiltered = allowed.is_none() && !version.has_deletions();
    if let Some((ix, q)) = probe {
        stats.index = Some(ix.name.clone());
        let mut order = ix.rank_partitions(q, params.nprobes);
        let (mut scores, mut lut) = (vec![], vec![]);
        let mut found = 0usize;
        for probed in 0..order.len() {
            // Probe `nprobes` partitions, and more while fewer than k allowed rows were seen.
            if probed >= params.nprobes && found >= k {
                break;
            }
            let (coarse, p) = order.get(probed);
            // The partition's rows in every segment, scored with one prepared table.
            ix.prepare_partition(p, q, &mut lut);
            for segment in &ix.segments {
                let addrs = ix.scan_partition(segment, p, coarse, q, &mut scores, &mut lut)?;
                stats.rows_scored += addrs.len();
                if unfiltered {
                    found += addrs.len();
                    approx.push_all(&scores, &addrs);
                } else {
                    for (a, s) in addrs.iter().zip(&scores) {
                        let (frag, offset) = split_row_address(*a);
                        if version.visible(frag, offset, allowed) {
                            found += 1;
                            approx.push(*s, *a);
                        }
                    }
                }
            }
            stats.partitions_probed += 1;
        }
        // Refine: exact distances for the best candidates. Their rows are scattered over the
        // table, so each is requested `REFINE_AHEAD` rows before it is scored and the cache
        // misses overlap instead of following one another.
        let rows: Vec<(u64, &[f32])> = approx
            .into_sorted()
            .into_iter()
            .filter_map(|(_, addr)| Some((addr, version.vector(addr)?)))
            .collect();
        rows.iter()
            .take(REFINE_AHEAD)
            .for_each(|(_, v)| prefetch(v));
        for (i, (addr, v)) in rows.iter().enumerate() {
            if let Some((_, ahead)) = rows.get(i + REFINE_AHEAD) {
                prefetch(ahead);
            }
            stats.rows_exact += 1;
            exact.push(function.closeness_key(function.eval(v, query)), *addr);
        }
    }

    let best = exact.into_sorted();
    let mut out = SearchOutcome {
        addresses: Vec::with_capacity(best.len()),
        distances: Vec::with_capacity(best.len()),
        stats,
    };
    for (_, addr) in best {
        // Every candidate was scored from its vector, so each has one.
        if let Some(v) = version.vector(addr) {
            out.addresses.push(addr);
            out.distances.push(function.eval(v, query));
        }
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
