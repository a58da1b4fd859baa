//! `Session` (a DataFusion session with vecfusion) and `QueryResult` (Arrow batches).

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::{DFSchema, plan_err};
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use vecfusion::dataset::{Dataset, DatasetLocation, resolve_vector_column};
use vecfusion::progress::{ProgressEvent, ProgressHook};
use vecfusion::provider::{VecfusionTable, conform_batch};
use vecfusion::search::{PreparedSearch, SearchOutput, SearchRequest};
use vecfusion::{VecfusionContext, new_session_context_with_config};
use vecfusion_cluster::remote_session_context_with_config;

use crate::arrow_stream;
use crate::runtime::wait;

/// Arrow record batches: the result of a statement or a search.
#[pyclass(module = "vecfusion._native", frozen)]
pub struct QueryResult {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

#[pymethods]
impl QueryResult {
    /// The Arrow PyCapsule stream interface: `pyarrow.table(result)` and friends read it.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        arrow_stream::export(py, self.schema.clone(), self.batches.clone())
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

/// A DataFusion session with vecfusion: SQL (including vecfusion's statements), datasets,
/// vector search.
#[pyclass(module = "vecfusion._native", frozen)]
pub struct Session {
    ctx: SessionContext,
    /// The cluster's address when statements run on one (`connect("df://...")`).
    remote: Option<String>,
    /// The Python callable receiving progress events during the current call, if any.
    progress: Arc<Mutex<Option<Py<PyAny>>>>,
}

impl Session {
    fn result(schema: SchemaRef, batches: Vec<RecordBatch>) -> QueryResult {
        QueryResult { schema, batches }
    }
}

#[pymethods]
impl Session {
    /// A session in this process, or (`remote = "df://HOST:PORT"`) one whose statements run on
    /// the vecfusion cluster whose scheduler is there.
    #[new]
    #[pyo3(signature = (remote = None))]
    fn new(py: Python<'_>, remote: Option<String>) -> PyResult<Self> {
        let progress: Arc<Mutex<Option<Py<PyAny>>>> = Arc::new(Mutex::new(None));
        let slot = progress.clone();
        let hook = ProgressHook::new(move |e: &ProgressEvent| {
            let callback = slot
                .lock()
                .expect("progress slot")
                .as_ref()
                .map(|c| Python::attach(|py| c.clone_ref(py)));
            if let Some(cb) = callback {
                Python::attach(|py| {
                    // A failing progress callback must not fail the build.
                    let _ = cb.call1(py, (e.phase, e.done, e.total, e.unit));
                });
            }
        });
        let config = SessionConfig::new().with_extension(Arc::new(hook));
        let ctx = match &remote {
            None => new_session_context_with_config(config),
            Some(url) => {
                let url = url.clone();
                wait(py, async move {
                    remote_session_context_with_config(&url, config).await
                })?
            }
        };
        Ok(Self {
            ctx,
            remote,
            progress,
        })
    }

    /// The cluster's address, or `None` for an in-process session.
    #[getter]
    fn remote(&self) -> Option<String> {
        self.remote.clone()
    }

