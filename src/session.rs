//! A DataFusion session with vecfusion installed, and the `SessionContext` extension trait
//! that is vecfusion's SQL entry point for Rust programs, the shell and Python.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{TableReference, plan_err};
use datafusion::dataframe::DataFrame;
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{LogicalPlan, Statement as PlanStatement};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::dataset::{Dataset, DatasetLocation};
use crate::embed::ChunkModelInputs;
use crate::index::statements;
use crate::literal_queries::{self, Lookup, Pending};
use crate::metric::DistanceFunction;
use crate::planner::VecfusionQueryPlanner;
use crate::prepared_queries::{ExecuteCall, PreparedQueries};
use crate::provider::{
    TimeTravelPlanner, VecfusionTable, VecfusionTableFactory, alter_table, name_not_null_violation,
    refresh_table, refresh_tables,
};
use crate::search::settings::check_setting;
use crate::search::{AnnRewrite, SearchSettings};
use crate::sql::array_literal::NumericArrayLiteralPlanner;
use crate::sql::{
    ScriptStatement, VfStatement, parse_float_as_decimal, parse_in_session, parse_script_in_session,
};
use crate::udf::{
    CleanupFunction, RandomVectorsFunction, VectorSearchFunction, VersionsFunction, distance_udf,
    embedding_models,
};

/// The session state builder with everything vecfusion adds to DataFusion's defaults: the
/// `VECFUSION` table factory, time-travel planning, the ANN rewrite and query vectors planned
/// as constants. Extend it further before `build()`.
pub fn session_state_builder(config: SessionConfig) -> SessionStateBuilder {
    let config = if config
        .options()
        .extensions
        .get::<SearchSettings>()
        .is_none()
    {
        config.with_option_extension(SearchSettings::default())
    } else {
        config
    };
    // A fresh one per session even when `config` comes from another session.
    let config = config.with_extension(Arc::new(PreparedQueries::default()));
    let mut builder = SessionStateBuilder::new()
        .with_config(config.with_information_schema(true))
        .with_default_features();
    // Ahead of DataFusion's planners, so that a query vector becomes one constant.
    builder
        .expr_planners()
        .get_or_insert_with(Vec::new)
        .insert(0, Arc::new(NumericArrayLiteralPlanner));
    builder
        .with_optimizer_rule(Arc::new(AnnRewrite))
        .with_physical_optimizer_rule(Arc::new(ChunkModelInputs))
        .with_table_factory("VECFUSION".into(), Arc::new(VecfusionTableFactory))
        .with_relation_planners(vec![Arc::new(TimeTravelPlanner)])
        .with_query_planner(Arc::new(VecfusionQueryPlanner))
}

/// Registers vecfusion's SQL functions on a context.
pub fn register_functions(ctx: &SessionContext) {
    for f in DistanceFunction::ALL {
        ctx.register_udf(distance_udf(f));
    }
    ctx.register_udtf("random_vectors", Arc::new(RandomVectorsFunction));
    ctx.register_udtf("vecfusion_versions", Arc::new(VersionsFunction));
    ctx.register_udtf("vecfusion_cleanup", Arc::new(CleanupFunction));
    ctx.register_udtf("vector_search", Arc::new(VectorSearchFunction));
}

/// A `SessionContext` with vecfusion installed (default configuration).
pub fn new_session_context() -> SessionContext {
    new_session_context_with_config(SessionConfig::new())
}

/// A `SessionContext` with vecfusion installed.
pub fn new_session_context_with_config(config: SessionConfig) -> SessionContext {
    let state = session_state_builder(config).build();
    let ctx = SessionContext::new_with_state(state);
    register_functions(&ctx);
    ctx
}

/// The statements of a script, run one at a time ([`VecfusionContext::vf_script`]).
pub struct Script {
    ctx: SessionContext,
    /// A one-statement query with a vector literal: its shape's plan is made after it runs.
    pending: Option<Pending>,
    /// A query already planned with a kept plan.
    ready: Option<DataFrame>,
    /// The script's text, when it has several statements: each one that is a query of a
    /// shape with a kept plan is answered with it, as a query run on its own would be.
    several: Option<String>,
    statements: std::vec::IntoIter<ScriptStatement>,
}

impl Script {
    /// Statements not yet run.
    pub fn remaining(&self) -> usize {
        usize::from(self.ready.is_some()) + self.statements.len()
    }

