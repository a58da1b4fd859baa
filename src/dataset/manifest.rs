//! The manifest: the complete description of one dataset version.
//!
//! A manifest is written once, as `_versions/<version>.manifest`, and never changed. It is
//! a one-line header followed by a JSON body:
//!
//! ```text
//! VECFUSION-MANIFEST 1 crc32=1a2b3c4d
//! {"version":3,"timestamp_ms":...,"schema":{...},"fragments":[...],...}
//! ```
//!
//! The header makes a foreign file (a Parquet file, a Lance manifest, anything) fail with
//! "not a vecfusion manifest" instead of a JSON error, and the CRC-32 of the body catches a
//! truncated or bit-flipped file before any of it is trusted.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::{exec_datafusion_err, exec_err, internal_datafusion_err};
use datafusion::error::Result;
use serde::{Deserialize, Serialize};

use crate::metric::Metric;

const MAGIC: &str = "VECFUSION-MANIFEST";
/// Manifest format this build writes; readers refuse newer formats with a clear error.
pub const FORMAT_VERSION: u32 = 1;

/// One version of a dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u64,
    /// Commit time, milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    /// What the commit that produced this version did.
    pub operation: OperationSummary,
    /// Table schema (arrow-schema's serde form); fixed when the dataset is created.
    pub schema: Schema,
    pub fragments: Vec<FragmentMeta>,
    #[serde(default)]
    pub indexes: Vec<IndexMeta>,
    /// Id the next appended fragment gets; ids are never reused, so row addresses stay unique
    /// across the whole history of the dataset.
    pub next_fragment_id: u32,
}

/// A human- and conflict-checker-readable record of the commit that wrote a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperationSummary {
    /// `CREATE`, `APPEND`, `DELETE`, `UPDATE`, `CREATE INDEX`, `DROP INDEX`.
    pub kind: String,
    #[serde(default)]
    pub rows_added: u64,
    #[serde(default)]
    pub rows_deleted: u64,
    /// Fragments whose deletion vectors this commit replaced (conflict detection).
    #[serde(default)]
    pub modified_fragments: Vec<u32>,
    /// Index added or removed by this commit (conflict detection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

/// An immutable data file (Arrow IPC) and its deletion vector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FragmentMeta {
    pub id: u32,
    /// Path of the data file relative to the dataset root (`data/<name>.arrow`).
    pub file: String,
    /// Physical rows in the file, deleted ones included.
    pub physical_rows: u64,
    /// Every record batch in the file has this many rows except the last, so a row offset
    /// maps to its batch without reading anything.
    pub rows_per_batch: u32,
    pub file_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<DeletionMeta>,
}

impl FragmentMeta {
    pub fn deleted_rows(&self) -> u64 {
        self.deletion.as_ref().map_or(0, |d| d.deleted_rows)
    }

    pub fn live_rows(&self) -> u64 {
        self.physical_rows - self.deleted_rows()
    }

    pub fn num_batches(&self) -> usize {
        (self.physical_rows as usize).div_ceil(self.rows_per_batch.max(1) as usize)
    }
}

/// A deletion vector file (a serialized roaring bitmap of deleted row offsets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeletionMeta {
    /// Path relative to the dataset root (`_deletions/<fragment>-<name>.bin`).
    pub file: String,
    pub deleted_rows: u64,
}

