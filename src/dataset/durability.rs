//! Making a committed version survive a power loss on a local disk.
//!
//! `object_store`'s local store writes each file to a staging name and renames it into place,
//! but never calls fsync: after a power cut, a manifest could be on disk while a fragment it
//! names is still empty in the page cache, or the rename of either could be lost. So a commit
//! first fsyncs every file the new version adds and the directories holding them (which makes
//! the renames durable), then writes the manifest, then fsyncs it and `_versions/`. A version
//! whose commit returned is on the disk.
//!
//! Object stores need none of this: S3 and its compatibles acknowledge a PUT only once the
//! object is stored durably, and a conditional create (`PutMode::Create`) is atomic, so the
//! functions below do nothing for datasets that are not local.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;

use super::location::DatasetLocation;
use super::versions::manifest_file;

/// Flushes `files` (relative to the dataset root) and their directories to the disk.
pub async fn sync_files(location: &DatasetLocation, files: &[String]) -> Result<()> {
    let Some(root) = location.local_root.clone() else {
        return Ok(());
    };
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    blocking(move || {
        let mut dirs = BTreeSet::new();
        for path in &paths {
            sync(path)?;
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        dirs.iter().try_for_each(|d| sync(d))
    })
    .await
}

/// Flushes version `version`'s manifest and the `_versions` directory to the disk.
pub async fn sync_manifest(location: &DatasetLocation, version: u64) -> Result<()> {
    sync_files(location, &[manifest_file(version)]).await
}

/// fsync of a file or a directory (opening a directory read-only and syncing it is how a
/// rename inside it is made durable on Linux).
fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| exec_datafusion_err!("cannot flush {} to disk: {e}", path.display()))
}

async fn blocking(f: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| exec_datafusion_err!("flushing to disk was interrupted: {e}"))?
}
