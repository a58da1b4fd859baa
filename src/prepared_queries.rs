//! Prepared vector queries, planned once.
//!
//! DataFusion keeps a `PREPARE`d statement as a logical plan and, on every `EXECUTE`, binds
//! the parameters, runs the whole logical optimizer again and plans the result physically.
//! For a top-k vector query that planning is most of its time — about ten times the search
//! itself. Yet when a statement's only parameter is the query vector of its
//! `ORDER BY distance(column, $1) LIMIT k`, every `EXECUTE` yields the same physical plan
//! except for the vector the [`AnnSearchExec`] searches for. So the first `EXECUTE` keeps
//! the plan, and later ones copy it with the new vector (checked like any query vector).
//!
//! A statement qualifies when (checked at `PREPARE`) it has one parameter, used only as the
//! query of distance calls on a column in the select list or the `ORDER BY` — not in a
//! filter, join, aggregate or any other function — and calls no function whose value is
//! fixed at planning (`now()`); and when (checked at its first `EXECUTE`) the index serves it
//! (`AnnSearchExec`) and the bound vector is nowhere else in the optimized plan.
//!
//! A kept plan is used only while what it was planned from is unchanged: the session's
//! configuration (any `SET`), the table registered under its name (`CREATE`/`DROP`, a
//! refresh after `ALTER TABLE`) and the dataset's newest version (an append, delete or new
//! index from any session or process); otherwise the statement is planned afresh and that
//! plan kept. Every statement other than a query or `EXECUTE` run through vecfusion's entry
//! point drops the kept plans (it may have changed what they read), and `PREPARE` /
//! `DEALLOCATE` replace or forget the statement. Statements prepared past that entry point
//! (`SessionContext::sql`) are simply not known here and run as DataFusion runs them.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    DFSchemaRef, ScalarValue, TableReference, internal_datafusion_err, plan_err,
};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, Prepare, UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, Statement as SqlStatement, UnaryOperator, Value,
};
use parking_lot::RwLock;

use crate::metric::DistanceFunction;
use crate::provider::VecfusionTable;
use crate::search::{AnnSearchExec, AnnSearchNode, PreparedSearch};
use crate::sql::vector_text::vector_from_numbers;

/// The session's prepared statements whose plans may be kept, and the plans kept (a session
/// configuration extension, installed by `session_state_builder`).
#[derive(Debug, Default)]
pub struct PreparedQueries {
    /// Qualifying statements by name, with the plan kept for each, if any.
    statements: Mutex<HashMap<String, Option<Arc<KeptPlan>>>>,
    /// `EXECUTE`s answered with a kept plan.
    reuses: AtomicU64,
    /// Query shapes (a query's text with its vector literal as `$1`) prepared under a name
    /// of vecfusion's, or found not to share plans (`crate::literal_queries`).
    shapes: Mutex<HashMap<String, Shape>>,
    next_shape: AtomicU64,
}

/// What is known of a query shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Prepared under this name; its plan is kept (or will be, at its next planning).
    Prepared(String),
    /// Prepared under this name, but its last planning gave no plan to keep (no index
    /// served it): not tried again until a statement other than a query runs.
    Unkept(String),
    /// Does not plan as its query does (another output schema, or it cannot be prepared).
    Refused,
}

/// How many shapes a session remembers (each holds a prepared statement and a plan).
const MAX_SHAPES: usize = 256;

/// A plan kept for one prepared statement, and what it was planned from.
#[derive(Debug)]
struct KeptPlan {
    plan: Arc<dyn ExecutionPlan>,
    schema: DFSchemaRef,
    config: Arc<ConfigOptions>,
    table: TableReference,
    provider: Arc<dyn TableProvider>,
    version: u64,
    /// The session state of the DataFrames that reuse the plan ([`answering_state`]).
    state: SessionState,
}

/// An `EXECUTE name(parameters)` statement, read without planning it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteCall {
    /// The statement's name, as DataFusion names prepared statements.
    pub name: String,
    /// The only parameter, when it is an array of number literals.
    pub vector: Option<Vec<f32>>,
}

