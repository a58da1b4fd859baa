//! `vector_search(table, column, query, k [, nprobes [, refine_factor]])`: the k rows closest
//! to `query`, with all the table's columns plus `_distance` (the value of the distance
//! function of the index's metric: `l2_distance`, `cosine_distance` or `inner_product`),
//! closest first. `query` is any constant that makes a vector — a literal, or an embedding of
//! a text (`minilm('...')`), computed once while planning. Uses the column's vector index when
//! there is one, else searches exactly;
//! `WHERE` predicates on the table's columns are applied before the top-k.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, ScalarValue, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

use super::lookup::{DatasetArg, resolve_dataset_arg, string_arg};
use crate::search::query_vector::constant_vector;
use crate::search::{AnnSearchExec, DISTANCE_COLUMN, PreparedSearch, SearchOutput, SearchRequest};

const USAGE: &str =
    "vector_search('table', 'column', [query vector], k [, nprobes [, refine_factor]])";

#[derive(Debug, Default)]
pub struct VectorSearchFunction;

fn integer(e: &Expr, what: &str) -> Result<usize> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(n)), _) if *n > 0 => Ok(*n as usize),
        other => plan_err!("{USAGE}: {what} must be a positive integer, got {other}"),
    }
}

fn vector(e: &Expr) -> Result<Vec<f32>> {
    match constant_vector(e) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => {
            plan_err!("{USAGE}: the query must be a vector literal like [0.1, 0.2], got {e}")
        }
        Err(err) => plan_err!("{USAGE}: {}", err.strip_backtrace()),
    }
}

/// A constant expression other than a literal (`minilm('query text')`, `[0.1, 0.2] * 2`)
/// evaluated once, so that a query vector can be computed; anything else as it is.
fn fold_constant(session: &dyn Session, e: &Expr) -> Result<Expr> {
    if matches!(e, Expr::Literal(..)) || !e.column_refs().is_empty() || e.is_volatile() {
        return Ok(e.clone());
    }
    let physical = session.create_physical_expr(e.clone(), &DFSchema::empty())?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let value = physical.evaluate(&one_row)?.into_array(1)?;
    Ok(Expr::Literal(ScalarValue::try_from_array(&value, 0)?, None))
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(4..=6).contains(&exprs.len()) {
            return plan_err!("{USAGE}: expected 4 to 6 arguments, got {}", exprs.len());
        }
        let table = string_arg(&exprs[0], USAGE, "the table")?;
        let column = string_arg(&exprs[1], USAGE, "the column")?;
        let request = SearchRequest {
            nprobes: exprs.get(4).map(|e| integer(e, "nprobes")).transpose()?,
            refine_factor: exprs
                .get(5)
                .map(|e| integer(e, "refine_factor"))
                .transpose()?,
            ..SearchRequest::new(
                vector(&fold_constant(args.session(), &exprs[2])?)?,
                integer(&exprs[3], "k")?,
            )
            .column(column)
        };
        let target = resolve_dataset_arg(args.session(), &table, USAGE)?;
        let table_schema = match &target {
            DatasetArg::Table { provider, .. } => provider.schema(),
            DatasetArg::Location(_) => {
                return plan_err!(
                    "{USAGE}: register the dataset as a table first (CREATE EXTERNAL TABLE ...)"
                );
            }
        };
        // The same checks the search makes when it runs, made now so that planning fails.
        if let Err(e) = request.check(&table_schema) {
            return plan_err!("{USAGE}: table '{table}': {}", e.strip_backtrace());
        }
        Ok(Arc::new(VectorSearchTable::new(
            target,
            request,
            &table_schema,
        )))
    }
}

/// The table `vector_search(...)` returns: the rows of `request` over `target`.
#[derive(Debug)]
pub struct VectorSearchTable {
    target: DatasetArg,
    request: SearchRequest,
    schema: SchemaRef,
}

impl VectorSearchTable {
    /// `request` over `target`, a table of `table_schema`.
    pub fn new(target: DatasetArg, request: SearchRequest, table_schema: &Schema) -> Self {
        Self {
            schema: SearchOutput::all_columns().schema(table_schema),
            target,
            request,
        }
    }

    pub fn target(&self) -> &DatasetArg {
        &self.target
    }

    pub fn request(&self) -> &SearchRequest {
        &self.request
    }
}

#[async_trait]
impl TableProvider for VectorSearchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Predicates on the table's own columns become the prefilter (applied before the
        // top-k); ones on `_distance` are applied to the k results, as written.
        Ok(filters
            .iter()
            .map(|f| {
                let on_distance = f.column_refs().iter().any(|c| c.name == DISTANCE_COLUMN);
                if on_distance || f.is_volatile() {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    TableProviderFilterPushDown::Exact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let dataset = self.target.dataset().await?;
        let request = SearchRequest {
            filters: filters.to_vec(),
            ..self.request.clone()
        };
        let search = PreparedSearch::new(state, dataset, request).await?;
        let exec: Arc<dyn ExecutionPlan> =
            Arc::new(AnnSearchExec::new(search, SearchOutput::all_columns()));
        let n = self.schema.fields().len();
        match projection {
            Some(p) if p.len() != n || p.iter().enumerate().any(|(i, c)| i != *c) => {
                let exprs = p
                    .iter()
                    .map(|i| {
                        let f = self.schema.field(*i);
                        let col: Arc<dyn datafusion::physical_expr::PhysicalExpr> = Arc::new(
                            datafusion::physical_expr::expressions::Column::new(f.name(), *i),
                        );
                        (col, f.name().clone())
                    })
                    .collect::<Vec<_>>();
                Ok(Arc::new(ProjectionExec::try_new(exprs, exec)?))
            }
            _ => Ok(exec),
        }
    }
}
