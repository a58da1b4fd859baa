//! The optimizer rule that answers `ORDER BY <distance>(column, constant) LIMIT k` from a
//! vector index, and the logical node it produces.
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

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, TableScan, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::options::VecfusionOptions;
use crate::provider::VecfusionTable;
use crate::udf::DistanceFunction;

/// A top-k distance search standing in for a table scan.
#[derive(Debug, Clone)]
pub struct AnnSearchNode {
    /// The scan it replaces (planned as is when no index fits).
    pub scan: LogicalPlan,
    pub column: String,
    pub function: DistanceFunction,
    pub query: Vec<f32>,
    pub k: usize,
    /// Predicates over the table applied before the top-k.
    pub filters: Vec<Expr>,
}

impl AnnSearchNode {
    fn key(&self) -> String {
        let bits: Vec<u32> = self.query.iter().map(|v| v.to_bits()).collect();
        format!(
            "{} {} {:?} {} {:?}",
            self.column,
            self.function.name(),
            bits,
            self.k,
            self.filters
        )
    }

    pub fn table_scan(&self) -> Option<&TableScan> {
        match &self.scan {
            LogicalPlan::TableScan(t) => Some(t),
            _ => None,
        }
    }
}

impl PartialEq for AnnSearchNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key() && self.scan == other.scan
    }
}
impl Eq for AnnSearchNode {}
impl Hash for AnnSearchNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}
impl PartialOrd for AnnSearchNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.key().partial_cmp(&other.key())
    }
}

impl UserDefinedLogicalNodeCore for AnnSearchNode {
    fn name(&self) -> &str {
        "AnnSearch"
    }
    /// The replaced scan is the node's input, so DataFusion plans (and optimises) it as
    /// part of the whole plan: when no index fits, the physical plan is exactly the one the
    /// query would have had without the rule.
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.scan]
    }
    fn schema(&self) -> &DFSchemaRef {
        self.scan.schema()
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "AnnSearch: {}({}, [{} values]) k={}",
            self.function.name(),
            self.column,
            self.query.len(),
            self.k
        )?;
        if !self.filters.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(f, " prefilter=[{}]", filters.join(", "))?;
        }
        Ok(())
    }
    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let scan = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("AnnSearch needs its scan".into()))?;
        Ok(Self {
            scan,
            ..self.clone()
        })
    }
}

/// `ORDER BY distance LIMIT k` → [`AnnSearchNode`].
#[derive(Debug, Default)]
pub struct AnnRewrite;

/// A constant vector literal.
fn literal_vector(e: &Expr) -> Option<Vec<f32>> {
    let Expr::Literal(value, _) = e else {
        return None;
    };
    let array = match value {
        ScalarValue::FixedSizeList(a) => a.values().clone(),
        ScalarValue::List(a) => a.values().clone(),
        _ => return None,
    };
    let array =
        datafusion::arrow::compute::cast(&array, &datafusion::arrow::datatypes::DataType::Float32)
            .ok()?;
    let values = array
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Float32Array>()?;
    if values.null_count() > 0 {
        return None;
    }
    Some(values.values().to_vec())
}

/// The distance call a sort key stands for, resolved through aliases and projections down to
/// the scan: (function, column name, query).
fn distance_call(e: &Expr) -> Option<(DistanceFunction, String, Vec<f32>)> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    let function = DistanceFunction::from_name(f.name())?;
    match f.args.as_slice() {
        [Expr::Column(c), q] | [q, Expr::Column(c)] => {
            Some((function, c.name.clone(), literal_vector(q)?))
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
            .get::<VecfusionOptions>()
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
        let ascending_is_closest = function != DistanceFunction::InnerProduct;
        if key.asc != ascending_is_closest || scan.fetch.is_some() {
            return Ok(Transformed::no(plan));
        }
        let provider = source_as_provider(&scan.source)?;
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            return Ok(Transformed::no(plan));
        };
        let schema = datafusion::catalog::TableProvider::schema(table);
        let dim_matches = schema.index_of(&column).ok().is_some_and(|i| {
            matches!(schema.field(i).data_type(),
                datafusion::arrow::datatypes::DataType::FixedSizeList(item, d)
                    if item.data_type() == &datafusion::arrow::datatypes::DataType::Float32
                        && *d as usize == query.len())
        });
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
