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
use crate::quantizer::IndexKind;

const MAGIC: &str = "VECFUSION-MANIFEST";
/// Newest manifest format this build reads and writes; readers refuse newer formats with a
/// clear error. 2: indexes are a model plus segments (format-1 index entries are read as one
/// segment). 3: fragments may have column files (`ALTER TABLE ... ADD COLUMN`). A manifest is
/// written with the oldest format that describes it, so a build that predates a feature keeps
/// reading the datasets that do not use it.
pub const FORMAT_VERSION: u32 = 3;

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
    /// `CREATE`, `APPEND`, `DELETE`, `UPDATE`, `CREATE INDEX`, `OPTIMIZE INDEX`, `DROP INDEX`.
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
    /// Columns added after the fragment was written (`ALTER TABLE ... ADD COLUMN`), oldest
    /// first: each an Arrow IPC file with the same row count and record-batch layout as the
    /// data file. A column is read from the newest file that holds it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_files: Vec<ColumnFileMeta>,
}

/// A file of columns added to a fragment after it was written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnFileMeta {
    /// Path relative to the dataset root (`data/<name>.arrow`).
    pub file: String,
    /// The table columns the file holds (what `DROP COLUMN` checks to retire the file).
    pub columns: Vec<String>,
    pub file_bytes: u64,
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
    /// CRC-32 of the file (absent in manifests written before deletion files had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

/// An index recorded in a version: one trained model and the segments encoded with it.
/// Written by `CREATE VECTOR INDEX` and `OPTIMIZE VECTOR INDEX`; the fields describe
/// everything a reader needs to decide whether and how the index serves a query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "IndexMetaOnDisk")]
pub struct IndexMeta {
    pub name: String,
    pub column: String,
    pub kind: IndexKind,
    pub metric: Metric,
    /// Build options as given (after defaults were filled in).
    pub params: serde_json::Value,
    pub model: ModelMeta,
    /// Disjoint sets of fragments, each encoded with `model`; rows of fragments no segment
    /// covers are searched exactly.
    pub segments: Vec<SegmentMeta>,
    /// The version the model was trained from.
    pub dataset_version: u64,
    /// Free-form build facts (accelerator, seconds per phase) for `SHOW VECTOR INDEXES`.
    #[serde(default)]
    pub details: serde_json::Value,
}

/// The model file of an index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    /// Relative to the dataset root.
    pub file: String,
    /// The id the model file and its segments carry (empty for format-1 indexes).
    pub id: String,
}

/// One segment of an index: the partition lists of some fragments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentMeta {
    /// Relative to the dataset root.
    pub file: String,
    /// The model it was encoded with.
    pub model_id: String,
    /// Fragments whose usable rows it holds.
    pub fragments: Vec<u32>,
    /// Rows it holds.
    pub rows: u64,
}

impl IndexMeta {
    /// Whether a segment holds the rows of `fragment`.
    pub fn covers(&self, fragment: u32) -> bool {
        self.segments
            .iter()
            .any(|s| s.fragments.contains(&fragment))
    }

    /// Rows held by all segments.
    pub fn rows_indexed(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    /// Every file the index uses.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.model.file.as_str())
            .chain(self.segments.iter().map(|s| s.file.as_str()))
    }

    /// Checks the invariants a commit relies on: every segment names the model, no fragment
    /// is in two segments, and every covered fragment is one of `fragments`.
    pub fn check_segments(&self, fragments: &[FragmentMeta]) -> Result<()> {
        match self.segment_violation(fragments) {
            None => Ok(()),
            Some(SegmentViolation::Missing(f)) => exec_err!(
                "commit conflict: index '{}' covers fragment {f}, which this version no longer \
                 has (a concurrent OPTIMIZE TABLE rewrote it); re-run the statement",
                self.name
            ),
            Some(other) => exec_err!("{}", other.describe(self)),
        }
    }

