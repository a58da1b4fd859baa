//! Queries that differ only in their query vector share one plan.
//!
//! An ANN query usually arrives as text with its vector written out, and planning it —
//! parsing hundreds of numbers, the logical optimizer, physical planning — costs more than
//! the search it plans (at 768 dimensions, several times more). Two such queries differ only
//! in the vector, so the plan of one serves the next: a query whose text holds one vector
//! literal (`sql::vector_text::literal_query`) has a *shape*, its text with `$1` for the
//! vector. vecfusion prepares each shape it sees under a name of its own, and from the second
//! query of a shape on runs it as an `EXECUTE` of that statement, whose physical plan
//! `PreparedQueries` keeps and reuses with the new vector — under the rules of a user's
//! `PREPARE` (the vector used only as the query of distance calls, an index serving it, the
//! session's settings, the table and the dataset's newest version unchanged since).
//!
//! The first query of a shape is planned as written; its shape is prepared and planned beside
//! it, and used only if that plan has the query's output schema (an unaliased distance in the
//! select list is named after its arguments, `$1` among them: such a shape is refused and its
//! queries are always planned as written). When a kept plan no longer applies (a write, a
//! `SET`), the next query is planned as written and the shape's plan made again.

use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::error::Result;
use datafusion::logical_expr::{LogicalPlan, Statement as PlanStatement};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;

use crate::prepared_queries::{ExecuteCall, PreparedQueries, Shape};
use crate::sql::vector_text::{LiteralQuery, execute_call, literal_query};
use crate::sql::{VfStatement, dialect_for, parse_statements};

/// `sql` run with a kept plan, when there is one that applies: the plan of its shape, or of
/// the statement an `EXECUTE name([...])` names — read from the text, not parsed.
pub async fn reuse(ctx: &SessionContext, sql: &str) -> Result<Option<DataFrame>> {
    if let Some((name, vector)) = execute_call(sql)
        && let Some(prepared) = PreparedQueries::of(ctx)
        && !parse_float_as_decimal(ctx)
    {
        let call = ExecuteCall {
            name,
            vector: Some(vector),
        };
        return prepared.reuse(ctx, &call).await;
    }
    let Some((prepared, query)) = shaped(ctx, sql) else {
        return Ok(None);
    };
    let Some(Shape::Prepared(name)) = prepared.shape(&query.shape) else {
        return Ok(None);
    };
    if !prepared.has_plan(&name) {
        return Ok(None);
    }
    let call = ExecuteCall {
        name,
        vector: Some(query.vector),
    };
    prepared.reuse(ctx, &call).await
}

/// After `sql` was planned as written (into `planned`): prepares its shape, if new, and keeps
/// the shape's plan for the next query of that shape. A failure here only means that the next
/// query is planned as written too.
pub async fn learn(ctx: &SessionContext, sql: &str, planned: &DataFrame) {
    if let Some((prepared, query)) = shaped(ctx, sql) {
        let _ = learn_shape(ctx, &prepared, sql, &query, planned).await;
    }
}

/// The session's prepared queries and `sql` as a query with a vector literal, when both are.
fn shaped(ctx: &SessionContext, sql: &str) -> Option<(Arc<PreparedQueries>, LiteralQuery)> {
    let prepared = PreparedQueries::of(ctx)?;
    if parse_float_as_decimal(ctx) {
        return None;
    }
    Some((prepared, literal_query(sql)?))
}

/// Whether the session reads `1.5` as a decimal (then a vector is not read from text).
fn parse_float_as_decimal(ctx: &SessionContext) -> bool {
    let state = ctx.state_ref();
    let state = state.read();
    state.config().options().sql_parser.parse_float_as_decimal
}

async fn learn_shape(
    ctx: &SessionContext,
    prepared: &PreparedQueries,
    sql: &str,
    query: &LiteralQuery,
    planned: &DataFrame,
) -> Result<()> {
    let name = match prepared.shape(&query.shape) {
        Some(Shape::Refused | Shape::Unkept(_)) => return Ok(()),
        Some(Shape::Prepared(name)) => name,
        None => {
            let name = prepared.shape_name();
            if !prepare(ctx, prepared, &name, &query.shape).await? {
                prepared.set_shape(&query.shape, Shape::Refused);
                return Ok(());
            }
            if !prepared.set_shape(&query.shape, Shape::Prepared(name.clone())) {
                forget(ctx, prepared, &name).await;
                return Ok(());
            }
            name
        }
    };
    // The EXECUTE as `vf_execute` plans it (DataFusion binds the vector), its plan kept.
    let execute = format!("EXECUTE {name}({})", &sql[query.literal.clone()]);
    let executed = ctx
        .execute_logical_plan(
            ctx.state()
                .statement_to_plan(statement(ctx, &execute)?)
                .await?,
        )
        .await?;
    if executed.schema() != planned.schema() {
        prepared.set_shape(&query.shape, Shape::Refused);
        forget(ctx, prepared, &name).await;
        return Ok(());
    }
    let call = ExecuteCall {
        name: name.clone(),
        vector: Some(query.vector.clone()),
    };
    prepared.keep(ctx, &call, executed).await?;
    if !prepared.has_plan(&name) {
        prepared.set_shape(&query.shape, Shape::Unkept(name));
    }
    Ok(())
}

/// `PREPARE name AS shape`, when the shape qualifies for a kept plan; whether it did.
async fn prepare(
    ctx: &SessionContext,
    prepared: &PreparedQueries,
    name: &str,
    shape: &str,
) -> Result<bool> {
    // A shape DataFusion cannot parse or plan with `$1` (e.g. its type unknown where it
    // stands) is refused.
    let Ok(prepare) = statement(ctx, &format!("PREPARE {name} AS {shape}")) else {
        return Ok(false);
    };
    let Ok(plan) = ctx.state().statement_to_plan(prepare).await else {
        return Ok(false);
    };
    let LogicalPlan::Statement(PlanStatement::Prepare(p)) = &plan else {
        return Ok(false);
    };
    prepared.prepared(p);
    if !prepared.is_known(name) {
        return Ok(false);
    }
    ctx.execute_logical_plan(plan).await?.collect().await?;
    Ok(true)
}

/// `DEALLOCATE name`, in DataFusion's session and here.
async fn forget(ctx: &SessionContext, prepared: &PreparedQueries, name: &str) {
    prepared.deallocated(name);
    if let Ok(s) = statement(ctx, &format!("DEALLOCATE {name}"))
        && let Ok(plan) = ctx.state().statement_to_plan(s).await
        && let Ok(df) = ctx.execute_logical_plan(plan).await
    {
        let _ = df.collect().await;
    }
}

/// The one DataFusion statement `sql` is.
fn statement(ctx: &SessionContext, sql: &str) -> Result<DFStatement> {
    let dialect = {
        let state = ctx.state_ref();
        let state = state.read();
        dialect_for(&state.config().options().sql_parser.dialect)?
    };
    match parse_statements(sql, dialect.as_ref())?.pop() {
        Some(VfStatement::DataFusion(s)) => Ok(*s),
        _ => datafusion::common::internal_err!("{sql} is not a DataFusion statement"),
    }
}
