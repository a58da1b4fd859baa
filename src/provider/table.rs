//! The `TableProvider` of a vecfusion dataset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{Statistics, plan_datafusion_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::column_values::{ComputedColumns, default_exprs};
use super::dml::{DeleteExec, UpdateExec};
use super::filters::{pushdown_kind, to_physical_exprs};
use super::scan::{ScanRequest, VecfusionScanExec};
use super::sink::VecfusionSink;
use crate::dataset::Dataset;

/// Which version of the dataset a table reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum VersionTarget {
    /// The newest version at the time of each query (the table follows new commits).
    Latest,
    /// A fixed version (`VERSION AS OF n`); read-only.
    Version(u64),
    /// The newest version committed at or before this time, in ms since the epoch
    /// (`TIMESTAMP AS OF '...'`); read-only.
    Timestamp(i64),
}

/// A vecfusion dataset as a DataFusion table.
///
/// Its schema is the one of the version it was made from: when `ALTER TABLE` changes the
/// columns, the session registers a new table (`provider::refresh_tables` does so for tables
/// changed by other sessions before each statement), and a statement planned against the old
/// columns fails with a clear error instead of reading the new ones.
#[derive(Debug)]
pub struct VecfusionTable {
    /// The most recently loaded version (refreshed at each scan for `Latest`).
    dataset: RwLock<Dataset>,
    target: VersionTarget,
    schema: SchemaRef,
    /// `DEFAULT`s of the columns, planned on first use (`get_column_default`).
    defaults: OnceLock<HashMap<String, Expr>>,
    /// Versions resolved ahead of planning for time travel (`resolve_view`), so that a view
    /// of an older version has that version's columns.
    views: Mutex<HashMap<VersionTarget, Dataset>>,
}

impl VecfusionTable {
    /// A table following the newest version of `dataset`.
    pub fn new(dataset: Dataset) -> Self {
        Self::with_target(dataset, VersionTarget::Latest)
    }

    pub fn with_target(dataset: Dataset, target: VersionTarget) -> Self {
        Self {
            schema: dataset.schema().clone(),
            dataset: RwLock::new(dataset),
            target,
            defaults: OnceLock::new(),
            views: Mutex::new(HashMap::new()),
        }
    }

    /// A read-only view of the same dataset at another version (time travel), with that
    /// version's columns when [`resolve_view`](Self::resolve_view) loaded it before planning
    /// (otherwise with this table's, checked when the view is scanned).
    pub fn at(&self, target: VersionTarget) -> Self {
        let resolved = self.views.lock().expect("views").get(&target).cloned();
        Self::with_target(resolved.unwrap_or_else(|| self.cached()), target)
    }

    /// Loads the version `target` names, so that [`at`](Self::at) can give the view its
    /// columns (planning is synchronous; loading a manifest is not).
    pub async fn resolve_view(&self, target: VersionTarget) -> Result<()> {
        let view = Self::with_target(self.cached(), target);
        let dataset = view.dataset().await?;
        self.views.lock().expect("views").insert(target, dataset);
        Ok(())
    }

    /// The version this table reads now, refused when its columns are no longer the ones the
    /// table (and so the statement being run) was planned with.
    async fn dataset_with_planned_columns(&self) -> Result<Dataset> {
        let dataset = self.dataset().await?;
        if dataset.schema().fields() != self.schema.fields() {
            return plan_err!(
                "the columns of table {} changed (ALTER TABLE, version {}) after this statement                  was planned; run it again (a session registered before the change sees the new                  columns once it runs a new statement through vecfusion, or after CREATE                  EXTERNAL TABLE again)",
                dataset.uri(),
                dataset.version()
            );
        }
        Ok(dataset)
    }

    pub fn target(&self) -> VersionTarget {
        self.target
    }

    /// The version loaded last, without touching storage.
    pub fn cached(&self) -> Dataset {
        self.dataset.read().expect("dataset lock").clone()
    }

    /// The version this table reads now: the newest one for a live table, the pinned one for a
    /// time-travel view.
    pub async fn dataset(&self) -> Result<Dataset> {
        let current = self.cached();
        let resolved = match self.target {
            VersionTarget::Latest => current.checkout_latest().await?,
            VersionTarget::Version(v) => current.checkout_version(v).await?,
            VersionTarget::Timestamp(ms) => {
                let history = current.history().await?;
                let version = history
                    .iter()
                    .rev()
                    .find(|m| m.timestamp_ms <= ms)
                    .map(|m| m.version)
                    .ok_or_else(|| {
                        let first = history.first().map(|m| {
                            chrono::DateTime::from_timestamp_millis(m.timestamp_ms)
                                .map(|t| t.to_rfc3339())
                                .unwrap_or_default()
                        });
                        plan_datafusion_err!(
                            "dataset {} did not exist at that time; its first version was \
                             committed at {}",
                            current.uri(),
                            first.unwrap_or_default()
                        )
                    })?;
                current.checkout_version(version).await?
            }
        };
        *self.dataset.write().expect("dataset lock") = resolved.clone();
        Ok(resolved)
    }

    /// The dataset to modify; refuses for time-travel views.
    pub(crate) async fn writable_dataset(&self, what: &str) -> Result<Dataset> {
        if self.target != VersionTarget::Latest {
            return plan_err!(
                "cannot {what} a historical version of a dataset; versions are immutable \
                 (query the table without VERSION AS OF to change it)"
            );
        }
        self.dataset_with_planned_columns().await
    }
}

#[async_trait]
impl datafusion::catalog::TableProvider for VecfusionTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let dataset = self.dataset_with_planned_columns().await?;
        let request = ScanRequest {
            projection: projection.cloned(),
            filters: filters.to_vec(),
            limit,
            with_row_address: false,
            ..Default::default()
        };
        let target = state.config().target_partitions();
        Ok(Arc::new(
            VecfusionScanExec::try_new(state, dataset, request, target).await?,
        ))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| pushdown_kind(f)).collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        // Planning-time estimate from the last loaded version; the scan reports exact counts.
        let rows = self.cached().count_rows() as usize;
        Some(Statistics::new_unknown(&self.schema).with_num_rows(Precision::Inexact(rows)))
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults
            .get_or_init(|| default_exprs(&self.schema).into_iter().collect())
            .get(column)
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} is not supported on vecfusion tables; use INSERT INTO (append), \
                 or DELETE/TRUNCATE and then INSERT"
            )));
        }
        let dataset = self.writable_dataset("insert into").await?;
        let sink = VecfusionSink::for_table(state, dataset, self.schema.clone())?;
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let dataset = self.writable_dataset("delete from").await?;
        DeleteExec::try_new(state, dataset, filters).await
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let dataset = self.writable_dataset("update").await?;
        let computed = ComputedColumns::plan(state, &self.schema)?;
        let assignments = assignments
            .into_iter()
            .map(|(col, expr)| {
                let idx = self.schema.index_of(&col)?;
                if computed.is_computed(idx) {
                    return plan_err!(
                        "column '{col}' is computed from other columns and cannot be set; \
                         UPDATE the columns it reads and it is recomputed"
                    );
                }
                let phys = to_physical_exprs(state, &self.schema, &[expr])?.remove(0);
                Ok((idx, phys))
            })
            .collect::<Result<Vec<_>>>()?;
        UpdateExec::try_new(state, dataset, filters, assignments, computed).await
    }

    async fn truncate(&self, state: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let dataset = self.writable_dataset("truncate").await?;
        DeleteExec::try_new(state, dataset, vec![]).await
    }
}
