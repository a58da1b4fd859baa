//! Finding and reading the manifests of a dataset's versions.

use datafusion::common::{exec_datafusion_err, exec_err};
use datafusion::error::{DataFusionError, Result};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::location::DatasetLocation;
use super::manifest::Manifest;

const VERSIONS_DIR: &str = "_versions";
const SUFFIX: &str = ".manifest";

/// `_versions/00000000000000000007.manifest`, relative to the dataset root: zero-padded so
/// names sort like numbers.
pub fn manifest_file(version: u64) -> String {
    format!("{VERSIONS_DIR}/{version:020}{SUFFIX}")
}

pub fn manifest_path(location: &DatasetLocation, version: u64) -> Path {
    location.path(&manifest_file(version))
}

/// Reads the manifest of `version`, or `None` if that version does not exist.
pub async fn read_manifest(location: &DatasetLocation, version: u64) -> Result<Option<Manifest>> {
    let path = manifest_path(location, version);
    let bytes = match location.store.get(&path).await {
        Ok(r) => r
            .bytes()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(DataFusionError::External(Box::new(e))),
    };
    let origin = format!("{}/{}", location.uri, manifest_file(version));
    let manifest = Manifest::decode(&bytes, &origin)?;
    if manifest.version != version {
        return exec_err!(
            "corrupted manifest {origin}: it describes version {}",
            manifest.version
        );
    }
    Ok(Some(manifest))
}

/// Whether `version` has been committed (one metadata request, no listing).
pub async fn manifest_exists(location: &DatasetLocation, version: u64) -> Result<bool> {
    // Every query asks this of its table (is there a newer version?). For a local dataset one
    // stat answers it here, instead of a round trip through object_store's blocking pool.
    if let Some(dir) = &location.local_root {
        let file = manifest_file(version);
        return dir
            .join(&file)
            .try_exists()
            .map_err(|e| exec_datafusion_err!("cannot check for {}/{file}: {e}", location.uri));
    }
    match location.store.head(&manifest_path(location, version)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(DataFusionError::External(Box::new(e))),
    }
}

/// All committed version numbers, ascending.
pub async fn list_versions(location: &DatasetLocation) -> Result<Vec<u64>> {
    let prefix = location.path(VERSIONS_DIR);
    let metas: Vec<_> = location
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let mut versions: Vec<u64> = metas
        .iter()
        .filter_map(|m| m.location.filename())
        .filter_map(|name| name.strip_suffix(SUFFIX))
        .filter_map(|num| num.parse().ok())
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// Whether anything at all is stored under the location (a non-empty directory).
pub async fn location_has_files(location: &DatasetLocation) -> Result<bool> {
    if let Some(dir) = &location.local_root {
        return Ok(match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(_) => false,
        });
    }
    let mut list = location.store.list(Some(&location.root));
    Ok(list
        .try_next()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .is_some())
}
