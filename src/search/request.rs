//! The one public search API. Every surface — the `ORDER BY distance LIMIT k` rewrite,
//! `vector_search()`, Python's `search`, the benchmarks and Rust programs — describes what it
//! wants as a [`SearchRequest`] and runs it through [`PreparedSearch`], which resolves the
//! vector column, checks the query dimension, picks the distance function and the index,
//! reads the session's settings, plans the prefilter and fetches the rows.
//!
//! ```no_run
//! # use vecfusion::search::{PreparedSearch, SearchOutput, SearchRequest};
//! # async fn demo(ctx: datafusion::prelude::SessionContext, dataset: vecfusion::Dataset)
//! #     -> datafusion::error::Result<()> {
//! let request = SearchRequest::new(vec![0.0; 128], 10).column("embedding");
//! let search = PreparedSearch::new(&ctx.state(), dataset, request).await?;
//! let rows = search.collect(ctx.task_ctx(), &SearchOutput::all_columns()).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float32Array, RecordBatch, RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{exec_datafusion_err, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use rayon::prelude::*;
use vecfusion_kernels::scan::TABLE_QUERIES;

use super::prefilter::{AllowedRows, collect_allowed, prefilter_scan};
use super::searcher::{SearchOutcome, SearchTarget, probed_index, search, search_prepared};
use super::settings::{SearchParams, SearchSettings};
use super::version_vectors::VersionVectors;
use crate::dataset::{Dataset, resolve_vector_column};
use crate::kmeans::cancel::Cancel;
use crate::metric::{DistanceFunction, Metric, check_finite_query};

/// Name of the distance column searches add.
pub const DISTANCE_COLUMN: &str = "_distance";
/// Name of the column that says which query a row answers, in multi-query results.
pub const QUERY_INDEX_COLUMN: &str = "query_index";

/// A top-k vector search, as a caller asks for it.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The vector column; `None`: the table's only `FLOAT[d]` column.
    pub column: Option<String>,
    /// The distance that ranks; `None`: that of the column's most recent index's metric
    /// (`l2_distance` when it has none).
    pub function: Option<DistanceFunction>,
    /// One or more query vectors, row-major (`n × dim`).
    pub queries: Vec<f32>,
    /// Rows per query.
    pub k: usize,
    /// Overrides `vecfusion.nprobes`.
    pub nprobes: Option<usize>,
    /// Overrides `vecfusion.refine_factor`.
    pub refine_factor: Option<usize>,
    /// Overrides `vecfusion.use_index`.
    pub use_index: Option<bool>,
    /// Predicates over the table's columns, applied before the top-k.
    pub filters: Vec<Expr>,
}

impl SearchRequest {
    /// The `k` rows closest to each of `queries` (row-major), with the session's settings.
    pub fn new(queries: Vec<f32>, k: usize) -> Self {
        Self {
            column: None,
            function: None,
            queries,
            k,
            nprobes: None,
            refine_factor: None,
            use_index: None,
            filters: vec![],
        }
    }

    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }

    pub fn function(mut self, function: DistanceFunction) -> Self {
        self.function = Some(function);
        self
    }

    /// Checks the request against a table schema: the vector column exists and the queries
    /// are whole vectors of its dimension. Returns `(column position, dimension)`.
    pub fn check(&self, schema: &Schema) -> Result<(usize, usize)> {
        let (column, dim) = resolve_vector_column(schema, self.column.as_deref())?;
        check_queries(schema.field(column).name(), dim, &self.queries)?;
        Ok((column, dim))
    }
}

