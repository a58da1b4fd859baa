//! Columns whose values come from SQL: a `DEFAULT` for rows written without a value, or a
//! computed column (`AS (expression)` over the row's other columns, as PostgreSQL's stored
//! generated columns).
//!
//! Both are recorded in the table schema, as metadata of the column's field, as the SQL text
//! the user wrote, so that every version carries its own definitions and a reader needs
//! nothing but the manifest. The text is planned again by every session that writes (a
//! computed column's functions, such as an embedding model, must be registered there).
//!
//! Rules, as PostgreSQL's: a computed column is never written directly — `INSERT` leaves it
//! out (or gives NULL) and gets the expression's value, `UPDATE` cannot set it and
//! recomputes it when a column it reads changes.
//!
//! A computed column's expression is evaluated in chunks of [`CHUNK_ROWS`] rows on a
//! blocking thread, whichever statement computes it (`ALTER TABLE ... ADD COLUMN`, `INSERT`,
//! `UPDATE`): an embedding model takes seconds per chunk, so the statement awaits between
//! chunks — progress moves, a cancelled statement stops within one chunk, and the runtime's
//! workers stay free for other queries meanwhile.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{CastOptions, can_cast_types, cast_with_options, concat};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{
    DFSchema, ScalarValue, exec_datafusion_err, plan_datafusion_err, plan_err,
};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::embed::CHUNK_ROWS;

/// Field metadata key of a column's `DEFAULT` (SQL text of a constant expression).
pub const DEFAULT_KEY: &str = "vecfusion.default";
/// Field metadata key of a computed column's expression (SQL text).
pub const COMPUTED_KEY: &str = "vecfusion.computed";

/// Where a column's value comes from when a row is written without one.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValue {
    /// `DEFAULT <constant>`
    Default(String),
    /// `AS (<expression over other columns>)`
    Computed(String),
}

impl ColumnValue {
    /// The definition `field` carries, if any.
    pub fn of(field: &Field) -> Option<ColumnValue> {
        let metadata = field.metadata();
        if let Some(sql) = metadata.get(COMPUTED_KEY) {
            return Some(ColumnValue::Computed(sql.clone()));
        }
        metadata
            .get(DEFAULT_KEY)
            .map(|sql| ColumnValue::Default(sql.clone()))
    }

    /// `field` carrying this definition.
    pub fn on(&self, field: Field) -> Field {
        let (key, sql) = match self {
            ColumnValue::Default(sql) => (DEFAULT_KEY, sql),
            ColumnValue::Computed(sql) => (COMPUTED_KEY, sql),
        };
        let mut metadata = field.metadata().clone();
        metadata.insert(key.to_string(), sql.clone());
        field.with_metadata(metadata)
    }
}

/// The session state behind a `&dyn Session` (DataFusion's own is the only kind vecfusion
/// runs in), to plan SQL text.
fn session_state(state: &dyn Session) -> Result<&SessionState> {
    state
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| plan_datafusion_err!("column values need a DataFusion SessionState"))
}

/// An expression of a column definition, planned against `schema`.
pub struct PlannedExpr {
    pub logical: Expr,
    pub physical: Arc<dyn PhysicalExpr>,
    /// What the expression returns (before the cast to the column's type).
    pub data_type: DataType,
}

