//! `OPTIMIZE TABLE` (compaction): small fragments and fragments with many deleted rows are
//! rewritten into fewer, larger ones, and in the same commit every index segment that covered
//! them is remapped — the codes carried over by row, nothing retrained. Every live row
//! survives exactly once; older versions still read the old files until cleanup.
//!
//! Fragments are grouped only with fragments covered by the same segment of every index (or
//! by none), so each new fragment is wholly inside one segment per index, as the segment
//! invariants require. Concurrent appends commute (the new fragments' ids are reserved past
//! them, see `dataset::compact`); a concurrent DELETE or UPDATE of a rewritten fragment, or a
//! change to a remapped segment, makes the commit fail with a conflict, and nothing is lost.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use datafusion::error::Result;

use super::blocks;
use crate::dataset::compact::RESERVED_IDS;
use crate::dataset::{Dataset, FragmentMeta, Operation, SegmentSwap};
use crate::index_format::IndexModel;

/// Fragments with more than this share of deleted rows are rewritten whatever their size.
pub const MAX_DELETED_SHARE: f64 = 0.1;

/// What a compaction did: one row of `OPTIMIZE TABLE`'s result.
#[derive(Debug, Clone)]
pub struct CompactReport {
    pub fragments_before: usize,
    pub fragments_after: usize,
    /// Live rows copied into new fragments.
    pub rows_rewritten: u64,
    /// Index segments rewritten with remapped addresses.
    pub segments_remapped: usize,
    pub version: u64,
    pub seconds: f64,
    pub message: String,
}

fn needs_rewrite(f: &FragmentMeta, target_rows: u64) -> bool {
    let deleted_share = f.deleted_rows() as f64 / f.physical_rows.max(1) as f64;
    f.live_rows() < target_rows || deleted_share > MAX_DELETED_SHARE
}

/// Groups of fragment ids, each to become one fragment of at most `target_rows` live rows
/// (a fragment larger than that alone). Groups that would not change anything — one fragment
/// without deleted rows — are left out.
fn plan_bins(dataset: &Dataset, target_rows: u64) -> Vec<Vec<u32>> {
    let indexes = &dataset.manifest().indexes;
    // The segment of every index that covers a fragment: fragments group only with their own.
    let signature = |id: u32| -> Vec<Option<usize>> {
        indexes
            .iter()
            .map(|i| i.segments.iter().position(|s| s.fragments.contains(&id)))
            .collect()
    };
    let mut groups: BTreeMap<Vec<Option<usize>>, Vec<&FragmentMeta>> = BTreeMap::new();
    for f in dataset.fragments() {
        if needs_rewrite(f, target_rows) {
            groups.entry(signature(f.id)).or_default().push(f);
        }
    }
    let mut bins = vec![];
    for fragments in groups.values() {
        let (mut bin, mut rows) = (vec![], 0u64);
        for f in fragments {
            if !bin.is_empty() && rows + f.live_rows() > target_rows {
                bins.push(std::mem::take(&mut bin));
                rows = 0;
            }
            bin.push(*f);
            rows += f.live_rows();
        }
        bins.push(bin);
    }
    bins.into_iter()
        .filter(|b| b.len() > 1 || b.first().is_some_and(|f| f.deleted_rows() > 0))
        .map(|b| b.iter().map(|f| f.id).collect())
        .collect()
}

/// Compacts `dataset` (the version read) into fragments of about `target_rows` rows.
pub async fn compact(dataset: &Dataset, target_rows: u64) -> Result<CompactReport> {
    let started = Instant::now();
    let fragments_before = dataset.fragments().len();
    let bins = plan_bins(dataset, target_rows);
    if bins.is_empty() {
        return Ok(CompactReport {
            fragments_before,
            fragments_after: fragments_before,
            rows_rewritten: 0,
            segments_remapped: 0,
            version: dataset.version(),
            seconds: started.elapsed().as_secs_f64(),
            message: format!(
                "nothing to do: no fragment is smaller than {target_rows} rows or has more than \
                 {:.0}% of its rows deleted",
                MAX_DELETED_SHARE * 100.0
            ),
        });
    }
    let first_id = dataset
        .manifest()
        .next_fragment_id
        .saturating_add(RESERVED_IDS);
    let rewritten = dataset.rewrite_fragments(&bins, first_id).await?;
    let removed: HashSet<u32> = bins.iter().flatten().copied().collect();

    // Every segment that held rows of a rewritten fragment gets its rows at their new places.
    let location = dataset.location();
    let mut swaps = vec![];
    let mut segments_remapped = 0;
    for index in &dataset.manifest().indexes {
        let touched: Vec<_> = index
            .segments
            .iter()
            .filter(|s| s.fragments.iter().any(|f| removed.contains(f)))
            .collect();
        if touched.is_empty() {
            continue;
        }
        let model = IndexModel::open(location, &index.model.file).await?;
        let mut swap = SegmentSwap {
            index: index.name.clone(),
            model_id: index.model.id.clone(),
            removed: vec![],
            added: vec![],
        };
        for segment in touched {
            let new = blocks::remap(&model, segment, &removed, &rewritten, location).await?;
            swap.removed.push(segment.file.clone());
            swap.added.push(new.meta);
            segments_remapped += 1;
        }
        swaps.push(swap);
    }
    let rows_rewritten = rewritten.iter().map(|r| r.fragment.physical_rows).sum();
    let fragments_after = fragments_before - removed.len() + rewritten.len();
    let committed = dataset
        .commit(&Operation::Compact {
            removed: removed.iter().copied().collect(),
            fragments: rewritten
                .iter()
                .map(|r| (r.id, r.fragment.clone()))
                .collect(),
            indexes: swaps,
        })
        .await?;
    Ok(CompactReport {
        fragments_before,
        fragments_after,
        rows_rewritten,
        segments_remapped,
        version: committed.version(),
        seconds: started.elapsed().as_secs_f64(),
        message: format!(
            "rewrote {} fragments into {} ({rows_rewritten} rows); {segments_remapped} index \
             segments remapped",
            removed.len(),
            rewritten.len()
        ),
    })
}