/// Searches each of `queries` (row-major, `dim` columns) in parallel, in query order; stops
/// with an error at the next group of queries once `cancel` is cancelled. Each task
/// prepares a group of [`TABLE_QUERIES`] queries together (their coarse scores and tables
/// share the codebook reads), then searches them one by one.
fn search_all(
    target: &SearchTarget,
    version: &VersionVectors,
    queries: &[f32],
    dim: usize,
    allowed: Option<&AllowedRows>,
    cancel: &Cancel,
) -> Result<Vec<SearchOutcome>> {
    let index = probed_index(target, version, allowed);
    let groups: Vec<Vec<SearchOutcome>> = queries
        .par_chunks(dim * TABLE_QUERIES)
        .map(|group| {
            if cancel.is_cancelled() {
                return exec_err!("the search was cancelled");
            }
            let prepared = index.map(|ix| ix.prepare(group));
            group
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, q)| {
                    let probe = index.zip(prepared.as_ref().map(|p| &p[i]));
                    search_prepared(target, version, q, probe, allowed)
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    Ok(groups.into_iter().flatten().collect())
}

/// Refuses `queries` unless they are whole, finite vectors of `column`'s dimension `dim`.
fn check_queries(column: &str, dim: usize, queries: &[f32]) -> Result<()> {
    if queries.is_empty() || !queries.len().is_multiple_of(dim) {
        return plan_err!(
            "column '{column}' holds {dim}-dimensional vectors, the query has {} values; \
             pass a vector of {dim} numbers",
            queries.len()
        );
    }
    check_finite_query(queries, dim)
}

/// Refuses a search that would probe no partition or keep no candidate.
fn check_probes(nprobes: usize, refine_factor: usize) -> Result<()> {
    if nprobes == 0 || refine_factor == 0 {
        return plan_err!(
            "nprobes and refine_factor must be at least 1, got nprobes = {nprobes}, \
             refine_factor = {refine_factor}"
        );
    }
    Ok(())
}

/// What a search returns per row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SearchOutput {
    /// Table columns, in this order (every column when `None`).
    pub projection: Option<Vec<usize>>,
    /// Append [`DISTANCE_COLUMN`].
    pub with_distance: bool,
    /// Prepend [`QUERY_INDEX_COLUMN`] (for many queries).
    pub with_query_index: bool,
}

impl SearchOutput {
    /// Every table column and the distance.
    pub fn all_columns() -> Self {
        Self {
            projection: None,
            with_distance: true,
            with_query_index: false,
        }
    }

    /// The output that yields `columns` of this one's rows, in that order (indices into
    /// [`Self::schema`] for a table of `table_columns` columns), if one can: the query index
    /// first or not at all, then table columns, each once, then the distance or not.
    pub fn select(&self, columns: &[usize], table_columns: usize) -> Option<Self> {
        let offset = usize::from(self.with_query_index);
        let (with_query_index, rest) = match columns.split_first() {
            Some((0, rest)) if self.with_query_index => (true, rest),
            _ => (false, columns),
        };
        if self.with_query_index && !with_query_index {
            return None;
        }
        let kept = self.projection.as_ref().map_or(table_columns, Vec::len);
        let distance = offset + kept;
        let (with_distance, rest) = match rest.split_last() {
            Some((&d, rest)) if self.with_distance && d == distance => (true, rest),
            _ => (false, rest),
        };
        let mut projection = Vec::with_capacity(rest.len());
        for &c in rest {
            let position = c.checked_sub(offset).filter(|p| *p < kept)?;
            let column = self.projection.as_ref().map_or(position, |p| p[position]);
            if projection.contains(&column) {
                return None;
            }
            projection.push(column);
        }
        // Rows of no table column at all are left to the projection above.
        if projection.is_empty() {
            return None;
        }
        Some(Self {
            projection: Some(projection),
            with_distance,
            with_query_index,
        })
    }

    /// The schema of the rows, for a table of `table` schema.
    pub fn schema(&self, table: &Schema) -> SchemaRef {
        let mut fields = vec![];
        if self.with_query_index {
            fields.push(Field::new(QUERY_INDEX_COLUMN, DataType::UInt32, false));
        }
        match &self.projection {
            Some(p) => fields.extend(p.iter().map(|i| table.field(*i).clone())),
            None => fields.extend(table.fields().iter().map(|f| f.as_ref().clone())),
        }
        if self.with_distance {
            fields.push(Field::new(DISTANCE_COLUMN, DataType::Float32, false));
        }
        Arc::new(Schema::new_with_metadata(fields, table.metadata().clone()))
    }
}

/// A request resolved against one dataset version and a session, ready to run (any number of
/// times).
#[derive(Debug, Clone)]
pub struct PreparedSearch {
    target: SearchTarget,
    queries: Arc<Vec<f32>>,
    dim: usize,
    prefilter: Option<Arc<dyn ExecutionPlan>>,
}

impl PreparedSearch {
    /// Resolves `request` against `dataset` (the version to read) with `session`'s settings.
    pub async fn new(
        session: &dyn Session,
        dataset: Dataset,
        request: SearchRequest,
    ) -> Result<Self> {
        let (column, dim) = request.check(dataset.schema())?;
        let name = dataset.schema().field(column).name().clone();
        let manifest = dataset.manifest();
        let function = request.function.unwrap_or_else(|| {
            DistanceFunction::for_metric(manifest.column_metric(&name).unwrap_or(Metric::L2))
        });
        let settings = SearchSettings::of(session);
        let use_index = request.use_index.unwrap_or(settings.use_index);
        let index = manifest
            .search_index(&name, function.metric())
            .filter(|_| use_index);
        let nprobes = request.nprobes.unwrap_or(settings.nprobes);
        let refine_factor = request.refine_factor.unwrap_or(settings.refine_factor);
        check_probes(nprobes, refine_factor)?;
        let params = SearchParams {
            // No search can return more rows than the version holds.
            k: request
                .k
                .min(dataset.count_rows().try_into().unwrap_or(usize::MAX)),
            nprobes,
            refine_factor,
        };
        let prefilter = prefilter_scan(session, &dataset, request.filters).await?;
        Ok(Self {
            target: SearchTarget {
                dataset,
                column,
                function,
                index,
                params,
            },
            queries: Arc::new(request.queries),
            dim,
            prefilter,
        })
    }

    /// A search resolved by another process of a cluster (the scheduler), made again on
    /// this one from what it reported: [`Self::dataset`], [`Self::column`],
    /// [`Self::function`], [`Self::index_position`], [`Self::params`], [`Self::queries`] and
    /// [`Self::prefilter`]. Checked like a new request, since the parts crossed a network.
    pub fn from_parts(
        dataset: Dataset,
        (column, function, index): (usize, DistanceFunction, Option<usize>),
        params: SearchParams,
        queries: Vec<f32>,
        prefilter: Option<Arc<dyn ExecutionPlan>>,
    ) -> Result<Self> {
        let schema = dataset.schema().clone();
        if column >= schema.fields().len() {
            return plan_err!(
                "the search names column {column} of a table with {} columns",
                schema.fields().len()
            );
        }
        let name = schema.field(column).name();
        let (_, dim) = resolve_vector_column(&schema, Some(name))?;
        check_queries(name, dim, &queries)?;
        if let Some(i) = index {
            let indexes = &dataset.manifest().indexes;
            if indexes
                .get(i)
                .is_none_or(|meta| &meta.column != name || meta.metric != function.metric())
            {
                return plan_err!(
                    "version {} of dataset {} has no index {i} on '{name}' for {}",
                    dataset.version(),
                    dataset.uri(),
                    function.name()
                );
            }
        }
        check_probes(params.nprobes, params.refine_factor)?;
        Ok(Self {
            target: SearchTarget {
                dataset,
                column,
                function,
                index,
                params,
            },
            queries: Arc::new(queries),
            dim,
            prefilter,
        })
    }

    pub fn dataset(&self) -> &Dataset {
        &self.target.dataset
    }

    /// Position in the version's `manifest().indexes` of the index probed (`None`: exact).
    pub fn index_position(&self) -> Option<usize> {
        self.target.index
    }

    /// Position of the vector column in the table schema.
    pub fn column(&self) -> usize {
        self.target.column
    }

    pub fn function(&self) -> DistanceFunction {
        self.target.function
    }

    pub fn params(&self) -> SearchParams {
        self.target.params
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The query vectors, row-major.
    pub fn queries(&self) -> &[f32] {
        &self.queries
    }

    /// The same search for other query vectors of the same dimension (a prepared statement
    /// run again with a new vector); checked as [`SearchRequest::check`] checks them.
    pub fn with_queries(&self, queries: Vec<f32>) -> Result<Self> {
        let column = self.dataset().schema().field(self.column()).name();
        check_queries(column, self.dim, &queries)?;
        Ok(Self {
            queries: Arc::new(queries),
            ..self.clone()
        })
    }

    pub fn num_queries(&self) -> usize {
        self.queries.len() / self.dim
    }

    /// The index the search probes, as `name (kind)`; `None`: an exact search.
    pub fn index(&self) -> Option<String> {
        self.target
            .index_meta()
            .map(|i| format!("{} ({})", i.name, i.kind))
    }

    /// The prefilter plan, if the request has filters.
    pub fn prefilter(&self) -> Option<&Arc<dyn ExecutionPlan>> {
        self.prefilter.as_ref()
    }

    /// The same search over another prefilter plan (`ExecutionPlan::with_new_children`).
    pub fn with_prefilter(&self, prefilter: Option<Arc<dyn ExecutionPlan>>) -> Self {
        Self {
            prefilter,
            ..self.clone()
        }
    }

    /// Runs the prefilter, if any: the rows the filters allow.
    pub async fn allowed_rows(&self, context: Arc<TaskContext>) -> Result<Option<AllowedRows>> {
        match &self.prefilter {
            Some(plan) => Ok(Some(collect_allowed(plan.clone(), context).await?)),
            None => Ok(None),
        }
    }

    /// Searches every query among the `allowed` rows; several queries run in parallel on
    /// every core (rayon's pool, off the async runtime's threads), and stop at the next query
    /// once this future is dropped (a cancelled statement). One outcome per query, in query
    /// order.
    pub async fn search(&self, allowed: Option<Arc<AllowedRows>>) -> Result<Vec<SearchOutcome>> {
        let target = &self.target;
        let version = VersionVectors::of(&target.dataset, target.column, target.index).await?;
        if self.num_queries() == 1 {
            return Ok(vec![search(
                target,
                &version,
                &self.queries,
                allowed.as_deref(),
            )?]);
        }
        let (target, queries, dim) = (target.clone(), self.queries.clone(), self.dim);
        let (cancel, _cancel_on_drop) = Cancel::on_drop();
        tokio::task::spawn_blocking(move || {
            search_all(
                &target,
                &version,
                &queries,
                dim,
                allowed.as_deref(),
                &cancel,
            )
        })
        .await
        .map_err(|e| exec_datafusion_err!("a search task failed: {e}"))?
    }

    /// The rows of `outcomes`, fetched by address, shaped as `output` says.
    pub async fn rows(
        &self,
        outcomes: &[SearchOutcome],
        output: &SearchOutput,
    ) -> Result<RecordBatch> {
        let dataset = self.dataset();
        let schema = output.schema(dataset.schema());
        let mut addresses = vec![];
        let mut distances = vec![];
        let mut query_index = vec![];
        for (i, o) in outcomes.iter().enumerate() {
            addresses.extend_from_slice(&o.addresses);
            distances.extend_from_slice(&o.distances);
            query_index.extend(std::iter::repeat_n(i as u32, o.addresses.len()));
        }
        let rows = dataset
            .take(&addresses, output.projection.as_deref())
            .await?;
        let mut columns: Vec<ArrayRef> = vec![];
        if output.with_query_index {
            columns.push(Arc::new(UInt32Array::from(query_index)));
        }
        columns.extend(rows.columns().iter().cloned());
        if output.with_distance {
            columns.push(Arc::new(Float32Array::from(distances)));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(addresses.len()));
        Ok(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?)
    }

    /// Prefilter, search and fetch: the whole search (`AnnSearchExec` runs the same three
    /// steps with metrics between them).
    pub async fn collect(
        &self,
        context: Arc<TaskContext>,
        output: &SearchOutput,
    ) -> Result<RecordBatch> {
        let allowed = self.allowed_rows(context).await?;
        let outcomes = self.search(allowed.map(Arc::new)).await?;
        self.rows(&outcomes, output).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{create_table, latest, session_after};

    #[test]
    fn a_selection_of_a_searchs_columns_is_an_output_of_its_own() {
        let out = |projection: Option<Vec<usize>>, with_distance, with_query_index| SearchOutput {
            projection,
            with_distance,
            with_query_index,
        };
        let select = |o: &SearchOutput, columns: &[usize]| {
            o.select(columns, 4)
                .map(|s| (s.projection, s.with_distance, s.with_query_index))
        };
        // Every column of a 4-column table, then the distance (index 4).
        let all = SearchOutput::all_columns();
        assert_eq!(select(&all, &[0]), Some((Some(vec![0]), false, false)));
        assert_eq!(
            select(&all, &[2, 0, 4]),
            Some((Some(vec![2, 0]), true, false))
        );
        // The distance only last, each column once, some table column.
        assert_eq!(select(&all, &[4, 0]), None);
        assert_eq!(select(&all, &[1, 1]), None);
        assert_eq!(select(&all, &[4]), None);
        assert_eq!(select(&all, &[5]), None);
        // Over a projection: positions map to the table's columns.
        let some = out(Some(vec![3, 1]), true, false);
        assert_eq!(select(&some, &[1, 2]), Some((Some(vec![1]), true, false)));
        assert_eq!(select(&some, &[2]), None);
        // The query index stays first.
        let many = out(Some(vec![3, 1]), true, true);
        assert_eq!(select(&many, &[0, 2, 3]), Some((Some(vec![1]), true, true)));
        assert_eq!(select(&many, &[2, 3]), None);
        assert_eq!(select(&many, &[1, 0]), None);
    }

    #[tokio::test]
    async fn a_cancelled_batch_stops_before_its_next_query() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session_after(&[
            create_table(dir.path(), "id BIGINT, embedding FLOAT[8]"),
            "INSERT INTO t SELECT * FROM random_vectors(500, 8)".into(),
        ])
        .await;
        let queries: Vec<f32> = (0..8 * 40).map(|i| (i % 7) as f32 / 7.0).collect();
        let request = SearchRequest::new(queries.clone(), 3);
        let prepared = PreparedSearch::new(&ctx.state(), latest(dir.path()).await, request)
            .await
            .unwrap();
        let t = &prepared.target;
        let version = VersionVectors::of(&t.dataset, t.column, t.index)
            .await
            .unwrap();
        let found = search_all(t, &version, &queries, 8, None, &Cancel::default()).unwrap();
        assert_eq!(found.len(), 40);
        assert!(found.iter().all(|o| o.len() == 3));
        // In query order: each outcome is that query's own search.
        let fifth = search(t, &version, &queries[5 * 8..6 * 8], None).unwrap();
        assert_eq!(found[5].addresses, fifth.addresses);

        let (cancel, cancel_on_drop) = Cancel::on_drop();
        drop(cancel_on_drop);
        let err = search_all(t, &version, &queries, 8, None, &cancel).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
    }
}