/// Plans the SQL text `sql` of column `column` against `schema`, refusing what cannot define
/// a stored value: volatile functions (`random()`), aggregates, window functions, subqueries.
pub fn plan_column_expr(
    state: &dyn Session,
    sql: &str,
    schema: &Schema,
    column: &str,
) -> Result<PlannedExpr> {
    let state = session_state(state)?;
    let df_schema = DFSchema::try_from(schema.clone())?;
    let context = |e: datafusion::error::DataFusionError| {
        plan_datafusion_err!("the expression ({sql}) of column '{column}': {e}")
    };
    let logical = state
        .create_logical_expr(sql, &df_schema)
        .map_err(context)?;
    let mut refused = None;
    logical.apply(|e| {
        match e {
            Expr::AggregateFunction(_) => refused = Some("an aggregate"),
            Expr::WindowFunction(_) => refused = Some("a window function"),
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
                refused = Some("a subquery")
            }
            _ => return Ok(TreeNodeRecursion::Continue),
        }
        Ok(TreeNodeRecursion::Stop)
    })?;
    if logical.is_volatile() {
        refused = Some("a volatile function (its value would change every time it is computed)");
    }
    if let Some(what) = refused {
        return plan_err!(
            "the expression ({sql}) of column '{column}' uses {what}; a column value must be \
             computed from the row alone"
        );
    }
    let physical = state
        .create_physical_expr(logical.clone(), &df_schema)
        .map_err(context)?;
    let data_type = physical.data_type(schema).map_err(context)?;
    Ok(PlannedExpr {
        logical,
        physical,
        data_type,
    })
}

/// Fails unless values of `from` can be stored in column `column` of type `to`.
pub fn check_castable(from: &DataType, to: &DataType, column: &str, sql: &str) -> Result<()> {
    if from != to && !can_cast_types(from, to) {
        return plan_err!(
            "the expression ({sql}) of column '{column}' returns {from}, which cannot be stored \
             as {to}"
        );
    }
    Ok(())
}

