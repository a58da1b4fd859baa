//! `vector_search(table, column, query, k [, nprobes [, refine_factor]])`: the k rows closest
//! to `query`, with all the table's columns plus `_distance` (the value of the distance
//! function of the index's metric: `l2_distance`, `cosine_distance` or `inner_product`),
//! closest first. Uses the column's vector index when there is one, else searches exactly;
//! `WHERE` predicates on the table's columns are applied before the top-k.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

use super::lookup::{DatasetArg, resolve_dataset_arg, string_arg};
use crate::search::exec::{AnnQuery, AnnSearchExec, DISTANCE_COLUMN};
use crate::search::plan::{default_function, prefilter_scan, session_params};

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
    let values = match e {
        Expr::Literal(ScalarValue::List(a), _) => a.values().clone(),
        Expr::Literal(ScalarValue::FixedSizeList(a), _) => a.values().clone(),
        other => {
            return plan_err!(
                "{USAGE}: the query must be a vector literal like [0.1, 0.2], got {other}"
            );
        }
    };
    let cast = datafusion::arrow::compute::cast(&values, &DataType::Float32)?;
    let floats = cast
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Float32Array>()
        .expect("cast to f32");
    if datafusion::arrow::array::Array::null_count(floats) > 0 {
        return plan_err!("{USAGE}: the query vector has NULL elements");
    }
    Ok(floats.values().to_vec())
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(4..=6).contains(&exprs.len()) {
            return plan_err!("{USAGE}: expected 4 to 6 arguments, got {}", exprs.len());
        }
        let table = string_arg(&exprs[0], USAGE, "the table")?;
        let column = string_arg(&exprs[1], USAGE, "the column")?;
        let query = vector(&exprs[2])?;
        let k = integer(&exprs[3], "k")?;
        let nprobes = exprs.get(4).map(|e| integer(e, "nprobes")).transpose()?;
        let refine_factor = exprs
            .get(5)
            .map(|e| integer(e, "refine_factor"))
            .transpose()?;
        let target = resolve_dataset_arg(args.session(), &table, USAGE)?;
        let table_schema = match &target {
            DatasetArg::Table { provider, .. } => provider.schema(),
            DatasetArg::Location(_) => {
                return plan_err!(
                    "{USAGE}: register the dataset as a table first (CREATE EXTERNAL TABLE ...)"
                );
            }
        };
        let Ok(col) = table_schema.index_of(&column) else {
            return plan_err!("{USAGE}: table '{table}' has no column '{column}'");
        };
        match table_schema.field(col).data_type() {
            DataType::FixedSizeList(item, d) if item.data_type() == &DataType::Float32 => {
                if *d as usize != query.len() {
                    return plan_err!(
                        "{USAGE}: column '{column}' holds {d}-dimensional vectors, the query has {}",
                        query.len()
                    );
                }
            }
            other => return plan_err!("{USAGE}: column '{column}' is {other}, not FLOAT[d]"),
        }
        let mut fields: Vec<Field> = table_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(DISTANCE_COLUMN, DataType::Float32, false));
        Ok(Arc::new(VectorSearchTable {
            target,
            column: col,
            query,
            k,
            nprobes,
            refine_factor,
            schema: Arc::new(Schema::new(fields)),
        }))
    }
}

#[derive(Debug)]
struct VectorSearchTable {
    target: DatasetArg,
    column: usize,
    query: Vec<f32>,
    k: usize,
    nprobes: Option<usize>,
    refine_factor: Option<usize>,
    schema: SchemaRef,
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
        let column_name = dataset.schema().field(self.column).name().clone();
        let function = default_function(&dataset, &column_name);
        let mut params = session_params(state, self.k);
        params.nprobes = self.nprobes.unwrap_or(params.nprobes);
        params.refine_factor = self.refine_factor.unwrap_or(params.refine_factor);
        let prefilter = prefilter_scan(state, &dataset, filters.to_vec()).await?;
        let n_table = dataset.schema().fields().len();
        let all: Vec<usize> = (0..n_table).collect();
        let query = AnnQuery {
            column: self.column,
            function,
            query: self.query.clone(),
            params,
        };
        let exec: Arc<dyn ExecutionPlan> =
            Arc::new(AnnSearchExec::new(dataset, query, all, true, prefilter)?);
        match projection {
            Some(p) if p.len() != n_table + 1 || p.iter().enumerate().any(|(i, c)| i != *c) => {
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
