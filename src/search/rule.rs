//! The optimizer rule that answers `ORDER BY <distance>(column, constant) LIMIT k` from a
//! vector index, by putting an [`AnnSearchNode`] in place of the table scan.
//!
//! The rule fires only when the query is exactly a top-k by one supported distance function
//! between a column of a vecfusion table and a constant vector, ordered the way that puts the
//! closest rows first (`l2_distance`, `cosine_distance`, `negative_inner_product` ascending;
//! `inner_product` descending), through any projections, aliases and filters in between. It
//! replaces the table scan under the sort by an [`AnnSearchNode`] that yields the k rows the
//! index finds (with the filters applied before the top-k) and their exact distance as a
//! column, [`DISTANCE_COLUMN`]. Every call of that distance above the node — the sort key, a
//! projected `AS d`, a filter — becomes a read of that column, so the query's result has the
//! same shape and values as the exact plan's, approximated only in which rows are found, and
//! the (often long) query literal is out of the plan. Anything else is left unchanged.
//!
//! When the physical planner finds no index of the right metric in the version being read,
//! the node plans the scan it replaced with the distance computed per row: the exact plan.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::logical_plan::{Filter, Projection, Sort, SubqueryAlias};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, SortExpr, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::node::AnnSearchNode;
use super::query_vector::constant_vector;
use super::request::DISTANCE_COLUMN;
use super::settings::SearchSettings;
use crate::dataset::vector_column;
use crate::metric::DistanceFunction;
use crate::provider::VecfusionTable;

/// `ORDER BY distance LIMIT k` → [`AnnSearchNode`].
#[derive(Debug, Default)]
pub struct AnnRewrite;

/// A distance call between a column and a constant vector: (function, column name, query).
type DistanceCall = (DistanceFunction, String, Vec<f32>);

/// The distance call `e` is, if it is one.
fn distance_call(e: &Expr) -> Option<DistanceCall> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    let function = DistanceFunction::from_name(f.name())?;
    match f.args.as_slice() {
        // A constant that cannot be a query vector (NULL elements) is left to the exact
        // plan, which reports it.
        [Expr::Column(c), q] | [q, Expr::Column(c)] => {
            Some((function, c.name.clone(), constant_vector(q).ok()??))
        }
        _ => None,
    }
}

/// `e` with every column reference qualified by `qualifier` (`None`: unqualified).
fn requalified(e: Expr, qualifier: Option<&TableReference>) -> Result<Expr> {
    Ok(e.transform_up(|e| match e {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new(
            qualifier.cloned(),
            c.name,
        )))),
        e => Ok(Transformed::no(e)),
    })?
    .data)
}

/// `e` with every occurrence of `call` replaced by the column `distance`.
fn read_distance(e: &Expr, call: &DistanceCall, distance: &Column) -> Result<Transformed<Expr>> {
    e.clone().transform_down(|x| {
        if distance_call(&x).as_ref() == Some(call) {
            let column = Expr::Column(distance.clone());
            Ok(Transformed::new(column, true, TreeNodeRecursion::Jump))
        } else {
            Ok(Transformed::no(x))
        }
    })
}

/// The distance column in `schema`, if it has exactly one.
fn distance_column(schema: &DFSchema) -> Option<Column> {
    let (qualifier, field) = schema
        .qualified_field_with_unqualified_name(DISTANCE_COLUMN)
        .ok()?;
    Some(Column::new(qualifier.cloned(), field.name()))
}

