//! `CREATE EXTERNAL TABLE ... STORED AS VECFUSION LOCATION '...'`.
//!
//! With a column list the statement creates a dataset (or opens an existing one whose schema
//! matches); without one it opens an existing dataset. `OPTIONS ('version' 'n')` opens a
//! read-only view of version `n`; `aws.*` options configure an `s3://` location's store
//! (see `dataset::location`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::CreateExternalTable;

use super::table::{VecfusionTable, VersionTarget};
use crate::dataset::versions::location_has_files;
use crate::dataset::{Dataset, DatasetLocation};

/// Options `CREATE EXTERNAL TABLE ... OPTIONS (...)` accepts, besides storage options.
const OPTIONS: &[&str] = &[
    "version",
    "aws.* (S3 storage: aws.endpoint, aws.region, ...)",
];

#[derive(Debug, Default)]
pub struct VecfusionTableFactory;

#[async_trait]
impl TableProviderFactory for VecfusionTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let location = match cmd.locations.as_slice() {
            [one] => one,
            _ => {
                return plan_err!(
                    "STORED AS VECFUSION takes exactly one LOCATION (the dataset directory)"
                );
            }
        };
        if !cmd.table_partition_cols.is_empty() || !cmd.order_exprs.is_empty() || cmd.unbounded {
            return plan_err!(
                "vecfusion tables do not support PARTITIONED BY, WITH ORDER or UNBOUNDED"
            );
        }
        let mut version = None;
        let mut storage = vec![];
        for (key, value) in &cmd.options {
            let name = key.strip_prefix("format.").unwrap_or(key);
            match name {
                _ if name.starts_with("aws.") || name.starts_with("aws_") => {
                    storage.push((name.to_string(), value.clone()))
                }
                "version" => {
                    version = Some(value.parse::<u64>().map_err(|_| {
                        plan_datafusion_err!(
                            "option 'version' must be a version number, got '{value}'"
                        )
                    })?)
                }
                _ => {
                    return plan_err!(
                        "unknown option '{name}' for STORED AS VECFUSION; supported options: {}",
                        OPTIONS.join(", ")
                    );
                }
            }
        }
        let location =
            DatasetLocation::resolve_with_options(location, &storage, state.runtime_env())?;
        let declared: Schema = cmd.schema.as_arrow().clone();
        let exists = Dataset::exists(&location).await.map_err(|e| {
            plan_datafusion_err!(
                "cannot read the dataset location {}: {}. Check that the storage is reachable \
                 and the credentials are right (for s3://: AWS_* variables or 'aws.*' options)",
                location.uri,
                e.strip_backtrace()
            )
        })?;
        let dataset = if exists {
            let dataset = match version {
                // Only that version's manifest is read: it opens even when newer ones are
                // damaged.
                Some(v) => Dataset::open_version(location, v).await?,
                None => Dataset::open_newest_readable(location).await?,
            };
            if !declared.fields().is_empty() {
                check_same_columns(&declared, &dataset)?;
            }
            dataset
        } else if declared.fields().is_empty() {
            if location_has_files(&location).await? {
                return plan_err!(
                    "{} is not a vecfusion dataset (it has files but no _versions/*.manifest)",
                    location.uri
                );
            }
            return plan_err!(
                "there is no vecfusion dataset at {}; give a column list to create one, e.g. \
                 CREATE EXTERNAL TABLE items (id BIGINT, embedding FLOAT[128]) STORED AS \
                 VECFUSION LOCATION '...'",
                location.uri
            );
        } else if version.is_some() {
            return plan_err!(
                "option 'version' needs an existing dataset, and there is none at {}",
                location.uri
            );
        } else {
            Dataset::create(location, Arc::new(declared)).await?
        };
        let table = match version {
            Some(v) => VecfusionTable::with_target(dataset, VersionTarget::Version(v)),
            None => VecfusionTable::new(dataset),
        };
        Ok(Arc::new(table))
    }
}

fn check_same_columns(declared: &Schema, dataset: &Dataset) -> Result<()> {
    let existing = dataset.schema();
    let same = declared.fields().len() == existing.fields().len()
        && declared
            .fields()
            .iter()
            .zip(existing.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        return Ok(());
    }
    let describe = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    plan_err!(
        "the dataset at {} has columns ({}), which differ from the column list given ({}); \
         omit the column list to open it as it is",
        dataset.uri(),
        describe(existing),
        describe(declared)
    )
}