    fn segment_violation(&self, fragments: &[FragmentMeta]) -> Option<SegmentViolation<'_>> {
        let mut seen = std::collections::HashSet::new();
        for s in &self.segments {
            if s.model_id != self.model.id {
                return Some(SegmentViolation::ForeignModel(s));
            }
            for f in &s.fragments {
                if !seen.insert(*f) {
                    return Some(SegmentViolation::Twice(*f));
                }
                if !fragments.iter().any(|m| m.id == *f) {
                    return Some(SegmentViolation::Missing(*f));
                }
            }
        }
        None
    }
}

/// A broken invariant of an index's segments (see [`IndexMeta::check_segments`]).
enum SegmentViolation<'a> {
    ForeignModel(&'a SegmentMeta),
    Twice(u32),
    Missing(u32),
}

impl SegmentViolation<'_> {
    fn describe(&self, index: &IndexMeta) -> String {
        match self {
            Self::ForeignModel(s) => format!(
                "index '{}': segment {} was encoded with model '{}', not the index's model '{}'",
                index.name, s.file, s.model_id, index.model.id
            ),
            Self::Twice(f) => format!("index '{}': fragment {f} is in two segments", index.name),
            Self::Missing(f) => format!(
                "index '{}' covers fragment {f}, which the version does not have",
                index.name
            ),
        }
    }
}

/// An index entry as stored: the current form, or the format-1 form (one file holding the
/// model and every partition, a list of covered fragments), read as a model plus one segment
/// in the same file.
#[derive(Deserialize)]
struct IndexMetaOnDisk {
    name: String,
    column: String,
    kind: IndexKind,
    metric: Metric,
    params: serde_json::Value,
    #[serde(default)]
    model: Option<ModelMeta>,
    #[serde(default)]
    segments: Vec<SegmentMeta>,
    dataset_version: u64,
    #[serde(default)]
    details: serde_json::Value,
    // Format 1.
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    fragments: Vec<u32>,
    #[serde(default)]
    rows_indexed: u64,
}

impl TryFrom<IndexMetaOnDisk> for IndexMeta {
    type Error = String;

    fn try_from(d: IndexMetaOnDisk) -> std::result::Result<Self, String> {
        let (model, segments) = match (d.model, d.files.first()) {
            (Some(model), _) => (model, d.segments),
            (None, Some(file)) => (
                ModelMeta {
                    file: file.clone(),
                    id: String::new(),
                },
                vec![SegmentMeta {
                    file: file.clone(),
                    model_id: String::new(),
                    fragments: d.fragments,
                    rows: d.rows_indexed,
                }],
            ),
            (None, None) => {
                return Err(format!(
                    "index '{}' names no model file; drop it (DROP VECTOR INDEX) and build it again",
                    d.name
                ));
            }
        };
        Ok(IndexMeta {
            name: d.name,
            column: d.column,
            kind: d.kind,
            metric: d.metric,
            params: d.params,
            model,
            segments,
            dataset_version: d.dataset_version,
            details: d.details,
        })
    }
}