impl ExecuteCall {
    /// The `EXECUTE` that `statement` is, if it is one. Numbers are read as DataFusion's SQL
    /// planner reads them (`i64` when every element is an integer, else `f64`), then made
    /// `f32` as every query vector is; a form it reads otherwise (decimals when
    /// `parse_float_as_decimal` is on, unsigned 64-bit numbers, `_` separators) leaves
    /// `vector` empty, and the statement is planned as usual.
    pub fn of(statement: &DFStatement, parse_float_as_decimal: bool) -> Option<Self> {
        let DFStatement::Statement(s) = statement else {
            return None;
        };
        let SqlStatement::Execute {
            name: Some(name),
            parameters,
            immediate: false,
            into,
            using,
            output: false,
            default: false,
            ..
        } = s.as_ref()
        else {
            return None;
        };
        if !into.is_empty() || !using.is_empty() {
            return None;
        }
        let [part] = name.0.as_slice() else {
            return None;
        };
        let name = normalized(part.as_ident()?);
        let vector = match parameters.as_slice() {
            [SqlExpr::Array(array)] if !parse_float_as_decimal => numbers(&array.elem),
            _ => None,
        };
        Some(Self { name, vector })
    }
}

/// An identifier as DataFusion's planner names prepared statements: lower-cased unless quoted.
fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The elements of an array literal as `f32`, when every one is a (possibly negated) number.
fn numbers(elements: &[SqlExpr]) -> Option<Vec<f32>> {
    fn text(e: &SqlExpr) -> Option<(bool, &str)> {
        match e {
            SqlExpr::Value(v) => match &v.value {
                Value::Number(n, false) if !n.contains('_') => Some((false, n.as_str())),
                _ => None,
            },
            SqlExpr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match text(expr)? {
                (false, n) => Some((true, n)),
                (true, _) => None,
            },
            _ => None,
        }
    }
    let texts = elements.iter().map(text).collect::<Option<Vec<_>>>()?;
    vector_from_numbers(&texts)
}

impl PreparedQueries {
    /// The prepared queries of `ctx`'s session, when vecfusion's session builder made it.
    pub fn of(ctx: &SessionContext) -> Option<Arc<Self>> {
        ctx.state_ref().read().config().get_extension::<Self>()
    }

    /// How many `EXECUTE`s ran a kept plan.
    pub fn reuses(&self) -> u64 {
        self.reuses.load(AtomicOrdering::Relaxed)
    }

    /// Notes `PREPARE`: the statement is known here (without a plan yet) if it qualifies,
    /// and forgotten otherwise (a statement of that name prepared before is replaced).
    pub fn prepared(&self, prepare: &Prepare) {
        let mut statements = self.statements();
        if qualifies(prepare) {
            statements.insert(prepare.name.clone(), None);
        } else {
            statements.remove(&prepare.name);
        }
    }

    /// Forgets a statement (`DEALLOCATE`).
    pub fn deallocated(&self, name: &str) {
        self.statements().remove(name);
    }

    /// Drops every kept plan; the statements stay known and are planned again when run.
    pub fn forget_plans(&self) {
        self.statements().values_mut().for_each(|p| *p = None);
        for shape in self.shapes().values_mut() {
            if let Shape::Unkept(name) = shape {
                *shape = Shape::Prepared(std::mem::take(name));
            }
        }
    }