/// An index recorded in a version. Written by `CREATE VECTOR INDEX`; the fields describe
/// everything a reader needs to decide whether and how the index serves a query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexMeta {
    pub name: String,
    pub column: String,
    /// `IVF_FLAT`, `IVF_SQ`, `IVF_PQ`.
    pub kind: String,
    /// `l2`, `cosine`, `dot`.
    pub metric: String,
    /// Build options as given (after defaults were filled in).
    pub params: serde_json::Value,
    /// Index files, relative to the dataset root.
    pub files: Vec<String>,
    /// Fragments whose rows the index covers; rows of other fragments are searched exactly.
    pub fragments: Vec<u32>,
    /// The version the index was built from.
    pub dataset_version: u64,
    #[serde(default)]
    pub rows_indexed: u64,
    /// Free-form build facts (device, seconds per phase) for `SHOW VECTOR INDEXES`.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Manifest {
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.schema.clone())
    }

    /// Rows visible in this version.
    pub fn live_rows(&self) -> u64 {
        self.fragments.iter().map(|f| f.live_rows()).sum()
    }

    pub fn fragment(&self, id: u32) -> Option<&FragmentMeta> {
        self.fragments.iter().find(|f| f.id == id)
    }

    pub fn index(&self, name: &str) -> Option<&IndexMeta> {
        self.indexes
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }

    /// The position in `indexes` of the index that answers searches of `column` by `metric`:
    /// the most recent such. The one place that decides which index a search uses.
    pub fn search_index(&self, column: &str, metric: Metric) -> Option<usize> {
        self.indexes
            .iter()
            .rposition(|i| i.column == column && i.metric == metric.name())
    }

    /// The metric of the most recent index on `column`, if it has one.
    pub fn column_metric(&self, column: &str) -> Option<Metric> {
        self.indexes
            .iter()
            .rev()
            .find(|i| i.column == column)
            .and_then(|i| Metric::parse(&i.metric).ok())
    }

    /// Serialises to the on-disk form (header line + JSON body).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let body = serde_json::to_vec(self)
            .map_err(|e| internal_datafusion_err!("cannot serialise manifest: {e}"))?;
        let crc = crc32fast::hash(&body);
        let mut out = format!("{MAGIC} {FORMAT_VERSION} crc32={crc:08x}\n").into_bytes();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parses and verifies the on-disk form. `origin` names the file in error messages.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Manifest> {
        let corrupt = |what: String| {
            exec_datafusion_err!(
                "corrupted manifest {origin}: {what}. The file was damaged after it was written; \
                 restore it from a backup, or open an earlier version with VERSION AS OF"
            )
        };
        let newline = bytes.iter().position(|b| *b == b'\n');
        let header = newline
            .and_then(|n| std::str::from_utf8(&bytes[..n]).ok())
            .unwrap_or("");
        let mut parts = header.split(' ');
        if parts.next() != Some(MAGIC) {
            return exec_err!(
                "{origin} is not a vecfusion manifest (it does not start with '{MAGIC}')"
            );
        }
        let format: u32 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt("unreadable header".into()))?;
        if format > FORMAT_VERSION {
            return exec_err!(
                "{origin} uses manifest format {format}, newer than this vecfusion understands \
                 ({FORMAT_VERSION}); upgrade vecfusion to read it"
            );
        }
        let crc = parts
            .next()
            .and_then(|c| c.strip_prefix("crc32="))
            .and_then(|c| u32::from_str_radix(c, 16).ok())
            .ok_or_else(|| corrupt("unreadable checksum".into()))?;
        let body = &bytes[newline.unwrap_or(0) + 1..];
        let actual = crc32fast::hash(body);
        if actual != crc {
            return Err(corrupt(format!(
                "checksum mismatch (header says {crc:08x}, content is {actual:08x})"
            )));
        }
        serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    fn sample() -> Manifest {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "v",
                DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 4),
                true,
            ),
        ]);
        Manifest {
            version: 2,
            timestamp_ms: 1,
            operation: OperationSummary {
                kind: "APPEND".into(),
                rows_added: 3,
                rows_deleted: 0,
                modified_fragments: vec![],
                index: None,
            },
            schema,
            fragments: vec![FragmentMeta {
                id: 0,
                file: "data/a.arrow".into(),
                physical_rows: 3,
                rows_per_batch: 8192,
                file_bytes: 100,
                deletion: None,
            }],
            indexes: vec![],
            next_fragment_id: 1,
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes, "x").unwrap(), m);
    }

    #[test]
    fn detects_corruption_and_foreign_files() {
        let mut bytes = sample().encode().unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0x01;
        let err = Manifest::decode(&bytes, "m").unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        let err = Manifest::decode(b"PAR1....", "p").unwrap_err().to_string();
        assert!(err.contains("not a vecfusion manifest"), "{err}");
        let truncated = &sample().encode().unwrap()[..40];
        let err = Manifest::decode(truncated, "t").unwrap_err().to_string();
        assert!(err.contains("corrupted manifest"), "{err}");
    }
}
