//! Compaction's data half: rewriting the live rows of some fragments into fewer, larger ones,
//! and recording where every row went (so indexes can carry their codes over by row).
//!
//! The new fragments' ids are fixed when their files are written — index segments written
//! for them carry row addresses — so they are taken [`RESERVED_IDS`] past the version's
//! `next_fragment_id`: appends committed meanwhile take the ids in between, and the
//! compaction commits on top of them (it fails with a conflict only if more than that many
//! fragments were appended while it ran).

use std::collections::HashMap;

use datafusion::arrow::compute::filter_record_batch;
use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;

use super::deletion::keep_mask;
use super::{Dataset, NewFragment, RowAddress, row_address, split_row_address};

/// How far past `next_fragment_id` a compaction numbers its fragments.
pub const RESERVED_IDS: u32 = 1024;

/// One rewritten fragment: its file, the id it will have, and the row map of its sources.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub id: u32,
    pub fragment: NewFragment,
    /// The fragments whose live rows it holds, in order.
    pub sources: Vec<u32>,
    /// Per source fragment, the new offset of each old offset (`u32::MAX`: the row was
    /// deleted and is gone).
    offsets: HashMap<u32, Vec<u32>>,
}

impl Rewritten {
    /// Where the row at `address` (of a source fragment) lives now, if it survived.
    pub fn remap(&self, address: RowAddress) -> Option<RowAddress> {
        let (fragment, offset) = split_row_address(address);
        let new = *self.offsets.get(&fragment)?.get(offset as usize)?;
        (new != u32::MAX).then(|| row_address(self.id, new))
    }
}

impl Dataset {
    /// Writes the live rows of each group of `bins` (fragment ids of this version) as one new
    /// fragment, the `i`-th numbered `first_id + i`. Nothing is committed; on an error the
    /// files written so far are left for cleanup.
    pub async fn rewrite_fragments(
        &self,
        bins: &[Vec<u32>],
        first_id: u32,
    ) -> Result<Vec<Rewritten>> {
        let mut out = Vec::with_capacity(bins.len());
        for (i, bin) in bins.iter().enumerate() {
            let id = first_id
                .checked_add(i as u32)
                .ok_or_else(|| exec_datafusion_err!("fragment ids exhausted"))?;
            let mut writer = self.fragment_writer()?;
            let mut offsets = HashMap::new();
            let written: Result<()> = async {
                let mut next = 0u32;
                for source in bin {
                    let meta = self.fragment(*source).ok_or_else(|| {
                        exec_datafusion_err!(
                            "fragment {source} is not in version {}",
                            self.version()
                        )
                    })?;
                    let reader = self.fragment_reader(meta).await?;
                    let deleted = self.deletions(meta).await?;
                    let mut map = vec![u32::MAX; meta.physical_rows as usize];
                    for b in 0..reader.num_batches() {
                        let start = reader.batch_start(b);
                        let batch = reader.read_batch(b, None)?;
                        let rows = batch.num_rows();
                        let batch = match keep_mask(&deleted, start as u32, rows as u32) {
                            Some(mask) => {
                                for (r, keep) in mask.values().iter().enumerate() {
                                    if keep {
                                        map[start + r] = next;
                                        next += 1;
                                    }
                                }
                                filter_record_batch(&batch, &mask)?
                            }
                            None => {
                                for slot in &mut map[start..start + rows] {
                                    *slot = next;
                                    next += 1;
                                }
                                batch
                            }
                        };
                        if batch.num_rows() > 0 {
                            writer.write(batch).await?;
                        }
                    }
                    offsets.insert(*source, map);
                }
                Ok(())
            }
            .await;
            if let Err(e) = written {
                writer.abort().await;
                return Err(e);
            }
            let Some(fragment) = writer.finish().await? else {
                // Every row of the bin was deleted: the fragments go, nothing replaces them.
                continue;
            };
            out.push(Rewritten {
                id,
                fragment,
                sources: bin.clone(),
                offsets,
            });
        }
        Ok(out)
    }
}
