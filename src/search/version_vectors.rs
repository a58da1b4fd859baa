//! What every search of one dataset version reads besides its query: per fragment, the
//! deleted rows and the vector column; and the index it probes, opened.
//!
//! Gathering it walks every fragment (deletion vectors, readers, columns), which a query of
//! a table with many fragments would otherwise repeat each time. It is built once per version
//! handle, column and index, and cached with the version, so a query pays one lookup for it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::error::Result;
use roaring::RoaringBitmap;

use super::loaded::LoadedIndex;
use super::prefilter::AllowedRows;
use crate::dataset::{Dataset, FragmentMeta, RowAddress, VectorColumn, split_row_address};

/// One fragment as searches read it.
#[derive(Debug)]
pub struct FragmentVectors {
    pub meta: FragmentMeta,
    /// Its deleted rows, `None` when it has none.
    pub deleted: Option<Arc<RoaringBitmap>>,
    pub vectors: Arc<VectorColumn>,
}

/// The vectors of one column of one version, with what hides rows, and the opened index.
#[derive(Debug)]
pub struct VersionVectors {
    fragments: Vec<FragmentVectors>,
    /// Position in `fragments` of every fragment id.
    positions: HashMap<u32, usize>,
    index: Option<Arc<LoadedIndex>>,
}

impl VersionVectors {
    /// The vectors of `column` in `dataset`'s version, and the index at position `index` of
    /// its manifest opened. Cached with the version when the dataset is local (its files are
    /// mapped, so holding the columns costs address space, not memory); a remote dataset's
    /// fragments are whole-file copies, read per search so that memory stays bounded.
    pub async fn of(dataset: &Dataset, column: usize, index: Option<usize>) -> Result<Arc<Self>> {
        if dataset.location().local_root.is_none() {
            return Ok(Arc::new(Self::load(dataset, column, index).await?));
        }
        let key = format!("search:{column}:{index:?}");
        dataset
            .cached_for_version(&key, || Self::load(dataset, column, index))
            .await
    }

    async fn load(dataset: &Dataset, column: usize, index: Option<usize>) -> Result<Self> {
        let mut fragments = Vec::with_capacity(dataset.fragments().len());
        for f in dataset.fragments() {
            let deleted = dataset.deletions(f).await?;
            let reader = dataset.fragment_reader(f).await?;
            fragments.push(FragmentVectors {
                meta: f.clone(),
                deleted: (!deleted.is_empty()).then_some(deleted),
                vectors: reader.vector_column(column)?,
            });
        }
        let index = match index.map(|i| &dataset.manifest().indexes[i]) {
            Some(meta) => Some(LoadedIndex::open(dataset, meta).await?),
            None => None,
        };
        Ok(Self {
            positions: fragments
                .iter()
                .enumerate()
                .map(|(i, f)| (f.meta.id, i))
                .collect(),
            fragments,
            index,
        })
    }

    pub fn fragments(&self) -> &[FragmentVectors] {
        &self.fragments
    }

    /// The index searches probe, opened (`None`: exact search).
    pub fn index(&self) -> Option<&Arc<LoadedIndex>> {
        self.index.as_ref()
    }

    /// Whether any row of the version is deleted.
    pub fn has_deletions(&self) -> bool {
        self.fragments.iter().any(|f| f.deleted.is_some())
    }

    /// Whether the row at `frag`/`offset` is live and, with a filter, allowed by it.
    pub fn visible(&self, frag: u32, offset: u32, allowed: Option<&AllowedRows>) -> bool {
        let Some(f) = self.positions.get(&frag).map(|p| &self.fragments[*p]) else {
            return false;
        };
        if f.deleted.as_ref().is_some_and(|d| d.contains(offset)) {
            return false;
        }
        allowed.is_none_or(|a| a.get(&frag).is_some_and(|rows| rows.contains(offset)))
    }

    /// The vector at `addr`, if the version has that row.
    pub fn vector(&self, addr: RowAddress) -> Option<&[f32]> {
        let (frag, offset) = split_row_address(addr);
        let f = &self.fragments[*self.positions.get(&frag)?];
        f.vectors.get(offset as usize)
    }
}
