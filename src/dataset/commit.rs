//! The commit protocol: every new file first, then the next manifest with put-if-absent.
//!
//! A writer builds its next manifest from the version it read and tries to create
//! `_versions/<n+1>.manifest`. Creation is atomic and fails if the file exists, so exactly one
//! of several concurrent writers wins version `n+1`. A loser reads the versions committed in
//! between, checks that its operation commutes with each of them (two appends do; two deletes
//! of the same fragment do not), rebuilds its manifest on top of the newest one and tries
//! again. A crash at any point before the manifest exists leaves only unreferenced files:
//! readers never see a half-written version.

use std::time::Duration;

use datafusion::common::{exec_err, internal_datafusion_err};
use datafusion::error::{DataFusionError, Result};
use object_store::{PutMode, PutOptions, PutPayload};

use super::durability;
use super::fragment::NewFragment;
use super::location::DatasetLocation;
use datafusion::arrow::datatypes::Schema;

use super::manifest::{
    ColumnFileMeta, DeletionMeta, IndexMeta, Manifest, OperationSummary, SegmentMeta,
};
use super::versions::{manifest_path, read_manifest};

/// The `kind` of an [`Operation::AlterColumns`] that adds columns.
pub const ADD_COLUMN: &str = "ADD COLUMN";
/// The `kind` of an [`Operation::AlterColumns`] that drops columns.
pub const DROP_COLUMN: &str = "DROP COLUMN";

/// Attempts before a commit gives up under sustained contention.
const MAX_ATTEMPTS: usize = 200;

/// A change to a dataset, applied on top of whatever version is latest when it commits.
#[derive(Debug, Clone)]
pub enum Operation {
    /// New fragments; ids are assigned at commit time, so concurrent appends never clash.
    Append { fragments: Vec<NewFragment> },
    /// New deletion vectors for some fragments (old deletions included).
    Delete {
        deletions: Vec<(u32, DeletionMeta)>,
        rows_deleted: u64,
    },
    /// Deletion vectors for the old rows and new fragments with the updated rows, atomically.
    Update {
        deletions: Vec<(u32, DeletionMeta)>,
        rows_updated: u64,
        fragments: Vec<NewFragment>,
    },
    /// Records an index (replacing one of the same name when `replace`).
    CreateIndex { index: IndexMeta, replace: bool },
    /// Replaces segments of an index by new ones encoded with the same model: new fragments
    /// encoded, or small segments merged (`OPTIMIZE VECTOR INDEX`).
    /// The commit fails if the index was retrained or its removed segments replaced meanwhile.
    OptimizeIndex(SegmentSwap),
    /// Removes an index entry (its files stay until cleanup).
    DropIndex { name: String },
    /// Changes the table's columns (`ALTER TABLE`): the new schema and, for added columns,
    /// one new column file for every fragment. Fails if fragments were added or rewritten, or
    /// the columns changed, since the version it was prepared from.
    AlterColumns {
        /// [`ADD_COLUMN`] or [`DROP_COLUMN`].
        kind: &'static str,
        schema: Schema,
        column_files: Vec<(u32, ColumnFileMeta)>,
    },
    /// Replaces fragments by rewritten ones (`OPTIMIZE TABLE`) and, in the same version, the
    /// index segments that covered them by remapped ones.
    Compact {
        /// Fragments that leave the version.
        removed: Vec<u32>,
        /// New fragments with the ids their segments' row addresses use.
        fragments: Vec<(u32, NewFragment)>,
        indexes: Vec<SegmentSwap>,
    },
}

/// Segments of one index replaced by others encoded with the same model.
#[derive(Debug, Clone)]
pub struct SegmentSwap {
    pub index: String,
    /// The model the added segments were encoded with.
    pub model_id: String,
    /// Segment files that leave the index.
    pub removed: Vec<String>,
    pub added: Vec<SegmentMeta>,
}