impl Manifest {
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.schema.clone())
    }

    /// Every file this version refers to (fragments, deletion vectors, index files), relative
    /// to the dataset root.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.fragments
            .iter()
            .flat_map(|f| {
                std::iter::once(f.file.as_str())
                    .chain(f.column_files.iter().map(|c| c.file.as_str()))
                    .chain(f.deletion.as_ref().map(|d| d.file.as_str()))
            })
            .chain(self.indexes.iter().flat_map(|i| i.files()))
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
            .rposition(|i| i.column == column && i.metric == metric)
    }

    /// The metric of the most recent index on `column`, if it has one.
    pub fn column_metric(&self, column: &str) -> Option<Metric> {
        self.indexes
            .iter()
            .rev()
            .find(|i| i.column == column)
            .map(|i| i.metric)
    }

    /// Serialises to the on-disk form (header line + JSON body).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let body = serde_json::to_vec(self)
            .map_err(|e| internal_datafusion_err!("cannot serialise manifest: {e}"))?;
        let crc = crc32fast::hash(&body);
        let format = if self.fragments.iter().any(|f| !f.column_files.is_empty()) {
            3
        } else {
            2
        };
        let mut out = format!("{MAGIC} {format} crc32={crc:08x}\n").into_bytes();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parses and verifies the on-disk form. `origin` names the file in error messages.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Manifest> {
        let corrupt = |what: String| {
            exec_datafusion_err!(
                "corrupted manifest {origin}: {what}. The file was damaged after it was written; \
                 restore it from a backup, query an earlier version with VERSION AS OF n (or \
                 OPTIONS ('version' 'n')), or move this file and any newer ones out of \
                 _versions/ to make the previous version the newest (the changes this version \
                 committed are then lost)"
            )
        };
        let newline = bytes.iter().position(|b| *b == b'\n');
        let header = newline
            .and_then(|n| std::str::from_utf8(&bytes[..n]).ok())
            .unwrap_or("");
        let mut parts = header.split(' ');
        if parts.next() != Some(MAGIC) {
            return exec_err!(
                "{origin} is not a vecfusion manifest (it does not start with '{MAGIC}'); if \
                 it replaced one, restore it from a backup, query an earlier version with \
                 VERSION AS OF n, or move it out of _versions/ to make the previous version the \
                 newest"
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
        let manifest: Manifest =
            serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
        manifest.validate().map_err(corrupt)?;
        Ok(manifest)
    }

    /// What every reader of a manifest relies on, checked once when it is read so that a
    /// crafted or damaged manifest with a valid checksum is refused rather than trusted: row
    /// counts that fit row addresses, unique fragment ids below `next_fragment_id`, file paths
    /// inside the dataset's own directories (never `..` or absolute), indexes on existing
    /// columns whose segments cover existing fragments once.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        for f in &self.fragments {
            let what = || format!("fragment {}", f.id);
            if !ids.insert(f.id) {
                return Err(format!("{} is listed twice", what()));
            }
            if f.id >= self.next_fragment_id {
                return Err(format!(
                    "{} is not below next_fragment_id {}",
                    what(),
                    self.next_fragment_id
                ));
            }
            check_relative_file(&f.file, "data").map_err(|e| format!("{}: {e}", what()))?;
            for c in &f.column_files {
                check_relative_file(&c.file, "data").map_err(|e| format!("{}: {e}", what()))?;
                if let Some(missing) = c
                    .columns
                    .iter()
                    .find(|n| self.schema.field_with_name(n).is_err())
                {
                    return Err(format!(
                        "{}: column file {} holds column '{missing}', which the schema does not have",
                        what(),
                        c.file
                    ));
                }
            }
            if f.physical_rows > u64::from(u32::MAX) {
                return Err(format!(
                    "{} has {} rows, more than a fragment can address",
                    what(),
                    f.physical_rows
                ));
            }
            if f.rows_per_batch == 0 && f.physical_rows > 0 {
                return Err(format!("{} has rows_per_batch 0", what()));
            }
            if let Some(d) = &f.deletion {
                check_relative_file(&d.file, "_deletions")
                    .map_err(|e| format!("{}: {e}", what()))?;
                if d.deleted_rows > f.physical_rows {
                    return Err(format!(
                        "{} has {} deleted rows of {}",
                        what(),
                        d.deleted_rows,
                        f.physical_rows
                    ));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for index in &self.indexes {
            if !names.insert(index.name.as_str()) {
                return Err(format!("index '{}' is listed twice", index.name));
            }
            if self.schema.field_with_name(&index.column).is_err() {
                return Err(format!(
                    "index '{}' is on column '{}', which the schema does not have",
                    index.name, index.column
                ));
            }
            for file in index.files() {
                check_relative_file(file, "_indexes")
                    .map_err(|e| format!("index '{}': {e}", index.name))?;
            }
            if let Some(violation) = index.segment_violation(&self.fragments) {
                return Err(violation.describe(index));
            }
        }
        Ok(())
    }
}

/// A file path as manifests store it: `dir/<name>`, relative to the dataset root, with a
/// plain file name (no further `/`, no `..`, nothing a file system or object store would read
/// as another place).
fn check_relative_file(file: &str, dir: &str) -> std::result::Result<(), String> {
    let name = file.strip_prefix(dir).and_then(|r| r.strip_prefix('/'));
    let plain = name.is_some_and(|n| {
        !n.is_empty()
            && n != "."
            && n != ".."
            && !n.contains(['/', '\\', '\0'])
            && !n.chars().any(char::is_control)
    });
    if plain {
        Ok(())
    } else {
        Err(format!(
            "file path '{file}' is not a file directly inside {dir}/"
        ))
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
                column_files: vec![],
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
    fn format_one_index_entries_read_as_one_segment_in_the_same_file() {
        let encoded = sample().encode().unwrap();
        let body = encoded.split(|b| *b == b'\n').nth(1).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(body).unwrap();
        json["indexes"] = serde_json::json!([{
            "name": "idx", "column": "v", "kind": "IVF_PQ", "metric": "l2", "params": {},
            "files": ["_indexes/idx-1.vfidx"], "fragments": [0], "dataset_version": 2,
            "rows_indexed": 3, "details": {}
        }]);
        let body = serde_json::to_vec(&json).unwrap();
        let mut bytes = format!(
            "VECFUSION-MANIFEST 1 crc32={:08x}\n",
            crc32fast::hash(&body)
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        let m = Manifest::decode(&bytes, "old").unwrap();
        let index = &m.indexes[0];
        assert_eq!((index.kind, index.metric), (IndexKind::IvfPq, Metric::L2));
        assert_eq!(index.model.file, "_indexes/idx-1.vfidx");
        assert_eq!(index.segments.len(), 1);
        assert_eq!(index.segments[0].file, index.model.file);
        assert_eq!(index.rows_indexed(), 3);
        assert!(index.covers(0) && !index.covers(1));
        index.check_segments(&m.fragments).unwrap();
        // Written back in the current form, it reads the same.
        assert_eq!(Manifest::decode(&m.encode().unwrap(), "new").unwrap(), m);
    }

    /// A manifest with a valid checksum is still refused when what it says cannot be true:
    /// readers would otherwise trust it (a path outside the dataset, impossible row counts).
    #[test]
    fn refuses_crafted_manifests_behind_a_valid_checksum() {
        fn deletion(file: &str, deleted_rows: u64) -> Option<DeletionMeta> {
            Some(DeletionMeta {
                file: file.into(),
                deleted_rows,
                crc32: None,
            })
        }
        /// Makes a sample manifest say something impossible.
        type Craft = fn(&mut Manifest);
        let cases: Vec<(&str, Craft)> = vec![
            ("not a file directly inside data/", |m| {
                m.fragments[0].file = "data/../../etc/passwd".into()
            }),
            ("not a file directly inside data/", |m| {
                m.fragments[0].file = "/etc/passwd".into()
            }),
            ("deleted rows of", |m| {
                m.fragments[0].deletion = deletion("_deletions/0-x.bin", 4)
            }),
            ("not a file directly inside _deletions/", |m| {
                m.fragments[0].deletion = deletion("_deletions/..", 1)
            }),
            ("more than a fragment can address", |m| {
                m.fragments[0].physical_rows = u64::MAX
            }),
            ("rows_per_batch 0", |m| m.fragments[0].rows_per_batch = 0),
            ("listed twice", |m| {
                let again = m.fragments[0].clone();
                m.fragments.push(again)
            }),
            ("not below next_fragment_id", |m| m.next_fragment_id = 0),
        ];
        for (expected, craft) in cases {
            let mut m = sample();
            craft(&mut m);
            let err = Manifest::decode(&m.encode().unwrap(), "crafted")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected) && err.contains("corrupted manifest"),
                "{err}"
            );
        }
        Manifest::decode(&sample().encode().unwrap(), "fine").unwrap();
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
