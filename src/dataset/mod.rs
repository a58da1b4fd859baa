//! The versioned vector dataset.
//!
//! A dataset is a directory (or object-store prefix) holding a sequence of immutable versions:
//!
//! ```text
//! <root>/_versions/<n>.manifest     one per version: schema, fragments, deletions, indexes
//! <root>/data/<name>.arrow          fragments: immutable Arrow IPC files
//! <root>/_deletions/<id>-<name>.bin deletion vectors (roaring bitmaps)
//! <root>/_indexes/...               index files (see `crate::index_format`)
//! ```
//!
//! Rows have stable addresses `fragment_id << 32 | offset` that survive appends, deletes and
//! new versions, which is what lets an index refer to rows. See [`commit`] for how versions are
//! committed atomically.

pub mod append;
pub mod columns;
pub mod commit;
pub mod compact;
pub mod deletion;
pub mod durability;
pub mod files;
pub mod fragment;
pub mod location;
pub mod manifest;
pub mod take;
pub mod vector_columns;
pub mod versions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{exec_err, plan_datafusion_err};
use datafusion::error::{DataFusionError, Result};
use roaring::RoaringBitmap;

pub use append::Appended;
pub use commit::{ADD_COLUMN, DROP_COLUMN, Operation, SegmentSwap};
pub use compact::Rewritten;
pub use fragment::{FragmentReader, FragmentWriter, NewFragment, ROWS_PER_BATCH, VectorColumn};
pub use location::DatasetLocation;
pub use manifest::{
    ColumnFileMeta, DeletionMeta, FragmentMeta, IndexMeta, Manifest, ModelMeta, OperationSummary,
    SegmentMeta,
};
pub use vector_columns::{
    MAX_VECTOR_DIM, check_vector_sizes, resolve_vector_column, vector_column, vector_columns,
    vector_dim,
};

/// A row's stable address: fragment id in the high 32 bits, row offset in the low 32.
pub type RowAddress = u64;

pub fn row_address(fragment_id: u32, offset: u32) -> RowAddress {
    ((fragment_id as u64) << 32) | offset as u64
}

pub fn split_row_address(addr: RowAddress) -> (u32, u32) {
    ((addr >> 32) as u32, addr as u32)
}

/// Opened fragment files and deletion vectors, shared by every handle of one dataset.
/// Both are immutable once committed, so caching them by file name is always safe.
#[derive(Debug, Default)]
struct FileCache {
    readers: Mutex<HashMap<String, Arc<FragmentReader>>>,
    deletions: Mutex<HashMap<String, Arc<RoaringBitmap>>>,
    /// Objects derived from one immutable file (opened indexes), by file name.
    derived: Derived,
}

/// What is derived from one version as a whole, shared by the clones of its handle and
/// dropped with the last of them: another version, even of the same dataset, has its own.
#[derive(Debug)]
struct VersionCache {
    /// Position in the manifest's fragment list of every fragment id.
    fragment_positions: HashMap<u32, usize>,
    /// Objects derived from the version (what searches of a column read of it), by key.
    derived: Derived,
}

/// Objects built once from immutable inputs and shared, by key, of any type.
#[derive(Debug, Default)]
struct Derived(Mutex<HashMap<String, Arc<dyn std::any::Any + Send + Sync>>>);

impl Derived {
    async fn get_or_open<T, F, Fut>(&self, key: &str, open: F) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        if let Some(v) = self.0.lock().expect("cache").get(key)
            && let Ok(v) = v.clone().downcast::<T>()
        {
            return Ok(v);
        }
        // Not held across the await: two first users may both open; the later one wins.
        let v = Arc::new(open().await?);
        self.0
            .lock()
            .expect("cache")
            .insert(key.to_string(), v.clone());
        Ok(v)
    }
}

/// A handle on one version of a dataset. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Dataset {
    location: DatasetLocation,
    manifest: Arc<Manifest>,
    schema: SchemaRef,
    cache: Arc<FileCache>,
    version_cache: Arc<VersionCache>,
}

