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
use crate::sql::{VfStatement, parse_float_as_decimal, parse_in_session};

/// What a text is to this module.
pub enum Lookup {
    /// Run with a kept plan: the plan of its shape, or of the statement its
    /// `EXECUTE name([...])` names (read from the text, not parsed).
    Reused(DataFrame),
    /// A query with a vector literal, to be planned as written, after which its shape's plan
    /// is made ([`Pending::learn`]).
    Pending(Pending),
    /// Anything else: planned as written.
    Plain,
}

/// A query with a vector literal whose shape has no kept plan yet.
pub struct Pending {
    prepared: Arc<PreparedQueries>,
    query: LiteralQuery,
    /// The literal as written (the parameter of the shape's `EXECUTE`).
    literal: String,
}

/// Looks `sql` up: runs it with a kept plan when one applies.
pub async fn lookup(ctx: &SessionContext, sql: &str) -> Result<Lookup> {
    let Some(prepared) = PreparedQueries::of(ctx) else {
        return Ok(Lookup::Plain);
    };
    // Numbers would be decimals, not the floats a vector is read as.
    if parse_float_as_decimal(ctx) {
        return Ok(Lookup::Plain);
    }
    if let Some((name, vector)) = execute_call(sql) {
        let call = ExecuteCall {
            name,
            vector: Some(vector),
        };
        return Ok(match prepared.reuse(ctx, &call).await? {
            Some(df) => Lookup::Reused(df),
            None => Lookup::Plain,
        });
    }
    let Some(query) = literal_query(sql) else {
        return Ok(Lookup::Plain);
    };
    if let Some(Shape::Prepared(name)) = prepared.shape(&query.shape)
        && prepared.has_plan(&name)
    {
        let call = ExecuteCall {
            name,
            vector: Some(query.vector.clone()),
        };
        if let Some(df) = prepared.reuse(ctx, &call).await? {
            return Ok(Lookup::Reused(df));
        }
    }
    let literal = sql[query.literal.clone()].to_string();
    Ok(Lookup::Pending(Pending {
        prepared,
        query,
        literal,
    }))
}

impl Pending {
    /// After the query was planned as written (into `planned`): prepares its shape, if new,
    /// and keeps the shape's plan for the next query of that shape. A failure here only
    /// means that the next query is planned as written too.
    pub async fn learn(self, ctx: &SessionContext, planned: &DataFrame) {
        let _ = learn_shape(ctx, &self, planned).await;
    }
}

async fn learn_shape(ctx: &SessionContext, pending: &Pending, planned: &DataFrame) -> Result<()> {
    let (prepared, query) = (pending.prepared.as_ref(), &pending.query);
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
    let execute = format!("EXECUTE {name}({})", pending.literal);
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
    match parse_in_session(ctx, sql)?.pop() {
        Some(VfStatement::DataFusion(s)) => Ok(*s),
        _ => datafusion::common::internal_err!("{sql} is not a DataFusion statement"),
    }
}