    /// Plans (and for DDL and DML runs) the next statement; `None` after the last.
    pub async fn next(&mut self) -> Option<Result<DataFrame>> {
        if let Some(df) = self.ready.take() {
            return Some(Ok(df));
        }
        let ScriptStatement { statement, text } = self.statements.next()?;
        let mut pending = self.pending.take();
        if let (Some(sql), Some(text)) = (&self.several, text) {
            match literal_queries::lookup(&self.ctx, &sql[text]).await {
                Ok(Lookup::Reused(df)) => return Some(Ok(df)),
                Ok(Lookup::Pending(p)) => pending = Some(p),
                Ok(Lookup::Plain) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        let result = self.ctx.vf_execute(statement).await;
        if let (Ok(df), Some(pending)) = (&result, pending) {
            pending.learn(&self.ctx, df).await;
        }
        Some(result)
    }
}

/// vecfusion's SQL entry point on a `SessionContext`: like `SessionContext::sql`, but it
/// also understands vecfusion's statements and `VERSION AS OF`.
#[async_trait]
pub trait VecfusionContext {
    /// Parses, plans and (for DDL and DML) runs one statement, like `SessionContext::sql`.
    async fn vf_sql(&self, sql: &str) -> Result<DataFrame>;

    /// A script's statements, parsed (all of them, so that a syntax error anywhere runs
    /// none), to be run in order with [`Script::next`]: what the shell and Python run. A
    /// one-statement query of a shape with a kept plan is not parsed at all
    /// (`literal_queries`); in a longer script such a query is parsed with the rest but
    /// answered with the kept plan too.
    async fn vf_script(&self, sql: &str) -> Result<Script>;

    /// Splits a script into statements, parsed with the session's dialect.
    fn vf_parse(&self, sql: &str) -> Result<Vec<VfStatement>>;

    /// Plans and (for DDL and DML) runs one parsed statement.
    async fn vf_execute(&self, statement: VfStatement) -> Result<DataFrame>;

    /// Registers the dataset at `location` as table `name` (the Rust spelling of
    /// `CREATE EXTERNAL TABLE name STORED AS VECFUSION LOCATION '...'`).
    async fn register_dataset(&self, name: &str, location: &str) -> Result<Dataset>;
}

#[async_trait]
impl VecfusionContext for SessionContext {
    async fn vf_sql(&self, sql: &str) -> Result<DataFrame> {
        let mut script = self.vf_script(sql).await?;
        match script.remaining() {
            1 => match script.next().await {
                Some(result) => result,
                None => plan_err!("no SQL statement was given"),
            },
            0 => plan_err!("no SQL statement was given"),
            n => plan_err!(
                "vf_sql runs one statement, got {n}; run a script with vf_script (or vf_parse \
                 and vf_execute for each statement)"
            ),
        }
    }

    async fn vf_script(&self, sql: &str) -> Result<Script> {
        let pending = match literal_queries::lookup(self, sql).await? {
            Lookup::Reused(df) => {
                return Ok(Script {
                    ctx: self.clone(),
                    pending: None,
                    ready: Some(df),
                    several: None,
                    statements: vec![].into_iter(),
                });
            }
            Lookup::Pending(pending) => Some(pending),
            Lookup::Plain => None,
        };
        let statements = parse_script_in_session(self, sql)?;
        Ok(Script {
            ctx: self.clone(),
            pending,
            ready: None,
            several: (statements.len() > 1).then(|| sql.to_string()),
            statements: statements.into_iter(),
        })
    }

    fn vf_parse(&self, sql: &str) -> Result<Vec<VfStatement>> {
        parse_in_session(self, sql)
    }

    async fn vf_execute(&self, statement: VfStatement) -> Result<DataFrame> {
        if let Some(table) = statement_table(&statement) {
            refresh_table(self, TableReference::from(table)).await;
        }
        let prepared = PreparedQueries::of(self);
        let execute = match &statement {
            VfStatement::DataFusion(s) => ExecuteCall::of(s, parse_float_as_decimal(self)),
            _ => None,
        };
        if let (Some(prepared), Some(call)) = (&prepared, &execute)
            && let Some(df) = prepared.reuse(self, call).await?
        {
            return Ok(df);
        }
        if let Some(prepared) = &prepared
            && execute.is_none()
            && !is_query(&statement)
        {
            prepared.forget_plans();
        }
        match statement {
            VfStatement::DataFusion(statement) => {
                if let DFStatement::Statement(s) = statement.as_ref()
                    && let SqlStatement::AlterTable(alter) = s.as_ref()
                {
                    return alter_table(self, alter).await;
                }
                refresh_tables(self, &statement).await;
                let insert_columns = values_insert_columns(&statement);
                let plan = self.state().statement_to_plan(*statement).await?;
                match (&plan, &prepared) {
                    (LogicalPlan::Statement(PlanStatement::SetVariable(set)), _) => {
                        check_setting(&set.variable, &set.value)?;
                    }
                    (LogicalPlan::Statement(PlanStatement::Prepare(p)), Some(prepared)) => {
                        prepared.prepared(p);
                    }
                    (LogicalPlan::Statement(PlanStatement::Deallocate(d)), Some(prepared)) => {
                        prepared.deallocated(&d.name);
                    }
                    _ => {}
                }
                let table_columns: Option<Vec<String>> = match &plan {
                    LogicalPlan::Dml(dml) => Some(
                        dml.target
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| f.name().clone())
                            .collect(),
                    ),
                    _ => None,
                };
                let df = self.execute_logical_plan(plan).await?;
                if let (Some(prepared), Some(call)) = (&prepared, &execute) {
                    return prepared.keep(self, call, df).await;
                }
                if let (Some(written), Some(table)) = (insert_columns, table_columns) {
                    // Planned once now so that a NULL in a NOT NULL column of VALUES is
                    // reported by the table's column name (`name_not_null_violation`).
                    let columns = if written.is_empty() { table } else { written };
                    if let Err(e) = df.clone().create_physical_plan().await {
                        return Err(name_not_null_violation(e, &columns));
                    }
                }
                Ok(df)
            }
            VfStatement::CreateVectorIndex(stmt) => {
                match statements::create_plan(self, &stmt).await? {
                    Some(plan) => self.execute_logical_plan(plan).await,
                    None => self.read_empty(),
                }
            }
            VfStatement::OptimizeVectorIndex(stmt) => {
                let plan = statements::optimize_plan(self, &stmt).await?;
                self.execute_logical_plan(plan).await
            }
            VfStatement::OptimizeTable(stmt) => statements::optimize_table(self, &stmt).await,
            VfStatement::DropVectorIndex(stmt) => statements::drop_index(self, &stmt).await,
            VfStatement::ShowVectorIndexes(stmt) => statements::show_indexes(self, &stmt).await,
            VfStatement::CreateEmbeddingModel(stmt) => {
                embedding_models::create_model(self, &stmt).await
            }
            VfStatement::DropEmbeddingModel(stmt) => embedding_models::drop_model(self, &stmt),
            VfStatement::ShowEmbeddingModels => embedding_models::show_models(self),
            VfStatement::Explain {
                analyze,
                verbose,
                statement,
            } => {
                let plan = match *statement {
                    VfStatement::CreateVectorIndex(stmt) => {
                        statements::create_plan(self, &stmt).await?
                    }
                    VfStatement::OptimizeVectorIndex(stmt) => {
                        Some(statements::optimize_plan(self, &stmt).await?)
                    }
                    other => {
                        return plan_err!("EXPLAIN is not supported for {other}");
                    }
                };
                match plan {
                    Some(plan) => {
                        let plan = datafusion::logical_expr::LogicalPlanBuilder::from(plan)
                            .explain(verbose, analyze)?
                            .build()?;
                        self.execute_logical_plan(plan).await
                    }
                    None => self.read_empty(),
                }
            }
        }
    }

    async fn register_dataset(&self, name: &str, location: &str) -> Result<Dataset> {
        let location = DatasetLocation::resolve(location, self.runtime_env().as_ref())?;
        let dataset = Dataset::open(location).await?;
        self.register_table(name, Arc::new(VecfusionTable::new(dataset.clone())))?;
        Ok(dataset)
    }
}

/// The table one of vecfusion's own statements works on.
fn statement_table(statement: &VfStatement) -> Option<&str> {
    match statement {
        VfStatement::CreateVectorIndex(s) => Some(&s.table),
        VfStatement::OptimizeVectorIndex(s) => Some(&s.table),
        VfStatement::OptimizeTable(s) => Some(&s.table),
        VfStatement::DropVectorIndex(s) => Some(&s.table),
        VfStatement::ShowVectorIndexes(s) => s.table.as_deref(),
        VfStatement::Explain { statement, .. } => statement_table(statement),
        _ => None,
    }
}

/// Whether `statement` only reads (a query or `EXPLAIN`), so that plans kept for prepared
/// statements stay valid after it.
fn is_query(statement: &VfStatement) -> bool {
    match statement {
        VfStatement::DataFusion(s) => match s.as_ref() {
            DFStatement::Statement(s) => matches!(s.as_ref(), SqlStatement::Query(_)),
            DFStatement::Explain(e) => matches!(
                e.statement.as_ref(),
                DFStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_))
            ),
            _ => false,
        },
        _ => false,
    }
}

/// For `INSERT INTO t [(columns)] VALUES ...` (only: other sources are not planned twice):
/// the column list as written (empty: all columns in table order).
fn values_insert_columns(statement: &datafusion::sql::parser::Statement) -> Option<Vec<String>> {
    use datafusion::sql::sqlparser::ast::{SetExpr, Statement as Sql};
    let datafusion::sql::parser::Statement::Statement(s) = statement else {
        return None;
    };
    let Sql::Insert(insert) = s.as_ref() else {
        return None;
    };
    matches!(insert.source.as_deref()?.body.as_ref(), SetExpr::Values(_))
        .then(|| insert.columns.iter().map(|c| c.to_string()).collect())
}
