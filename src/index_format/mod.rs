//! The on-disk form of a vector index (see `docs/INDEX_FORMAT.md`): one model file and any
//! number of segment files, all in one container format.
//!
//! Below both wings that use it: the builder (`crate::index`) writes these files and the
//! searcher (`crate::search`) reads them, and neither reaches into the other.

mod file;
mod model;
mod segment;

pub use file::{FORMAT_VERSION, IndexFile, IndexHeader, IndexWriter, PartitionEntry, SectionMeta};
pub use model::{IndexModel, SECTION_CENTROIDS};
pub use segment::{SegmentFile, SegmentWriter};