    fn shapes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Shape>> {
        self.shapes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of query shape `shape`.
    pub fn shape(&self, shape: &str) -> Option<Shape> {
        self.shapes().get(shape).cloned()
    }

    /// Records what is known of `shape`; a new shape is not remembered once
    /// [`MAX_SHAPES`] are (returns whether it is remembered).
    pub fn set_shape(&self, shape: &str, known: Shape) -> bool {
        let mut shapes = self.shapes();
        if !shapes.contains_key(shape) && shapes.len() >= MAX_SHAPES {
            return false;
        }
        shapes.insert(shape.to_string(), known);
        true
    }

    /// A name for the statement of a new shape (not one a user would write).
    pub fn shape_name(&self) -> String {
        let n = self.next_shape.fetch_add(1, AtomicOrdering::Relaxed);
        format!("__vecfusion_shape_{n}")
    }

    /// Whether statement `name` is known here (prepared, and qualifying).
    pub fn is_known(&self, name: &str) -> bool {
        self.statements().contains_key(name)
    }

    /// Whether a plan is kept for statement `name`.
    pub fn has_plan(&self, name: &str) -> bool {
        matches!(self.statements().get(name), Some(Some(_)))
    }

    fn statements(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Arc<KeptPlan>>>> {
        // A panic while the lock was held leaves nothing half-updated worth refusing.
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `call` with its kept plan, if it has one that is still valid (see the module
    /// documentation); `Ok(None)`: plan it as usual (then [`Self::keep`]).
    pub async fn reuse(
        &self,
        ctx: &SessionContext,
        call: &ExecuteCall,
    ) -> Result<Option<DataFrame>> {
        let Some(vector) = &call.vector else {
            return Ok(None);
        };
        let Some(Some(kept)) = self.statements().get(&call.name).cloned() else {
            return Ok(None);
        };
        let same_config = {
            let state = ctx.state_ref();
            let state = state.read();
            Arc::ptr_eq(state.config().options(), &kept.config)
        };
        if !same_config {
            return Ok(None);
        }
        let Ok(provider) = ctx.table_provider(kept.table.clone()).await else {
            return Ok(None);
        };
        if !same_provider(&provider, &kept.provider) {
            return Ok(None);
        }
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            return Ok(None);
        };
        // Errors reading the newest version are reported by the usual planning.
        if table.dataset().await.map(|d| d.version()).ok() != Some(kept.version) {
            return Ok(None);
        }
        let plan = with_query(&kept.plan, vector.clone())?;
        self.reuses.fetch_add(1, AtomicOrdering::Relaxed);
        Ok(Some(DataFrame::new(
            kept.state.clone(),
            PlannedQuery::plan(&call.name, plan, kept.schema.clone()),
        )))
    }

    /// Plans `df` (the planned `EXECUTE` of `call`) physically now, keeps the plan if it may
    /// be reused, and returns the same query over that plan (planned once, not twice).
    pub async fn keep(
        &self,
        ctx: &SessionContext,
        call: &ExecuteCall,
        df: DataFrame,
    ) -> Result<DataFrame> {
        let known = self.statements().contains_key(&call.name);
        let Some(vector) = call.vector.as_deref().filter(|_| known) else {
            return Ok(df);
        };
        let (state, plan) = df.into_parts();
        let optimized = state.optimize(&plan)?;
        let physical = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await?;
        let schema = optimized.schema().clone();
        if let Some((table, source)) = searched_table(&optimized, vector)?
            && let Some(search) = single_search(&physical)?
            && search.queries() == vector
            && let Ok(provider) = ctx.table_provider(table.clone()).await
            && same_provider(&provider, &source)
        {
            let kept = KeptPlan {
                plan: physical.clone(),
                schema: schema.clone(),
                config: state.config().options().clone(),
                table,
                provider,
                version: search.dataset().version(),
                state: answering_state(&state, Arc::downgrade(&ctx.state_ref())),
            };
            if let Some(entry) = self.statements().get_mut(&call.name) {
                *entry = Some(Arc::new(kept));
            }
        }
        Ok(DataFrame::new(
            state,
            PlannedQuery::plan(&call.name, physical, schema),
        ))
    }
}

/// The session state of a reused plan's DataFrames: the session's configuration options and
/// runtime, but no catalogs (it plans no table), no function registries and no rules.
/// Copying the session's own state (its registries: hundreds of entries) and running its
/// analyzer and optimizer over the one planned node cost about a fifth of a query whose
/// search takes tens of microseconds; this state is copied for almost nothing and plans the
/// node as it is. Anything built on such a DataFrame (a filter, a limit, EXPLAIN) is planned
/// by the session itself ([`KeptPlanPlanner`]), with every rule; only SQL text parsed
/// against the DataFrame (`parse_sql_expr`) does not see the session's functions.
fn answering_state(state: &SessionState, session: Weak<RwLock<SessionState>>) -> SessionState {
    SessionStateBuilder::new()
        .with_session_id(state.session_id().to_string())
        // The options alone: the session's configuration also holds its extensions, these
        // kept plans among them, which would then hold themselves.
        .with_config(SessionConfig::from(
            state.config().options().as_ref().clone(),
        ))
        .with_runtime_env(state.runtime_env().clone())
        .with_analyzer_rules(vec![])
        .with_optimizer_rules(vec![])
        .with_physical_optimizer_rules(vec![])
        .with_query_planner(Arc::new(KeptPlanPlanner { session }))
        .build()
}

/// The query planner of [`answering_state`]: a [`PlannedQuery`] is its kept plan; any other
/// plan (one built on it) is planned by the session the query came from.
#[derive(Debug)]
struct KeptPlanPlanner {
    /// Weak: the session holds the kept plans, and through them this planner.
    session: Weak<RwLock<SessionState>>,
}

#[async_trait]
impl QueryPlanner for KeptPlanPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        _session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(plan) = PlannedQuery::physical_plan(logical_plan)? {
            return Ok(plan);
        }
        let Some(session) = self.session.upgrade() else {
            return plan_err!("the session this query was planned in has been dropped");
        };
        let state = session.read().clone();
        state.create_physical_plan(logical_plan).await
    }
}

/// Whether two providers are the same registered object.
fn same_provider(a: &Arc<dyn TableProvider>, b: &Arc<dyn TableProvider>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Whether a prepared statement qualifies (see the module documentation).
fn qualifies(prepare: &Prepare) -> bool {
    let vector_type = match prepare.fields.as_slice() {
        [] => true,
        [field] => match field.data_type() {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                matches!(f.data_type(), DataType::Float32 | DataType::Float64)
            }
            DataType::Null => true,
            _ => false,
        },
        _ => false,
    };
    let mut ok = vector_type;
    let _ = prepare.input.apply_with_subqueries(|node| {
        let in_select_or_order = matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Sort(_));
        node.apply_expressions(|e| {
            let (mut placeholders, mut as_query) = (0usize, 0usize);
            e.apply(|e| {
                match e {
                    Expr::Placeholder(p) if p.id == "$1" => placeholders += 1,
                    Expr::Placeholder(_) => ok = false,
                    Expr::ScalarFunction(f) => {
                        if f.func.signature().volatility == Volatility::Stable {
                            ok = false;
                        }
                        if DistanceFunction::from_name(f.func.name()).is_some()
                            && matches!(
                                f.args.as_slice(),
                                [Expr::Column(_), Expr::Placeholder(p)] if p.id == "$1"
                            )
                        {
                            as_query += 1;
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
            if placeholders != as_query || (placeholders > 0 && !in_select_or_order) {
                ok = false;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

/// The table (name and provider) of the optimized plan's only `AnnSearch`, when it searches
/// for `vector` and no other expression of the plan holds a list constant (the vector, or
/// anything derived from it, that a new vector would have to change).
fn searched_table(
    optimized: &LogicalPlan,
    vector: &[f32],
) -> Result<Option<(TableReference, Arc<dyn TableProvider>)>> {
    let (mut found, mut clean) = (None, true);
    let mut searches = 0;
    optimized.apply_with_subqueries(|node| {
        if let Some(ann) = ann_node(node) {
            searches += 1;
            let same = ann.query.len() == vector.len()
                && ann
                    .query
                    .iter()
                    .zip(vector)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            clean &= same && !ann.filters.iter().any(holds_list_constant);
            found = Some((
                ann.scan.table_name.clone(),
                source_as_provider(&ann.scan.source)?,
            ));
        }
        node.apply_expressions(|e| {
            clean &= !holds_list_constant(e);
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found.filter(|_| clean && searches == 1))
}

fn ann_node(node: &LogicalPlan) -> Option<&AnnSearchNode> {
    match node {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<AnnSearchNode>(),
        _ => None,
    }
}

fn holds_list_constant(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|e| {
        found |= matches!(
            e,
            Expr::Literal(
                ScalarValue::List(_) | ScalarValue::LargeList(_) | ScalarValue::FixedSizeList(_),
                _
            )
        );
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// The search of the physical plan's only `AnnSearchExec`, if it has exactly one.
fn single_search(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<PreparedSearch>> {
    let mut found = vec![];
    plan.apply(|node| {
        if let Some(ann) = node.downcast_ref::<AnnSearchExec>() {
            found.push(ann.search().clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(match found.len() {
        1 => found.pop(),
        _ => None,
    })
}

/// `plan` with its `AnnSearchExec` searching for `vector` instead, every other operator with
/// fresh state (as `reset_plan_states` leaves them), in one pass over the plan.
fn with_query(plan: &Arc<dyn ExecutionPlan>, vector: Vec<f32>) -> Result<Arc<dyn ExecutionPlan>> {
    let mut vector = Some(vector);
    plan.clone()
        .transform_up(|node| {
            let Some(ann) = node.downcast_ref::<AnnSearchExec>() else {
                return Ok(Transformed::yes(node.reset_state()?));
            };
            let vector = vector
                .take()
                .ok_or_else(|| internal_datafusion_err!("a kept plan searches twice"))?;
            Ok(Transformed::yes(Arc::new(ann.with_queries(vector)?)))
        })
        .map(|t| t.data)
}

/// A logical plan that is already planned physically: what an `EXECUTE` served from a kept
/// plan returns, so that collecting it runs that plan instead of planning again
/// (`VecfusionQueryPlanner` returns [`PlannedQuery::physical_plan`]).
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    name: String,
    plan: Arc<dyn ExecutionPlan>,
    schema: DFSchemaRef,
    /// Whether `plan` has not run yet (shared by the node's copies): its first planning hands
    /// it out as it is, later ones a copy with fresh state.
    unused: Arc<AtomicBool>,
}

impl PlannedQuery {
    /// The query of `plan`, a plan that has not run (its operators' state is fresh).
    fn plan(name: &str, plan: Arc<dyn ExecutionPlan>, schema: DFSchemaRef) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(Self {
                name: name.to_string(),
                plan,
                schema,
                unused: Arc::new(AtomicBool::new(true)),
            }),
        })
    }

    /// The physical plan of `logical_plan`, when it is a `PlannedQuery` ([`Self::physical`]).
    pub fn physical_plan(logical_plan: &LogicalPlan) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        match logical_plan {
            LogicalPlan::Extension(e) => match e.node.as_any().downcast_ref::<Self>() {
                Some(planned) => planned.physical().map(Some),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// The kept plan: the plan itself the first time, then a copy with fresh state (a
    /// DataFrame may be collected more than once, and operators keep state in the plan).
    pub fn physical(&self) -> Result<Arc<dyn ExecutionPlan>> {
        if self.unused.swap(false, AtomicOrdering::Relaxed) {
            return Ok(self.plan.clone());
        }
        reset_plan_states(self.plan.clone())
    }
}

impl PartialEq for PlannedQuery {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.plan, &other.plan)
    }
}

impl Eq for PlannedQuery {}

impl Hash for PlannedQuery {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        std::ptr::hash(Arc::as_ptr(&self.plan) as *const (), state);
    }
}

impl PartialOrd for PlannedQuery {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self == other).then_some(std::cmp::Ordering::Equal)
    }
}

impl UserDefinedLogicalNodeCore for PlannedQuery {
    fn name(&self) -> &str {
        "PlannedQuery"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PlannedQuery: EXECUTE {} (physical plan kept, query vector bound)",
            self.name
        )
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::config::Dialect as DialectName;

    use super::ExecuteCall;
    use crate::sql::{VfStatement, dialect_for, parse_statements};

    fn call(sql: &str, decimals: bool) -> Option<ExecuteCall> {
        let dialect = dialect_for(&DialectName::Generic).unwrap();
        match parse_statements(sql, dialect.as_ref()).unwrap().remove(0) {
            VfStatement::DataFusion(s) => ExecuteCall::of(&s, decimals),
            _ => None,
        }
    }

    fn vector(sql: &str) -> Option<Vec<f32>> {
        call(sql, false).unwrap().vector
    }

    #[test]
    fn reads_the_vector_as_the_sql_planner_does() {
        let c = call("EXECUTE Knn([1, -2, 3])", false).unwrap();
        assert_eq!(c.name, "knn");
        assert_eq!(c.vector, Some(vec![1.0, -2.0, 3.0]));
        assert_eq!(call("EXECUTE \"Knn\"([1])", false).unwrap().name, "Knn");
        assert_eq!(
            vector("EXECUTE q([0.1, -1e-3, 2])"),
            Some(vec![0.1, -1e-3, 2.0])
        );
        // Forms DataFusion reads otherwise are left to it.
        assert_eq!(call("EXECUTE q([0.5])", true).unwrap().vector, None);
        assert_eq!(vector("EXECUTE q([18446744073709551615])"), None);
        assert_eq!(vector("EXECUTE q([1, x])"), None);
        assert_eq!(vector("EXECUTE q([1], [2])"), None);
        assert_eq!(vector("EXECUTE q([- -1])"), None);
        assert_eq!(vector("EXECUTE q([])"), None);
        assert!(call("SELECT 1", false).is_none());
    }
}