impl Dataset {
    /// Creates a new, empty dataset (version 1) with `schema`.
    pub async fn create(location: DatasetLocation, schema: SchemaRef) -> Result<Self> {
        check_vector_sizes(&schema)?;
        if !versions::list_versions(&location).await?.is_empty() {
            return exec_err!("a vecfusion dataset already exists at {}", location.uri);
        }
        if versions::location_has_files(&location).await? {
            return exec_err!(
                "{} is not empty and is not a vecfusion dataset; choose a new or empty directory",
                location.uri
            );
        }
        let manifest = Manifest {
            version: 1,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            operation: OperationSummary {
                kind: "CREATE".into(),
                rows_added: 0,
                rows_deleted: 0,
                modified_fragments: vec![],
                index: None,
            },
            schema: schema.as_ref().clone(),
            fragments: vec![],
            indexes: vec![],
            next_fragment_id: 0,
        };
        if !commit::put_manifest_if_absent(&location, &manifest).await? {
            return exec_err!(
                "a vecfusion dataset was created concurrently at {}",
                location.uri
            );
        }
        durability::sync_manifest(&location, manifest.version).await?;
        Ok(Self::from_manifest(location, manifest, Default::default()))
    }

    fn from_manifest(location: DatasetLocation, manifest: Manifest, cache: Arc<FileCache>) -> Self {
        let schema = manifest.schema();
        let version_cache = Arc::new(VersionCache {
            fragment_positions: (manifest.fragments.iter().enumerate())
                .map(|(i, f)| (f.id, i))
                .collect(),
            derived: Derived::default(),
        });
        Self {
            location,
            manifest: Arc::new(manifest),
            schema,
            cache,
            version_cache,
        }
    }

    /// Opens the latest version.
    pub async fn open(location: DatasetLocation) -> Result<Self> {
        let latest = Self::latest_version(&location).await?;
        Self::open_version(location, latest).await
    }

    /// Opens the latest version, or, when the newest manifests cannot be read (damaged or
    /// foreign files), the newest version that can. Reading or writing the latest version
    /// then fails with the damaged manifest's error (which says how to recover), while
    /// `VERSION AS OF` an intact older version keeps working. Fails when no version is
    /// readable.
    pub async fn open_newest_readable(location: DatasetLocation) -> Result<Self> {
        let versions = versions::list_versions(&location).await?;
        let Some(&latest) = versions.last() else {
            return Err(not_a_dataset(&location));
        };
        let first_error = match Self::open_version(location.clone(), latest).await {
            Ok(dataset) => return Ok(dataset),
            Err(e) => e,
        };
        for &v in versions.iter().rev().skip(1) {
            if let Ok(dataset) = Self::open_version(location.clone(), v).await {
                log::warn!(
                    "{}: the newest manifest is unreadable, opened version {v}: {first_error}",
                    location.uri
                );
                return Ok(dataset);
            }
        }
        Err(first_error)
    }

    /// Opens a specific version.
    pub async fn open_version(location: DatasetLocation, version: u64) -> Result<Self> {
        Self::open_version_with_cache(location, version, Default::default()).await
    }

    async fn open_version_with_cache(
        location: DatasetLocation,
        version: u64,
        cache: Arc<FileCache>,
    ) -> Result<Self> {
        match versions::read_manifest(&location, version).await? {
            Some(m) => Ok(Self::from_manifest(location, m, cache)),
            None => {
                let all = versions::list_versions(&location).await?;
                Err(match (all.first(), all.last()) {
                    (Some(first), Some(last)) => plan_datafusion_err!(
                        "dataset {} has no version {version}; its versions are {first}..={last}",
                        location.uri
                    ),
                    _ => not_a_dataset(&location),
                })
            }
        }
    }

    /// The newest committed version number at `location`.
    pub async fn latest_version(location: &DatasetLocation) -> Result<u64> {
        versions::list_versions(location)
            .await?
            .last()
            .copied()
            .ok_or_else(|| not_a_dataset(location))
    }

    /// Whether a dataset exists at `location`.
    pub async fn exists(location: &DatasetLocation) -> Result<bool> {
        Ok(!versions::list_versions(location).await?.is_empty())
    }

    /// This dataset at its newest version (shares the file cache). Versions are numbered
    /// without gaps, so when version `n + 1` does not exist this handle is already the newest:
    /// the common case costs one metadata request instead of a listing.
    pub async fn checkout_latest(&self) -> Result<Self> {
        if !versions::manifest_exists(&self.location, self.version() + 1).await? {
            return Ok(self.clone());
        }
        let latest = Self::latest_version(&self.location).await?;
        if latest == self.version() {
            return Ok(self.clone());
        }
        self.checkout_version(latest).await
    }

