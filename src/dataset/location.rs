//! Where a dataset lives: an object store and a prefix in it.
//!
//! Every read and write goes through `object_store`, so a local directory and an `s3://`
//! prefix run the same code. When the store is the local file system we also keep the
//! directory path, so that fragments can be memory-mapped instead of copied into memory.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::{exec_datafusion_err, plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

/// A resolved dataset location.
#[derive(Debug, Clone)]
pub struct DatasetLocation {
    /// The location as a URL (`file:///abs/dir`, `s3://bucket/prefix`), for messages.
    pub uri: String,
    pub store: Arc<dyn ObjectStore>,
    /// Prefix of the dataset inside `store`.
    pub root: Path,
    /// The dataset directory when `store` is the local file system.
    pub local_root: Option<PathBuf>,
}

impl DatasetLocation {
    /// A dataset in a local directory (relative paths are taken from the working directory).
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let abs = std::path::absolute(dir.as_ref()).map_err(|e| {
            exec_datafusion_err!(
                "cannot resolve dataset path {}: {e}",
                dir.as_ref().display()
            )
        })?;
        if abs.is_file() {
            return plan_err!(
                "dataset location {} is a file; a vecfusion dataset is a directory (give a new \
                 or existing dataset directory)",
                abs.display()
            );
        }
        let root = Path::from_absolute_path(&abs)
            .map_err(|e| exec_datafusion_err!("invalid dataset path {}: {e}", abs.display()))?;
        let uri = Url::from_directory_path(&abs)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| abs.display().to_string());
        Ok(Self {
            uri: uri.trim_end_matches('/').to_string(),
            store: Arc::new(LocalFileSystem::new()),
            root,
            local_root: Some(abs),
        })
    }

    /// Resolves a `LOCATION`: a plain path or `file://` URL is a local directory; any other
    /// URL uses the object store registered for it in the session's runtime environment
    /// (`SessionContext::register_object_store`), as DataFusion's own tables do.
    pub fn resolve(location: &str, runtime: &RuntimeEnv) -> Result<Self> {
        let location = location.trim();
        if location.is_empty() {
            return plan_err!("a vecfusion dataset needs a LOCATION (a directory path or URL)");
        }
        if !location.contains("://") {
            return Self::local(location);
        }
        let url = Url::parse(location)
            .map_err(|e| plan_datafusion_err!("invalid dataset location '{location}': {e}"))?;
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|_| plan_datafusion_err!("invalid file URL '{location}'"))?;
            return Self::local(path);
        }
        let store_url = ObjectStoreUrl::parse(&url[..url::Position::BeforePath])?;
        let store = runtime.object_store(&store_url).map_err(|e| {
            plan_datafusion_err!(
                "no object store is registered for '{}://{}' ({e}); register one with \
                 SessionContext::register_object_store before using this location",
                url.scheme(),
                url.host_str().unwrap_or("")
            )
        })?;
        let root = Path::from_url_path(url.path())
            .map_err(|e| plan_datafusion_err!("invalid dataset location '{location}': {e}"))?;
        Ok(Self {
            uri: location.trim_end_matches('/').to_string(),
            store,
            root,
            local_root: None,
        })
    }

    /// Object path of a file given relative to the dataset root (`data/x.arrow`).
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    /// Local file path of a file relative to the dataset root, for local datasets.
    pub fn local_path(&self, relative: &str) -> Option<PathBuf> {
        self.local_root.as_ref().map(|r| r.join(relative))
    }
}