impl SegmentSwap {
    /// Applies the swap to the index of that name in `next`.
    fn apply(&self, next: &mut Manifest, what: &str) -> Result<()> {
        let name = &self.index;
        let Some(index) = next
            .indexes
            .iter_mut()
            .find(|i| i.name.eq_ignore_ascii_case(name))
        else {
            return exec_err!("commit conflict: index '{name}' was dropped while {what} ran");
        };
        if index.model.id != self.model_id {
            return exec_err!(
                "commit conflict: index '{name}' was rebuilt while {what} ran; re-run it"
            );
        }
        for file in &self.removed {
            let Some(pos) = index.segments.iter().position(|s| s.file == *file) else {
                return exec_err!(
                    "commit conflict: segment {file} of index '{name}' was replaced while \
                     {what} ran; re-run it"
                );
            };
            index.segments.remove(pos);
        }
        index.segments.extend(self.added.iter().cloned());
        Ok(())
    }
}

impl Operation {
    fn kind(&self) -> &'static str {
        match self {
            Operation::Append { .. } => "APPEND",
            Operation::Delete { .. } => "DELETE",
            Operation::Update { .. } => "UPDATE",
            Operation::CreateIndex { .. } => "CREATE INDEX",
            Operation::OptimizeIndex(_) => "OPTIMIZE INDEX",
            Operation::DropIndex { .. } => "DROP INDEX",
            Operation::Compact { .. } => "OPTIMIZE TABLE",
            Operation::AlterColumns { kind, .. } => kind,
        }
    }

    /// Whether the operation writes rows in the schema it read (so a concurrent column change
    /// makes its files wrong), or changes the columns of the rows others write.
    fn depends_on_columns(&self) -> bool {
        matches!(
            self,
            Operation::Append { .. }
                | Operation::Update { .. }
                | Operation::Compact { .. }
                | Operation::AlterColumns { .. }
        )
    }

    fn modified_fragments(&self) -> Vec<u32> {
        match self {
            Operation::Delete { deletions, .. } | Operation::Update { deletions, .. } => {
                deletions.iter().map(|(id, _)| *id).collect()
            }
            Operation::Compact { removed, .. } => removed.clone(),
            _ => vec![],
        }
    }

    fn index_name(&self) -> Option<&str> {
        match self {
            Operation::CreateIndex { index, .. } => Some(&index.name),
            Operation::OptimizeIndex(swap) => Some(&swap.index),
            Operation::DropIndex { name } => Some(name),
            _ => None,
        }
    }

    /// Whether this operation may be replayed on top of `other`, a version committed after the
    /// one this operation was prepared from; `previous` is the version before `other`.
    fn check_commutes_with(&self, previous: &Manifest, other: &Manifest) -> Result<()> {
        if self.depends_on_columns() && other.schema != previous.schema {
            return exec_err!(
                "commit conflict: version {} ({}) changed the table's columns while this {}                  ran; re-run the statement on the new version",
                other.version,
                other.operation.kind,
                self.kind()
            );
        }
        let fragment_ids = |m: &Manifest| m.fragments.iter().map(|f| f.id).collect::<Vec<_>>();
        if matches!(self, Operation::AlterColumns { .. })
            && fragment_ids(other) != fragment_ids(previous)
        {
            return exec_err!(
                "commit conflict: version {} ({}) added or rewrote fragments while this {} ran,                  and they lack its column files; re-run the statement on the new version",
                other.version,
                other.operation.kind,
                self.kind()
            );
        }
        let mine = self.modified_fragments();
        let theirs = &other.operation.modified_fragments;
        if let Some(id) = mine.iter().find(|id| theirs.contains(id)) {
            return exec_err!(
                "commit conflict: version {} ({}) changed the deleted rows of fragment {id}, \
                 which this {} also changes; re-run the statement on the new version",
                other.version,
                other.operation.kind,
                self.kind()
            );
        }
        if let (Some(name), Some(other_name)) = (self.index_name(), &other.operation.index)
            && name.eq_ignore_ascii_case(other_name)
        {
            return exec_err!(
                "commit conflict: version {} ({}) changed index '{other_name}' concurrently; \
                 re-run the statement",
                other.version,
                other.operation.kind
            );
        }
        Ok(())
    }

    /// The manifest that results from applying this operation to `latest`.
    fn apply(&self, latest: &Manifest) -> Result<Manifest> {
        let mut next = latest.clone();
        next.version = latest.version + 1;
        next.timestamp_ms = chrono::Utc::now().timestamp_millis();
        let mut summary = OperationSummary {
            kind: self.kind().to_string(),
            rows_added: 0,
            rows_deleted: 0,
            modified_fragments: self.modified_fragments(),
            index: self.index_name().map(str::to_string),
        };
        let append = |next: &mut Manifest, fragments: &[NewFragment]| {
            for f in fragments {
                let id = next.next_fragment_id;
                next.next_fragment_id += 1;
                next.fragments.push(f.clone().into_meta(id));
            }
        };
        let set_deletions = |next: &mut Manifest, deletions: &[(u32, DeletionMeta)]| {
            for (id, meta) in deletions {
                let frag = next
                    .fragments
                    .iter_mut()
                    .find(|f| f.id == *id)
                    .ok_or_else(|| {
                        internal_datafusion_err!("fragment {id} vanished from the dataset")
                    })?;
                frag.deletion = Some(meta.clone());
            }
            Ok::<_, DataFusionError>(())
        };
        match self {
            Operation::Append { fragments } => {
                summary.rows_added = fragments.iter().map(|f| f.physical_rows).sum();
                append(&mut next, fragments);
            }
            Operation::Delete {
                deletions,
                rows_deleted,
            } => {
                summary.rows_deleted = *rows_deleted;
                set_deletions(&mut next, deletions)?;
            }
            Operation::Update {
                deletions,
                rows_updated,
                fragments,
            } => {
                summary.rows_deleted = *rows_updated;
                summary.rows_added = *rows_updated;
                set_deletions(&mut next, deletions)?;
                append(&mut next, fragments);
            }
            Operation::CreateIndex { index, replace } => {
                if let Some(pos) = next
                    .indexes
                    .iter()
                    .position(|i| i.name.eq_ignore_ascii_case(&index.name))
                {
                    if !replace {
                        return exec_err!(
                            "index '{}' already exists; use replace = true to rebuild it, or \
                             DROP VECTOR INDEX first",
                            index.name
                        );
                    }
                    next.indexes.remove(pos);
                }
                index.check_segments(&next.fragments)?;
                next.indexes.push(index.clone());
            }
            Operation::OptimizeIndex(swap) => {
                swap.apply(&mut next, "OPTIMIZE VECTOR INDEX")?;
                for index in &next.indexes {
                    index.check_segments(&next.fragments)?;
                }
            }
            Operation::Compact {
                removed,
                fragments,
                indexes,
            } => {
                for id in removed {
                    if next.fragment(*id).is_none() {
                        return exec_err!(
                            "commit conflict: fragment {id} was rewritten concurrently; re-run \
                             OPTIMIZE TABLE"
                        );
                    }
                }
                next.fragments.retain(|f| !removed.contains(&f.id));
                for (id, fragment) in fragments {
                    if *id < latest.next_fragment_id {
                        return exec_err!(
                            "commit conflict: more fragments were appended while OPTIMIZE \
                             TABLE ran than it reserved ids for; re-run it"
                        );
                    }
                    next.fragments.push(fragment.clone().into_meta(*id));
                    next.next_fragment_id = next.next_fragment_id.max(id + 1);
                }
                for swap in indexes {
                    swap.apply(&mut next, "OPTIMIZE TABLE")?;
                }
                // Every index, remapped or not, must cover only fragments that remain.
                for index in &next.indexes {
                    index.check_segments(&next.fragments)?;
                }
            }
            Operation::AlterColumns {
                kind,
                schema,
                column_files,
            } => {
                next.schema = schema.clone();
                for (id, file) in column_files {
                    let fragment =
                        next.fragments
                            .iter_mut()
                            .find(|f| f.id == *id)
                            .ok_or_else(|| {
                                internal_datafusion_err!("fragment {id} vanished from the dataset")
                            })?;
                    fragment.column_files.push(file.clone());
                }
                // A column file none of whose columns remain is no longer part of the version
                // (cleanup removes it once no retained version refers to it).
                for fragment in &mut next.fragments {
                    fragment
                        .column_files
                        .retain(|c| c.columns.iter().any(|n| schema.field_with_name(n).is_ok()));
                }
                for index in &next.indexes {
                    if schema.field_with_name(&index.column).is_err() {
                        return exec_err!(
                            "column '{}' has vector index '{}'; drop the index first (DROP                              VECTOR INDEX {} ON ...)",
                            index.column,
                            index.name,
                            index.name
                        );
                    }
                }
                // Every fragment gets the added columns, or the version would be unreadable.
                if *kind == ADD_COLUMN
                    && let Some(f) = next
                        .fragments
                        .iter()
                        .find(|f| !column_files.iter().any(|(id, _)| *id == f.id))
                {
                    return exec_err!(
                        "commit conflict: fragment {} has no file for the added column; re-run \
                         the statement",
                        f.id
                    );
                }
            }
            Operation::DropIndex { name } => {
                let before = next.indexes.len();
                next.indexes.retain(|i| !i.name.eq_ignore_ascii_case(name));
                if next.indexes.len() == before {
                    return exec_err!("index '{name}' does not exist");
                }
            }
        }
        next.operation = summary;
        Ok(next)
    }
}

