//! `Session` (a DataFusion session with vecfusion) and `QueryResult` (Arrow batches).

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    ArrayRef, Float32Array, RecordBatch, RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{SessionConfig, SessionContext};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use vecfusion::dataset::{Dataset, DatasetLocation, Operation};
use vecfusion::index::{ProgressEvent, ProgressHook};
use vecfusion::provider::{VecfusionTable, conform_batch};
use vecfusion::search::plan::{collect_allowed, default_function, prefilter_scan, session_params};
use vecfusion::search::search;
use vecfusion::{VecfusionContext, new_session_context_with_config};

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
    #[new]
    fn new() -> Self {
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
        Self {
            ctx: new_session_context_with_config(config),
            progress,
        }
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
            for statement in ctx.vf_parse(&query)? {
                let df = ctx.vf_execute(statement).await?;
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
            let mut writer = dataset.fragment_writer()?;
            for batch in &batches {
                writer.write(conform_batch(batch, &schema)?).await?;
            }
            if let Some(fragment) = writer.finish().await? {
                dataset
                    .commit(&Operation::Append {
                        fragments: vec![fragment],
                    })
                    .await?;
            }
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
        let ctx = self.ctx.clone();
        let table = table.to_string();
        let (schema, batch) = wait(py, async move {
            batch_search(
                &ctx,
                &table,
                &queries,
                dim,
                k,
                column,
                nprobes,
                refine_factor,
                filter,
            )
            .await
        })?;
        Ok(Self::result(schema, vec![batch]))
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

#[allow(clippy::too_many_arguments)]
async fn batch_search(
    ctx: &SessionContext,
    table: &str,
    queries: &[u8],
    dim: usize,
    k: usize,
    column: Option<String>,
    nprobes: Option<usize>,
    refine_factor: Option<usize>,
    filter: Option<String>,
) -> Result<(SchemaRef, RecordBatch)> {
    let provider = ctx.table_provider(table).await?;
    let vf = provider.downcast_ref::<VecfusionTable>().ok_or_else(|| {
        DataFusionError::Plan(format!("table '{table}' is not a vecfusion table"))
    })?;
    let dataset = vf.dataset().await?;
    let schema = dataset.schema().clone();
    let vector_columns: Vec<usize> = (0..schema.fields().len())
        .filter(|i| matches!(schema.field(*i).data_type(), DataType::FixedSizeList(f, _) if f.data_type() == &DataType::Float32))
        .collect();
    let col = match &column {
        Some(c) => schema.index_of(c)?,
        None => match vector_columns.as_slice() {
            [one] => *one,
            [] => {
                return Err(DataFusionError::Plan(format!(
                    "table '{table}' has no vector column"
                )));
            }
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "table '{table}' has several vector columns; pass column=..."
                )));
            }
        },
    };
    let DataType::FixedSizeList(_, table_dim) = schema.field(col).data_type() else {
        return Err(DataFusionError::Plan(format!(
            "column '{}' is not a vector column (FLOAT[d])",
            schema.field(col).name()
        )));
    };
    if *table_dim as usize != dim {
        return Err(DataFusionError::Plan(format!(
            "column '{}' holds {table_dim}-dimensional vectors, the queries have {dim}",
            schema.field(col).name()
        )));
    }
    let state = ctx.state();
    let mut params = session_params(&state, k);
    params.nprobes = nprobes.unwrap_or(params.nprobes);
    params.refine_factor = refine_factor.unwrap_or(params.refine_factor);
    let function = default_function(&dataset, schema.field(col).name());
    let allowed = match filter {
        Some(f) => {
            let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
            let expr = ctx.parse_sql_expr(&f, &df_schema)?;
            let plan = prefilter_scan(&state, &dataset, vec![expr])
                .await?
                .expect("one filter");
            Some(Arc::new(collect_allowed(plan, ctx.task_ctx()).await?))
        }
        None => None,
    };
    let values: Vec<f32> = queries
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = values.len() / dim.max(1);
    let values = Arc::new(values);
    // Two workers: the queries of one call run on both cores.
    let workers = 2.min(n.max(1));
    let mut tasks = vec![];
    for w in 0..workers {
        let (dataset, values, allowed) = (dataset.clone(), values.clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = vec![];
            for i in (w..n).step_by(workers) {
                let q = &values[i * dim..(i + 1) * dim];
                let found = search(&dataset, col, function, q, params, allowed.as_deref()).await?;
                out.push((i, found));
            }
            Ok::<_, DataFusionError>(out)
        }));
    }
    let mut found = vec![];
    for t in tasks {
        found.extend(
            t.await
                .map_err(|e| DataFusionError::External(Box::new(e)))??,
        );
    }
    found.sort_by_key(|(i, _)| *i);
    let (mut query_index, mut addresses, mut distances) = (vec![], vec![], vec![]);
    for (i, f) in found {
        query_index.extend(std::iter::repeat_n(i as u32, f.addresses.len()));
        addresses.extend(f.addresses);
        distances.extend(f.distances);
    }
    let rows = dataset.take(&addresses, None).await?;
    let mut fields = vec![Field::new("query_index", DataType::UInt32, false)];
    fields.extend(schema.fields().iter().map(|f| f.as_ref().clone()));
    fields.push(Field::new("_distance", DataType::Float32, false));
    let out_schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(query_index))];
    columns.extend(rows.columns().iter().cloned());
    columns.push(Arc::new(Float32Array::from(distances)));
    let options = RecordBatchOptions::new().with_row_count(Some(addresses.len()));
    let batch = RecordBatch::try_new_with_options(out_schema.clone(), columns, &options)?;
    Ok((out_schema, batch))
}