/// `node` (a projection, filter or alias between the sort and the scan) rebuilt over `input`,
/// which has the distance column: calls of the distance read it, and a projection passes it
/// up. `None` when a projection already names another expression `_distance`.
fn over_search(
    node: &LogicalPlan,
    input: LogicalPlan,
    call: &DistanceCall,
) -> Result<Option<LogicalPlan>> {
    let Some(distance) = distance_column(input.schema()) else {
        return Ok(None);
    };
    let input = Arc::new(input);
    Ok(Some(match node {
        LogicalPlan::Projection(p) => {
            let mut exprs = Vec::with_capacity(p.expr.len() + 1);
            let mut names_distance = false;
            for (e, field) in p.expr.iter().zip(p.schema.fields()) {
                let read = read_distance(e, call, &distance)?;
                // A replaced call keeps the name it had (`l2_distance(...)` unaliased).
                let e = match read.data {
                    e @ Expr::Alias(_) => e,
                    e if read.transformed => e.alias(field.name()),
                    e => e,
                };
                if field.name() == DISTANCE_COLUMN {
                    if e.clone().unalias_nested().data != Expr::Column(distance.clone()) {
                        return Ok(None);
                    }
                    names_distance = true;
                }
                exprs.push(e);
            }
            if !names_distance {
                exprs.push(Expr::Column(distance));
            }
            LogicalPlan::Projection(Projection::try_new(exprs, input)?)
        }
        LogicalPlan::Filter(f) => {
            let predicate = read_distance(&f.predicate, call, &distance)?.data;
            LogicalPlan::Filter(Filter::try_new(predicate, input)?)
        }
        LogicalPlan::SubqueryAlias(a) => {
            LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(input, a.alias.clone())?)
        }
        _ => return Ok(None),
    }))
}

/// `Projection` over an [`AnnSearchNode`] → the node yielding only the columns the projection
/// reads (DataFusion's projection pushdown stops at a leaf extension node); the projection
/// itself goes when it only restated those columns.
fn narrow_search(p: &Projection, ann: &AnnSearchNode) -> Result<Transformed<LogicalPlan>> {
    let plan = || LogicalPlan::Projection(p.clone());
    let schema = UserDefinedLogicalNodeCore::schema(ann);
    let yielded = ann.columns().len();
    let mut read = vec![false; yielded];
    for e in &p.expr {
        for c in e.column_refs() {
            match schema.maybe_index_of_column(c) {
                Some(i) if i < yielded => read[i] = true,
                Some(_) => {}
                None => return Ok(Transformed::no(plan())),
            }
        }
    }
    if read.iter().all(|r| *r) {
        return Ok(Transformed::no(plan()));
    }
    let columns = ann
        .columns()
        .iter()
        .zip(&read)
        .filter_map(|(c, r)| r.then_some(*c))
        .collect();
    let narrowed = LogicalPlan::Extension(Extension {
        node: Arc::new(ann.with_columns(columns)?),
    });
    let restates = p.expr.len() == narrowed.schema().fields().len()
        && p.expr
            .iter()
            .zip(narrowed.schema().columns())
            .all(|(e, c)| matches!(e, Expr::Column(x) if *x == c));
    if restates {
        return Ok(Transformed::yes(narrowed));
    }
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(p.expr.clone(), Arc::new(narrowed))?,
    )))
}