/// Writes `manifest` as its version's manifest file, failing with `Ok(false)` if another
/// writer created that version first.
pub(crate) async fn put_manifest_if_absent(
    location: &DatasetLocation,
    manifest: &Manifest,
) -> Result<bool> {
    let payload = PutPayload::from(manifest.encode()?);
    let opts = PutOptions::from(PutMode::Create);
    match location
        .store
        .put_opts(&manifest_path(location, manifest.version), payload, opts)
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(DataFusionError::External(Box::new(e))),
    }
}

/// Commits `op` on top of `base` (the version the caller read), rebasing over concurrent
/// commits when they commute. Returns the committed manifest.
pub async fn commit(
    location: &DatasetLocation,
    base: &Manifest,
    op: &Operation,
) -> Result<Manifest> {
    let mut latest = base.clone();
    let mut next = op.apply(&latest)?;
    // Durable before visible: the files the version adds reach the disk before the manifest
    // that makes them part of it is written (a rebase changes ids, never the files added).
    let before: std::collections::HashSet<&str> = base.files().collect();
    let added: Vec<String> = next
        .files()
        .filter(|f| !before.contains(f))
        .map(str::to_string)
        .collect();
    durability::sync_files(location, &added).await?;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            next = op.apply(&latest)?;
        }
        if put_manifest_if_absent(location, &next).await? {
            durability::sync_manifest(location, next.version).await?;
            return Ok(next);
        }
        // Lost the race: replay over every version committed since `latest`.
        let mut v = latest.version + 1;
        while let Some(m) = read_manifest(location, v).await? {
            op.check_commutes_with(&latest, &m)?;
            latest = m;
            v += 1;
        }
        // Jittered back-off so a crowd of writers spreads out.
        let jitter = rand::random::<u64>() % (5 + 5 * attempt.min(20) as u64);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
    }
    exec_err!(
        "could not commit to {} after {MAX_ATTEMPTS} attempts: too many concurrent writers",
        location.uri
    )
}
