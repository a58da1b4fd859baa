//! Resolving the table argument of vecfusion's table functions.
//!
//! `TableFunctionImpl::call` is synchronous while catalog lookups are `async`. The in-memory
//! catalogs DataFusion uses by default answer immediately, so the lookup is polled once; a
//! catalog that would have to wait gets a clear error instead of a blocked thread.

use std::sync::Arc;

use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{ScalarValue, TableReference, internal_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use futures::FutureExt;

use crate::dataset::{Dataset, DatasetLocation};
use crate::provider::VecfusionTable;

/// A table function's dataset argument: a registered vecfusion table, or a dataset location.
#[derive(Debug, Clone)]
pub enum DatasetArg {
    Table {
        name: String,
        provider: Arc<dyn TableProvider>,
    },
    Location(DatasetLocation),
}

impl DatasetArg {
    /// The registered table, when the argument named one.
    pub fn table(&self) -> Option<&VecfusionTable> {
        match self {
            DatasetArg::Table { provider, .. } => provider.downcast_ref::<VecfusionTable>(),
            DatasetArg::Location(_) => None,
        }
    }

    /// The dataset at the version the table reads (or the latest, for a location).
    pub async fn dataset(&self) -> Result<Dataset> {
        match self {
            DatasetArg::Table { provider, .. } => match provider.downcast_ref::<VecfusionTable>() {
                Some(t) => t.dataset().await,
                None => internal_err!("not a vecfusion table"),
            },
            DatasetArg::Location(loc) => Dataset::open(loc.clone()).await,
        }
    }
}

/// A string literal argument.
pub fn string_arg(e: &Expr, usage: &str, what: &str) -> Result<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Ok(s.clone()),
        other => plan_err!("{usage}: {what} must be a string literal, got {other}"),
    }
}

/// Resolves `arg` (a table name, or a dataset path/URL) for the function `usage`.
pub fn resolve_dataset_arg(session: &dyn Session, arg: &str, usage: &str) -> Result<DatasetArg> {
    if let Some(provider) = lookup_table(session, arg)? {
        if provider.downcast_ref::<VecfusionTable>().is_none() {
            return plan_err!(
                "{usage}: table '{arg}' is not a vecfusion table (STORED AS VECFUSION)"
            );
        }
        return Ok(DatasetArg::Table {
            name: arg.to_string(),
            provider,
        });
    }
    if arg.contains('/') || arg.contains("://") || arg.starts_with('.') {
        return Ok(DatasetArg::Location(DatasetLocation::resolve(
            arg,
            session.runtime_env(),
        )?));
    }
    plan_err!("{usage}: there is no table named '{arg}' (pass a table name or a dataset path)")
}

fn lookup_table(session: &dyn Session, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
    let reference = TableReference::from(name);
    let options = session.config_options();
    let catalog_name = reference
        .catalog()
        .unwrap_or(&options.catalog.default_catalog)
        .to_string();
    let schema_name = reference
        .schema()
        .unwrap_or(&options.catalog.default_schema)
        .to_string();
    let Some(catalog) = session.catalog_list().catalog(&catalog_name) else {
        return Ok(None);
    };
    let Some(schema) = catalog.schema(&schema_name) else {
        return Ok(None);
    };
    match schema.table(reference.table()).now_or_never() {
        Some(result) => result,
        None => plan_err!(
            "the catalog holding '{name}' looks tables up asynchronously; pass the dataset \
             location instead of the table name"
        ),
    }
}
