//! Deletion vectors: which row offsets of a fragment are deleted.
//!
//! Deleting never rewrites data. A `DELETE` writes, for each fragment it touches, a new
//! roaring bitmap holding the old deletions plus the new ones, and the next manifest points
//! at it. Row addresses therefore never change.

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::common::{exec_datafusion_err, exec_err};
use datafusion::error::{DataFusionError, Result};
use object_store::{ObjectStoreExt, PutPayload};
use roaring::RoaringBitmap;

use super::location::DatasetLocation;
use super::manifest::{DeletionMeta, FragmentMeta};

/// Reads the deletion vector of a fragment (empty when it has none).
pub async fn read_deletions(
    location: &DatasetLocation,
    fragment: &FragmentMeta,
) -> Result<RoaringBitmap> {
    let Some(meta) = &fragment.deletion else {
        return Ok(RoaringBitmap::new());
    };
    let unreadable = |e: object_store::Error| {
        exec_datafusion_err!(
            "the deletion file {} of fragment {} (dataset {}) cannot be read: {e}. Without it \
             the fragment's deleted rows are unknown; restore the file from a backup, or query \
             a version from before the deletion (VERSION AS OF n)",
            meta.file,
            fragment.id,
            location.uri
        )
    };
    let bytes = location
        .store
        .get(&location.path(&meta.file))
        .await
        .map_err(unreadable)?
        .bytes()
        .await
        .map_err(unreadable)?;
    if let Some(expected) = meta.crc32 {
        let actual = crc32fast::hash(&bytes);
        if actual != expected {
            return exec_err!(
                "deletion file {} of dataset {} fails its checksum (stored crc32 {expected:08x}, \
                 computed {actual:08x}): it changed after it was written. Restore it from a \
                 backup, or query a version from before the deletion (VERSION AS OF n)",
                meta.file,
                location.uri
            );
        }
    }
    let bitmap = RoaringBitmap::deserialize_from(&bytes[..]).map_err(|e| {
        exec_datafusion_err!(
            "deletion file {} of dataset {} is corrupted: {e}",
            meta.file,
            location.uri
        )
    })?;
    if bitmap.len() != meta.deleted_rows {
        return exec_err!(
            "deletion file {} of dataset {} holds {} rows, the manifest says {}",
            meta.file,
            location.uri,
            bitmap.len(),
            meta.deleted_rows
        );
    }
    Ok(bitmap)
}

/// Writes a new deletion vector file for `fragment_id` and returns its manifest entry.
pub async fn write_deletions(
    location: &DatasetLocation,
    fragment_id: u32,
    bitmap: &RoaringBitmap,
) -> Result<DeletionMeta> {
    let file = super::files::new_deletion_file(fragment_id);
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    bitmap
        .serialize_into(&mut bytes)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let crc32 = Some(crc32fast::hash(&bytes));
    location
        .store
        .put(&location.path(&file), PutPayload::from(bytes))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(DeletionMeta {
        file,
        deleted_rows: bitmap.len(),
        crc32,
    })
}

/// A keep-mask for rows `[start, start + len)`: false where the row is deleted.
/// `None` when nothing in the range is deleted (the common case, no allocation).
pub fn keep_mask(deleted: &RoaringBitmap, start: u32, len: u32) -> Option<BooleanArray> {
    let end = start.saturating_add(len);
    let mut in_range = deleted.range(start..end).peekable();
    in_range.peek()?;
    let mut keep = vec![true; len as usize];
    for row in in_range {
        keep[(row - start) as usize] = false;
    }
    Some(BooleanArray::new(BooleanBuffer::from(keep), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_marks_only_rows_in_range() {
        let deleted: RoaringBitmap = [1u32, 5, 9, 10].into_iter().collect();
        assert!(keep_mask(&deleted, 11, 5).is_none());
        let mask = keep_mask(&deleted, 4, 6).unwrap();
        let got: Vec<bool> = mask.iter().map(|v| v.unwrap()).collect();
        assert_eq!(got, vec![true, false, true, true, true, false]);
    }
}
