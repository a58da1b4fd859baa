//! Filters pushed into the scan and DML predicates, as physical expressions over the table
//! schema.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;

/// The scan evaluates every deterministic filter itself, exactly, so DataFusion needs no
/// `FilterExec` above it and can push a `LIMIT` into the scan. Volatile filters (`random()`)
/// stay with DataFusion.
pub fn pushdown_kind(filter: &Expr) -> TableProviderFilterPushDown {
    if filter.is_volatile() {
        TableProviderFilterPushDown::Unsupported
    } else {
        TableProviderFilterPushDown::Exact
    }
}

/// Plans logical expressions against the table schema. Column references arrive qualified
/// with whatever name or alias the query used (`items.id`, `t.id`); the table itself only
/// knows bare column names, so qualifiers are dropped first.
pub fn to_physical_exprs(
    state: &dyn Session,
    schema: &SchemaRef,
    exprs: &[Expr],
) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    exprs
        .iter()
        .map(|e| {
            let bare = e
                .clone()
                .transform(|e| match e {
                    Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                        c.name,
                    )))),
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            state.create_physical_expr(bare, &df_schema)
        })
        .collect()
}
