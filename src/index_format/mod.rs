//! The on-disk form of a vector index: its kinds and its file (see `docs/INDEX_FORMAT.md`).
//!
//! Below both wings that use it: the builder (`crate::index`) writes these files and the
//! searcher (`crate::search`) reads them, and neither reaches into the other.

mod file;
mod kind;

pub use file::{
    FORMAT_VERSION, IndexFile, IndexHeader, IndexWriter, PartitionEntry, SECTION_CENTROIDS,
    SECTION_PQ_CODEBOOKS, SECTION_SQ_BOUNDS, SectionMeta,
};
pub use kind::IndexKind;
