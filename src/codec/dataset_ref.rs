//! A dataset version by name: what a plan node sends instead of its open `Dataset`.

use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use serde::{Deserialize, Serialize};

use super::blocking::block_on;
use crate::dataset::{Dataset, DatasetLocation};

/// One version of the dataset at `uri`, with the storage options its location was resolved
/// with (`aws.*` keys: they travel with the plan, as Ballista's session settings do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub uri: String,
    pub storage_options: Vec<(String, String)>,
    pub version: u64,
}

impl DatasetRef {
    pub fn of(dataset: &Dataset) -> Self {
        Self {
            uri: dataset.uri().to_string(),
            storage_options: dataset.location().storage_options.clone(),
            version: dataset.version(),
        }
    }

    /// Opens the version, resolving the location's store in `runtime` (an `s3://` store
    /// configured from the options and this process's environment, a registered store, or
    /// the local file system, which must then be one every process of the cluster sees).
    pub fn open(&self, runtime: &RuntimeEnv) -> Result<Dataset> {
        let location =
            DatasetLocation::resolve_with_options(&self.uri, &self.storage_options, runtime)?;
        block_on(Dataset::open_version(location, self.version))?
    }
}
