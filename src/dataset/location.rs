//! Where a dataset lives: an object store and a prefix in it.
//!
//! Every read and write goes through `object_store`, so a local directory and an `s3://`
//! prefix run the same code. When the store is the local file system we also keep the
//! directory path, so that fragments can be memory-mapped instead of copied into memory.
//!
//! `s3://bucket/prefix` needs no code from the user: the store is configured the way
//! object_store and the AWS tools are — `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT` (or `AWS_ENDPOINT_URL`) for an S3-compatible server,
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP one — and by the same keys as table options
//! (`'aws.endpoint'` or `'aws_endpoint'`), which win over the environment. Commits need
//! conditional PUT (`If-None-Match: *`), which S3 and the usual S3-compatible servers honour.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::{exec_datafusion_err, plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore};
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
    /// The storage options the location was resolved with, so that another process (a
    /// cluster executor) can resolve the same store.
    pub storage_options: Vec<(String, String)>,
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
            storage_options: vec![],
        })
    }

    /// Resolves a `LOCATION`: a plain path or `file://` URL is a local directory; any other
    /// URL uses the object store registered for it in the session's runtime environment
    /// (`SessionContext::register_object_store`), as DataFusion's own tables do, and an
    /// `s3://` URL without one gets a store configured from the environment.
    pub fn resolve(location: &str, runtime: &RuntimeEnv) -> Result<Self> {
        Self::resolve_with_options(location, &[], runtime)
    }

    /// [`Self::resolve`], with storage options (`aws.*` / `aws_*` keys) that configure an
    /// `s3://` store over the environment. A store built here is registered in `runtime`, so
    /// later statements on the same bucket share its connections and settings.
    pub fn resolve_with_options(
        location: &str,
        options: &[(String, String)],
        runtime: &RuntimeEnv,
    ) -> Result<Self> {
        let location = location.trim();
        if location.is_empty() {
            return plan_err!("a vecfusion dataset needs a LOCATION (a directory path or URL)");
        }
        let url =
            if location.contains("://") {
                Some(Url::parse(location).map_err(|e| {
                    plan_datafusion_err!("invalid dataset location '{location}': {e}")
                })?)
            } else {
                None
            };
        let s3 = url
            .as_ref()
            .is_some_and(|u| matches!(u.scheme(), "s3" | "s3a"));
        if !options.is_empty() && !s3 {
            return plan_err!(
                "storage options ({}) apply to s3:// locations only; '{location}' uses the \
                 object store registered for it",
                options
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let Some(url) = url else {
            return Self::local(location);
        };
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|_| plan_datafusion_err!("invalid file URL '{location}'"))?;
            return Self::local(path);
        }
        let store_url = ObjectStoreUrl::parse(&url[..url::Position::BeforePath])?;
        // Options were refused above for anything but s3://, so only an s3:// store is
        // ever built here; any other scheme needs the store registered for it.
        let store = match runtime.object_store(&store_url) {
            Ok(store) if options.is_empty() => store,
            _ if s3 => {
                let store = s3_store(&url, options)?;
                runtime.register_object_store(store_url.as_ref(), store.clone());
                store
            }
            registered => registered.map_err(|e| {
                plan_datafusion_err!(
                    "no object store is registered for '{}://{}' ({e}); register one with \
                     SessionContext::register_object_store before using this location",
                    url.scheme(),
                    url.host_str().unwrap_or("")
                )
            })?,
        };
        let root = Path::from_url_path(url.path())
            .map_err(|e| plan_datafusion_err!("invalid dataset location '{location}': {e}"))?;
        Ok(Self {
            uri: location.trim_end_matches('/').to_string(),
            store,
            root,
            local_root: None,
            storage_options: options.to_vec(),
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

/// An S3 store for the bucket of `url`: the environment's `AWS_*` settings, then `options`.
fn s3_store(url: &Url, options: &[(String, String)]) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    for (key, value) in options {
        let key_lower = key.to_ascii_lowercase();
        let name = match key_lower.strip_prefix("aws.") {
            Some(rest) => format!("aws_{rest}"),
            None => key_lower,
        };
        let config: AmazonS3ConfigKey = name.parse().map_err(|_| {
            plan_datafusion_err!(
                "unknown storage option '{key}' for {url}: use object_store's S3 keys, e.g. \
                 'aws.access_key_id', 'aws.secret_access_key', 'aws.region', 'aws.endpoint', \
                 'aws.allow_http'"
            )
        })?;
        builder = builder.with_config(config, value);
    }
    // object_store refuses plain HTTP with a bare "builder error" at the first request.
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let allow_http = builder
        .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Some(endpoint) = endpoint.filter(|e| e.starts_with("http://") && !allow_http) {
        return plan_err!(
            "the S3 endpoint {endpoint} of {url} is plain HTTP: allow it with \
             AWS_ALLOW_HTTP=true (or the table option 'aws.allow_http' 'true'), or use https"
        );
    }
    let store = builder.build().map_err(|e| {
        plan_datafusion_err!(
            "cannot open {url}: {e}. Set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION \
             and, for an S3-compatible server, AWS_ENDPOINT (and AWS_ALLOW_HTTP=true for \
             http://), or the same keys as table options ('aws.endpoint' ...)"
        )
    })?;
    Ok(Arc::new(store))
}
