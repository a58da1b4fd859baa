//! The optimizer rule that answers `ORDER BY <distance>(column, constant) LIMIT k` from a
//! vector index, by putting an [`AnnSearchNode`] in place of the table scan.
//!
//! The rule fires only when the query is exactly a top-k by one supported distance function
//! between a column of a vecfusion table and a constant vector, ordered the way that puts the
//! closest rows first (`l2_distance`, `cosine_distance`, `negative_inner_product` ascending;
//! `inner_product` descending), through any projections, aliases and filters in between. It
//! replaces the table scan under the sort by an [`AnnSearchNode`] that yields the k rows the
//! index finds (with the filters applied before the top-k); the sort stays and orders those k
//! rows by the exact distance, so the query's result has the same shape and values as the
//! exact plan's, approximated only in which rows are found. Anything else is left unchanged.
//!
//! The node keeps the original scan: when the physical planner finds no index of the right
//! metric in the version being read (or `vecfusion.use_index = false`), it plans that scan —
//! the exact plan.

use std::sync::Arc;

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::node::AnnSearchNode;
use super::query_vector::constant_vector;
use super::settings::SearchSettings;
use crate::dataset::vector_column;
use crate::metric::DistanceFunction;
use crate::provider::VecfusionTable;

/// `ORDER BY distance LIMIT k` → [`AnnSearchNode`].
#[derive(Debug, Default)]
pub struct AnnRewrite;

/// The distance call a sort key stands for, resolved through aliases and projections down to
/// the scan: (function, column name, query).
fn distance_call(e: &Expr) -> Option<(DistanceFunction, String, Vec<f32>)> {
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
        let LogicalPlan::Sort(sort) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let (Some(k), [key]) = (sort.fetch, sort.expr.as_slice()) else {
            return Ok(Transformed::no(plan));
        };
        // Resolve the sort key down to the scan.
        let mut expr = key.expr.clone().unalias_nested().data;
        let mut node: &LogicalPlan = &sort.input;
        let mut filters = vec![];
        let scan = loop {
            match node {
                LogicalPlan::Projection(p) => {
                    if let Expr::Column(c) = &expr {
                        let Some(i) = p.schema.maybe_index_of_column(c) else {
                            return Ok(Transformed::no(plan));
                        };
                        expr = p.expr[i].clone().unalias_nested().data;
                    }
                    node = &p.input;
                }
                LogicalPlan::Filter(f) => {
                    filters.push(f.predicate.clone());
                    node = &f.input;
                }
                LogicalPlan::SubqueryAlias(a) => {
                    if let Expr::Column(c) = &expr {
                        expr = Expr::Column(Column::new_unqualified(c.name.clone()));
                    }
                    node = &a.input;
                }
                LogicalPlan::TableScan(t) => break t,
                _ => return Ok(Transformed::no(plan)),
            }
        };
        let Some((function, column, query)) = distance_call(&expr) else {
            return Ok(Transformed::no(plan));
        };
        if key.asc != function.ascending_is_closest() || scan.fetch.is_some() {
            return Ok(Transformed::no(plan));
        }
        let provider = source_as_provider(&scan.source)?;
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            return Ok(Transformed::no(plan));
        };
        let schema = datafusion::catalog::TableProvider::schema(table);
        let dim_matches = vector_column(&schema, &column).is_ok_and(|(_, dim)| dim == query.len());
        let projected = scan
            .projected_schema
            .fields()
            .iter()
            .any(|f| f.name() == &column);
        if !dim_matches || !projected {
            return Ok(Transformed::no(plan));
        }
        filters.extend(scan.filters.iter().cloned());
        let scan_plan = LogicalPlan::TableScan(scan.clone());
        let ann = LogicalPlan::Extension(Extension {
            node: Arc::new(AnnSearchNode {
                scan: scan_plan.clone(),
                column,
                function,
                query,
                k,
                filters,
            }),
        });
        let sort = sort.clone();
        let input = Arc::unwrap_or_clone(sort.input)
            .transform_down(|n| {
                if n == scan_plan {
                    // Jump: do not descend into the new node (its input is the same scan).
                    Ok(Transformed::new(ann.clone(), true, TreeNodeRecursion::Jump))
                } else {
                    Ok(Transformed::no(n))
                }
            })?
            .data;
        Ok(Transformed::yes(LogicalPlan::Sort(
            datafusion::logical_expr::logical_plan::Sort {
                expr: sort.expr,
                input: Arc::new(input),
                fetch: sort.fetch,
            },
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
        assert!(
            lines[0].starts_with("Sort: d ASC NULLS LAST, fetch=3"),
            "{plan}"
        );
        let ann = lines
            .iter()
            .position(|l| l.starts_with("AnnSearch: l2_distance(embedding, [4 values]) k=3"))
            .unwrap_or_else(|| panic!("{plan}"));
        assert!(
            lines[ann].contains("prefilter=[t.label = Utf8View(\"a\")]"),
            "{plan}"
        );
        // Its input is the scan it stands for.
        assert!(lines[ann + 1].starts_with("TableScan: t"), "{plan}");

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
        ] {
            let (plan, changed) = rewritten(&ctx, sql).await;
            assert!(!changed && !plan.contains("AnnSearch"), "{sql}\n{plan}");
        }
    }
}