    /// Runs every statement of `query` in order and returns the last one's result.
    /// `progress(phase, done, total, unit)` hears about long work (index builds).
    #[pyo3(signature = (query, progress = None))]
    fn sql(
        &self,
        py: Python<'_>,
        query: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<QueryResult> {
        *self.progress.lock().expect("progress slot") = progress;
        let ctx = self.ctx.clone();
        let query = query.to_string();
        let outcome = wait(py, async move {
            let mut last = (Arc::new(Schema::empty()), vec![]);
            let mut script = ctx.vf_script(&query).await?;
            while let Some(df) = script.next().await {
                let df = df?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                last = (schema, df.collect().await?);
            }
            Ok(last)
        });
        *self.progress.lock().expect("progress slot") = None;
        let (schema, batches) = outcome?;
        Ok(Self::result(schema, batches))
    }

    /// Creates a dataset at `path` from Arrow data (`__arrow_c_stream__`) and registers it as
    /// table `name`.
    fn create_dataset(
        &self,
        py: Python<'_>,
        name: &str,
        path: &str,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (schema, batches) = arrow_stream::import(data)?;
        let ctx = self.ctx.clone();
        let (name, path) = (name.to_string(), path.to_string());
        wait(py, async move {
            let location = DatasetLocation::resolve(&path, ctx.runtime_env().as_ref())?;
            let dataset = Dataset::create(location, schema.clone()).await?;
            let rows = batches.iter().map(|batch| conform_batch(batch, &schema));
            dataset.append(futures::stream::iter(rows)).await?;
            ctx.register_dataset(&name, &path).await?;
            Ok(())
        })
    }

    /// Registers an existing dataset as table `name`.
    fn register_dataset(&self, py: Python<'_>, name: &str, path: &str) -> PyResult<()> {
        let ctx = self.ctx.clone();
        let (name, path) = (name.to_string(), path.to_string());
        wait(py, async move {
            ctx.register_dataset(&name, &path).await.map(|_| ())
        })
    }

    /// Top-k search of many queries in one call: `queries` is `n × dim` little-endian f32.
    /// Returns `query_index`, the table's columns and `_distance`, closest first per query.
    #[pyo3(signature = (table, queries, dim, k, column = None, nprobes = None, refine_factor = None, filter = None))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        table: &str,
        queries: Vec<u8>,
        dim: usize,
        k: usize,
        column: Option<String>,
        nprobes: Option<usize>,
        refine_factor: Option<usize>,
        filter: Option<String>,
    ) -> PyResult<QueryResult> {
        let queries: Vec<f32> = queries
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let request = SearchRequest {
            column,
            nprobes,
            refine_factor,
            ..SearchRequest::new(queries, k)
        };
        if let Some(url) = &self.remote {
            return Err(pyo3::exceptions::PyNotImplementedError::new_err(format!(
                "Table.search runs in this process and this session runs on the cluster at \
                 {url}; search through SQL there instead (ORDER BY l2_distance(column, [...]) \
                 LIMIT k, or vector_search(...))"
            )));
        }
        let ctx = self.ctx.clone();
        let table = table.to_string();
        let batch = wait(py, async move {
            batch_search(&ctx, &table, request, dim, filter).await
        })?;
        Ok(Self::result(batch.schema(), vec![batch]))
    }

    /// Names of the registered tables.
    fn tables(&self) -> Vec<String> {
        let state = self.ctx.state();
        let options = state.config_options();
        self.ctx
            .catalog(&options.catalog.default_catalog)
            .and_then(|c| c.schema(&options.catalog.default_schema))
            .map(|s| {
                let mut names = s.table_names();
                names.sort();
                names
            })
            .unwrap_or_default()
    }
}

/// `request` over table `table`, whose vector column must have `dim` dimensions, with the
/// rows `filter` (SQL) allows.
async fn batch_search(
    ctx: &SessionContext,
    table: &str,
    mut request: SearchRequest,
    dim: usize,
    filter: Option<String>,
) -> Result<RecordBatch> {
    let provider = ctx.table_provider(table).await?;
    let Some(vf) = provider.downcast_ref::<VecfusionTable>() else {
        return plan_err!("table '{table}' is not a vecfusion table");
    };
    let dataset = vf.dataset().await?;
    let (_, column_dim) = resolve_vector_column(dataset.schema(), request.column.as_deref())?;
    if column_dim != dim {
        return plan_err!(
            "the table's vector column holds {column_dim}-dimensional vectors, the queries have \
             {dim}"
        );
    }
    if let Some(f) = filter {
        let df_schema = DFSchema::try_from(dataset.schema().as_ref().clone())?;
        request.filters = vec![ctx.parse_sql_expr(&f, &df_schema)?];
    }
    let search = PreparedSearch::new(&ctx.state(), dataset, request).await?;
    let output = SearchOutput {
        with_query_index: true,
        ..SearchOutput::all_columns()
    };
    search.collect(ctx.task_ctx(), &output).await
}