/// Casts `values` to the type of `field`, failing (never truncating silently) on a value the
/// type cannot hold.
pub fn cast_to_field(values: &ArrayRef, field: &Field) -> Result<ArrayRef> {
    if values.data_type() == field.data_type() {
        return Ok(values.clone());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(values, field.data_type(), &options).map_err(|e| {
        plan_datafusion_err!(
            "cannot store {} values in column '{}' of type {}: {e}",
            values.data_type(),
            field.name(),
            field.data_type()
        )
    })
}

/// Evaluates a constant `DEFAULT` expression of a column of `table` once, as a value of
/// `field`'s type.
pub fn default_value(
    state: &dyn Session,
    sql: &str,
    field: &Field,
    table: &Schema,
) -> Result<ScalarValue> {
    let over_table = plan_column_expr(state, sql, table, field.name())?;
    let empty = Schema::empty();
    let planned = plan_column_expr(state, sql, &empty, field.name());
    if !over_table.logical.column_refs().is_empty() {
        return plan_err!(
            "the DEFAULT of column '{}' must be a constant; use AS ({sql}) for a value computed \
             from other columns",
            field.name()
        );
    }
    let planned = planned?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(empty),
        vec![],
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let value = planned.physical.evaluate(&batch)?.into_array(1)?;
    let value = cast_to_field(&value, field)?;
    ScalarValue::try_from_array(&value, 0)
}

/// The `DEFAULT` expressions of `schema`'s columns, as DataFusion's INSERT planning asks for
/// them (`TableProvider::get_column_default`), for tables whose schema says so. They are
/// constants, so a plain context plans them.
pub fn default_exprs(schema: &Schema) -> Vec<(String, Expr)> {
    let mut out = vec![];
    let mut ctx = None;
    for field in schema.fields() {
        let Some(ColumnValue::Default(sql)) = ColumnValue::of(field) else {
            continue;
        };
        let ctx = ctx.get_or_insert_with(SessionContext::new);
        let state = ctx.state();
        // A default that no longer plans (it did when ALTER TABLE checked it) is left to
        // the sink's check of NOT NULL columns rather than failing every query.
        if let Ok(value) = default_value(&state, &sql, field, schema) {
            out.push((field.name().clone(), Expr::Literal(value, None)));
        }
    }
    out
}

/// The computed columns of a table, planned for one write.
#[derive(Debug, Clone, Default)]
pub struct ComputedColumns {
    /// (column position, expression over the table's columns, positions it reads)
    columns: Vec<(usize, Arc<dyn PhysicalExpr>, Vec<usize>)>,
    schema: Option<SchemaRef>,
}

impl ComputedColumns {
    /// Plans every computed column of `schema` in `state`.
    pub fn plan(state: &dyn Session, schema: &SchemaRef) -> Result<Self> {
        let mut columns = vec![];
        for (i, field) in schema.fields().iter().enumerate() {
            let Some(ColumnValue::Computed(sql)) = ColumnValue::of(field) else {
                continue;
            };
            let planned = plan_column_expr(state, &sql, schema, field.name())?;
            check_castable(&planned.data_type, field.data_type(), field.name(), &sql)?;
            let reads = planned
                .logical
                .column_refs()
                .iter()
                .filter_map(|c| schema.index_of(&c.name).ok())
                .collect();
            columns.push((i, planned.physical, reads));
        }
        Ok(Self {
            columns,
            schema: Some(schema.clone()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Whether column `i` is computed.
    pub fn is_computed(&self, i: usize) -> bool {
        self.columns.iter().any(|(c, _, _)| *c == i)
    }

    /// Inserted rows (in the table schema): refuses a value given for a computed column, then
    /// computes them.
    pub async fn fill_inserted(&self, batch: RecordBatch) -> Result<RecordBatch> {
        for (i, _, _) in &self.columns {
            let given = batch.column(*i);
            if given.null_count() != given.len() {
                let field = batch.schema().field(*i).clone();
                return plan_err!(
                    "column '{}' is computed AS ({}); leave it out of the INSERT (or give NULL) \
                     and it is computed from the row",
                    field.name(),
                    field
                        .metadata()
                        .get(COMPUTED_KEY)
                        .cloned()
                        .unwrap_or_default()
                );
            }
        }
        self.compute(batch, |_| true).await
    }

    /// Updated rows (in the table schema) whose columns `assigned` were set: recomputes the
    /// computed columns that read any of them.
    pub async fn refresh_updated(
        &self,
        batch: RecordBatch,
        assigned: &[usize],
    ) -> Result<RecordBatch> {
        self.compute(batch, |reads| reads.iter().any(|r| assigned.contains(r)))
            .await
    }

    async fn compute(
        &self,
        batch: RecordBatch,
        needed: impl Fn(&[usize]) -> bool,
    ) -> Result<RecordBatch> {
        let Some(schema) = &self.schema else {
            return Ok(batch);
        };
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (i, expr, reads) in &self.columns {
            if needed(reads) {
                columns[*i] = evaluate_in_chunks(expr, &batch, schema.field(*i), |_| {}).await?;
            }
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// `expr`'s values over `rows`, evaluated in chunks of [`CHUNK_ROWS`] on a blocking thread
/// and cast to `field`'s type; `progress` hears the rows of each chunk. Dropping the future
/// stops the work after the chunk in flight.
pub async fn evaluate_in_chunks(
    expr: &Arc<dyn PhysicalExpr>,
    rows: &RecordBatch,
    field: &Field,
    mut progress: impl FnMut(usize),
) -> Result<ArrayRef> {
    let mut chunks = vec![];
    let mut offset = 0;
    while offset < rows.num_rows() {
        let len = CHUNK_ROWS.min(rows.num_rows() - offset);
        let chunk = rows.slice(offset, len);
        let expr = expr.clone();
        let values = tokio::task::spawn_blocking(move || {
            expr.evaluate(&chunk)?.into_array(chunk.num_rows())
        })
        .await
        .map_err(|e| exec_datafusion_err!("computing column '{}' failed: {e}", field.name()))??;
        chunks.push(cast_to_field(&values, field)?);
        offset += len;
        progress(len);
    }
    Ok(match chunks.len() {
        0 => ScalarValue::try_from(field.data_type())?.to_array_of_size(0)?,
        1 => chunks.remove(0),
        _ => concat(&chunks.iter().map(|c| c.as_ref()).collect::<Vec<_>>())?,
    })
}