    /// This dataset at `version` (shares the file cache).
    pub async fn checkout_version(&self, version: u64) -> Result<Self> {
        if version == self.version() {
            return Ok(self.clone());
        }
        Self::open_version_with_cache(self.location.clone(), version, self.cache.clone()).await
    }

    /// Manifests of every version, oldest first.
    pub async fn history(&self) -> Result<Vec<Manifest>> {
        let mut out = vec![];
        for v in versions::list_versions(&self.location).await? {
            if let Some(m) = versions::read_manifest(&self.location, v).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub fn location(&self) -> &DatasetLocation {
        &self.location
    }

    pub fn uri(&self) -> &str {
        &self.location.uri
    }

    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    pub fn version(&self) -> u64 {
        self.manifest.version
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn fragments(&self) -> &[FragmentMeta] {
        &self.manifest.fragments
    }

    /// The fragment `id` of this version, if it has one (a hash lookup, unlike
    /// [`Manifest::fragment`]: rows are fetched by address one fragment id at a time).
    pub fn fragment(&self, id: u32) -> Option<&FragmentMeta> {
        let position = *self.version_cache.fragment_positions.get(&id)?;
        self.manifest.fragments.get(position)
    }

    /// Rows visible in this version.
    pub fn count_rows(&self) -> u64 {
        self.manifest.live_rows()
    }

    /// Commits `op` on top of this version and returns the new version.
    pub async fn commit(&self, op: &Operation) -> Result<Self> {
        let manifest = commit::commit(&self.location, &self.manifest, op).await?;
        Ok(Self::from_manifest(
            self.location.clone(),
            manifest,
            self.cache.clone(),
        ))
    }

    /// A writer for a new fragment of this dataset's schema.
    pub fn fragment_writer(&self) -> Result<FragmentWriter> {
        FragmentWriter::try_new(&self.location, self.schema.clone())
    }

    /// The opened files of `fragment` (memory-mapped when local; cached), read with this
    /// version's schema.
    pub async fn fragment_reader(&self, fragment: &FragmentMeta) -> Result<Arc<FragmentReader>> {
        // The files of a fragment never change, but ADD COLUMN gives it more of them and
        // DROP COLUMN changes the schema they are read with: both are part of the key.
        let key = std::iter::once(fragment.file.as_str())
            .chain(fragment.column_files.iter().map(|c| c.file.as_str()))
            .collect::<Vec<_>>()
            .join("+");
        if let Some(r) = self.cache.readers.lock().expect("cache").get(&key)
            && r.schema().fields() == self.schema.fields()
        {
            return Ok(r.clone());
        }
        let reader =
            Arc::new(FragmentReader::open(&self.location, fragment, self.schema.clone()).await?);
        // Remote fragments are whole-file copies in memory: only mapped files are cached.
        if self.location.local_root.is_some() {
            self.cache
                .readers
                .lock()
                .expect("cache")
                .insert(key, reader.clone());
        }
        Ok(reader)
    }

    /// An object built from the immutable file `file` (an opened index, say), built once with
    /// `open` and shared by every handle of this dataset.
    pub async fn cached_derived<T, F, Fut>(&self, file: &str, open: F) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.cache.derived.get_or_open(file, open).await
    }

    /// An object built from this version as a whole (what every search of one column reads
    /// of it, say), built once with `open` and shared by the clones of this handle; a handle
    /// on another version builds its own.
    pub async fn cached_for_version<T, F, Fut>(&self, key: &str, open: F) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.version_cache.derived.get_or_open(key, open).await
    }

    /// The deleted row offsets of `fragment` in this version (cached).
    pub async fn deletions(&self, fragment: &FragmentMeta) -> Result<Arc<RoaringBitmap>> {
        let Some(meta) = &fragment.deletion else {
            return Ok(Arc::new(RoaringBitmap::new()));
        };
        if let Some(d) = self.cache.deletions.lock().expect("cache").get(&meta.file) {
            return Ok(d.clone());
        }
        let bitmap = Arc::new(deletion::read_deletions(&self.location, fragment).await?);
        self.cache
            .deletions
            .lock()
            .expect("cache")
            .insert(meta.file.clone(), bitmap.clone());
        Ok(bitmap)
    }
}

fn not_a_dataset(location: &DatasetLocation) -> DataFusionError {
    plan_datafusion_err!(
        "{} is not a vecfusion dataset (no _versions/*.manifest found); create one with \
         CREATE EXTERNAL TABLE name (columns...) STORED AS VECFUSION LOCATION '...'",
        location.uri
    )
}