impl OptimizerRule for AnnRewrite {
    fn name(&self) -> &str {
        "vecfusion_ann_rewrite"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let options = config.options();
        if !options
            .extensions
            .get::<SearchSettings>()
            .is_none_or(|o| o.use_index)
        {
            return Ok(Transformed::no(plan));
        }
        if let LogicalPlan::Projection(p) = &plan
            && let LogicalPlan::Extension(e) = p.input.as_ref()
            && let Some(ann) = e.node.as_any().downcast_ref::<AnnSearchNode>()
        {
            return narrow_search(p, ann);
        }
        let LogicalPlan::Sort(sort) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let (Some(k), [key]) = (sort.fetch, sort.expr.as_slice()) else {
            return Ok(Transformed::no(plan));
        };
        // Resolve the sort key down to the scan (each column replaced by what it stands for
        // below), noting the nodes in between.
        let mut expr = key.expr.clone().unalias_nested().data;
        let mut node: &LogicalPlan = &sort.input;
        let mut between = vec![];
        let mut filters = vec![];
        let scan = loop {
            let below = match node {
                LogicalPlan::Projection(p) => {
                    let mut resolved = true;
                    expr = expr
                        .transform_up(|e| match &e {
                            Expr::Column(c) => match p.schema.maybe_index_of_column(c) {
                                Some(i) => {
                                    Ok(Transformed::yes(p.expr[i].clone().unalias_nested().data))
                                }
                                None => {
                                    resolved = false;
                                    Ok(Transformed::no(e))
                                }
                            },
                            _ => Ok(Transformed::no(e)),
                        })?
                        .data;
                    if !resolved {
                        return Ok(Transformed::no(plan));
                    }
                    &p.input
                }
                LogicalPlan::Filter(f) => {
                    filters.push(f.predicate.clone());
                    &f.input
                }
                LogicalPlan::SubqueryAlias(a) => {
                    expr = requalified(expr, None)?;
                    &a.input
                }
                LogicalPlan::TableScan(t) => break t,
                _ => return Ok(Transformed::no(plan)),
            };
            between.push(node);
            node = below;
        };
        let Some(call) = distance_call(&expr) else {
            return Ok(Transformed::no(plan));
        };
        let (function, column) = (call.0, call.1.clone());
        if key.asc != function.ascending_is_closest() || scan.fetch.is_some() {
            return Ok(Transformed::no(plan));
        }
        let provider = source_as_provider(&scan.source)?;
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            return Ok(Transformed::no(plan));
        };
        let schema = datafusion::catalog::TableProvider::schema(table);
        let dim_matches = vector_column(&schema, &column).is_ok_and(|(_, dim)| dim == call.2.len());
        let fields = scan.projected_schema.fields();
        let projected = fields.iter().any(|f| f.name() == &column);
        // A table column of the distance column's name would be shadowed.
        let shadowed = fields.iter().any(|f| f.name() == DISTANCE_COLUMN);
        if !dim_matches || !projected || shadowed {
            return Ok(Transformed::no(plan));
        }
        filters.extend(scan.filters.iter().cloned());
        // The call over the scan's own column, for the exact plan.
        let distance = requalified(expr, Some(&scan.table_name))?;
        let ann = AnnSearchNode::try_new(scan.clone(), distance, call.clone(), k, filters)?;
        let mut input = LogicalPlan::Extension(Extension {
            node: Arc::new(ann),
        });
        for node in between.iter().rev() {
            match over_search(node, input, &call)? {
                Some(rebuilt) => input = rebuilt,
                None => return Ok(Transformed::no(plan)),
            }
        }
        let Some(distance) = distance_column(input.schema()) else {
            return Ok(Transformed::no(plan));
        };
        // (An alias on a sort key names nothing; dropped, it takes the literal with it.)
        let key = SortExpr {
            expr: read_distance(&key.expr, &call, &distance)?
                .data
                .unalias_nested()
                .data,
            ..key.clone()
        };
        let sorted = LogicalPlan::Sort(Sort {
            expr: vec![key],
            input: Arc::new(input),
            fetch: sort.fetch,
        });
        // The sort's own columns, without the search's distance column.
        let columns = sort.input.schema().columns().into_iter().map(Expr::Column);
        Ok(Transformed::yes(LogicalPlan::Projection(
            Projection::try_new(columns.collect(), Arc::new(sorted))?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::LogicalPlan;
    use datafusion::optimizer::{OptimizerContext, OptimizerRule};
    use datafusion::prelude::SessionContext;

    use super::AnnRewrite;
    use crate::VecfusionContext;
    use crate::test_support::{create_table, session_after};

    /// A session with a 4-d vecfusion table `t`, an in-memory table `m` of the same shape,
    /// and the rule switched off so that its plans arrive at the rule unrewritten.
    async fn session(dir: &std::path::Path) -> SessionContext {
        session_after(&[
            create_table(dir, "id BIGINT, label VARCHAR, embedding FLOAT[4]"),
            "CREATE TABLE m AS SELECT id, 'x' AS label, vector AS embedding \
             FROM random_vectors(10, 4)"
                .into(),
            "SET vecfusion.use_index = false".into(),
        ])
        .await
    }

    /// The optimized plan of `sql`, then `AnnRewrite` applied as the optimizer applies it.
    async fn rewritten(ctx: &SessionContext, sql: &str) -> (String, bool) {
        let plan: LogicalPlan = ctx
            .vf_sql(sql)
            .await
            .unwrap()
            .into_optimized_plan()
            .unwrap();
        let config = OptimizerContext::new();
        let out = plan
            .transform_down(|p| AnnRewrite.rewrite(p, &config))
            .unwrap();
        (out.data.display_indent().to_string(), out.transformed)
    }

    /// Whether `plan` still carries the query literal anywhere (it prints as a list).
    fn carries_the_literal(plan: &str) -> bool {
        plan.contains("List(") || plan.contains("[1, 2, 3, 4]")
    }

    #[tokio::test]
    async fn a_closest_first_top_k_becomes_an_ann_search_under_the_sort() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(dir.path()).await;
        let (plan, changed) = rewritten(
            &ctx,
            "SELECT id, l2_distance(embedding, [1, 2, 3, 4]) AS d FROM t WHERE label = 'a' \
             ORDER BY d LIMIT 3",
        )
        .await;
        assert!(changed, "{plan}");
        let lines: Vec<&str> = plan.lines().map(str::trim).collect();
        // Back to the sort's columns, over the sort, over the projection reading the
        // search's distance column instead of calling the function, over the search.
        assert_eq!(lines[0], "Projection: t.id, d", "{plan}");
        assert_eq!(lines[1], "Sort: d ASC NULLS LAST, fetch=3", "{plan}");
        assert_eq!(
            lines[2], "Projection: t.id, t._distance AS d, t._distance",
            "{plan}"
        );
        assert!(
            lines[3].starts_with(
                "AnnSearch: l2_distance(embedding, [4 values]) k=3 table=t \
                 projection=[id]"
            ),
            "{plan}"
        );
        assert!(
            lines[3].contains("prefilter=[t.label = Utf8View(\"a\")]"),
            "{plan}"
        );
        // A leaf: the scan is planned only when no index answers.
        assert_eq!(lines.len(), 4, "{plan}");
        assert!(!carries_the_literal(&plan), "{plan}");

        // Ordered by the call itself: the sort reads the column.
        let (plan, changed) = rewritten(
            &ctx,
            "SELECT id FROM t ORDER BY l2_distance(embedding, [1, 2, 3, 4]) LIMIT 3",
        )
        .await;
        assert!(changed && !carries_the_literal(&plan), "{plan}");
        assert!(
            plan.contains("Sort: t._distance ASC NULLS LAST, fetch=3"),
            "{plan}"
        );

        // Through a subquery alias, the distance named `_distance` by the query itself.
        let (plan, changed) = rewritten(
            &ctx,
            "SELECT s.id, s._distance FROM (SELECT id, \
             cosine_distance(embedding, [1, 2, 3, 4]) AS _distance FROM t) s \
             ORDER BY s._distance LIMIT 2",
        )
        .await;
        assert!(changed && !carries_the_literal(&plan), "{plan}");
        assert!(plan.contains("AnnSearch: cosine_distance"), "{plan}");

        // inner_product is closest-first descending.
        let (plan, changed) = rewritten(
            &ctx,
            "SELECT id FROM t ORDER BY inner_product(embedding, [1, 2, 3, 4]) DESC LIMIT 2",
        )
        .await;
        assert!(
            changed && plan.contains("AnnSearch: inner_product"),
            "{plan}"
        );
        assert!(
            plan.contains("Sort: t._distance DESC NULLS FIRST, fetch=2"),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn anything_else_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = session(dir.path()).await;
        for sql in [
            // farthest first
            "SELECT id FROM t ORDER BY l2_distance(embedding, [1, 2, 3, 4]) DESC LIMIT 3",
            "SELECT id FROM t ORDER BY inner_product(embedding, [1, 2, 3, 4]) LIMIT 3",
            // no limit, two keys, a non-constant query
            "SELECT id FROM t ORDER BY l2_distance(embedding, [1, 2, 3, 4])",
            "SELECT id FROM t ORDER BY l2_distance(embedding, [1, 2, 3, 4]), id LIMIT 3",
            "SELECT id FROM t ORDER BY l2_distance(embedding, embedding) LIMIT 3",
            // not a vecfusion table
            "SELECT id FROM m ORDER BY l2_distance(embedding, [1, 2, 3, 4]) LIMIT 3",
            // another expression named like the search's distance column
            "SELECT id, 0.5 AS _distance FROM t \
             ORDER BY l2_distance(embedding, [1, 2, 3, 4]) LIMIT 3",
        ] {
            let (plan, changed) = rewritten(&ctx, sql).await;
            assert!(!changed && !plan.contains("AnnSearch"), "{sql}\n{plan}");
        }
    }
}
