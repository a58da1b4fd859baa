//! Numeric array literals (`[0.12, -0.5, ...]`, the way a query vector is written in SQL)
//! planned as one constant.
//!
//! DataFusion plans an array literal as `make_array(e1, e2, ...)`: one expression node per
//! element, which type coercion, every optimizer pass and the constant folder then walk
//! before it becomes a single list value. For a 128- or 768-dimensional query vector that
//! was most of the planning time of an ANN query (milliseconds, more than the index search).
//! This planner runs ahead of DataFusion's and, when every element is a number literal,
//! produces that list constant at once, with the type `make_array` would have given it:
//! `List(Int64)` when all elements are integers, `List(Float64)` otherwise. Anything else
//! (columns, NULLs, nested arrays, decimals) is left to DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};

#[derive(Debug, Default)]
pub struct NumericArrayLiteralPlanner;

impl ExprPlanner for NumericArrayLiteralPlanner {
    fn plan_array_literal(
        &self,
        exprs: Vec<Expr>,
        _schema: &DFSchema,
    ) -> Result<PlannerResult<Vec<Expr>>> {
        Ok(match fold(&exprs) {
            Some(list) => PlannerResult::Planned(Expr::Literal(list, None)),
            None => PlannerResult::Original(exprs),
        })
    }
}

/// The value of a number literal.
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn as_int(&self) -> Option<i64> {
        match self {
            Number::Int(v) => Some(*v),
            Number::Float(_) => None,
        }
    }

    fn as_f64(&self) -> f64 {
        match self {
            Number::Int(v) => *v as f64,
            Number::Float(v) => *v,
        }
    }
}

/// A number literal's value (also under a unary minus); `None` for anything else.
fn number(e: &Expr) -> Option<Number> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), None) => Some(Number::Int(*v)),
        Expr::Literal(ScalarValue::Float64(Some(v)), None) => Some(Number::Float(*v)),
        Expr::Negative(inner) => match number(inner)? {
            Number::Int(v) => v.checked_neg().map(Number::Int),
            Number::Float(v) => Some(Number::Float(-v)),
        },
        _ => None,
    }
}

fn fold(exprs: &[Expr]) -> Option<ScalarValue> {
    if exprs.is_empty() {
        return None;
    }
    let numbers = exprs.iter().map(number).collect::<Option<Vec<_>>>()?;
    let values: ArrayRef = match numbers
        .iter()
        .map(Number::as_int)
        .collect::<Option<Vec<i64>>>()
    {
        Some(ints) => Arc::new(Int64Array::from(ints)),
        None => Arc::new(Float64Array::from_iter_values(
            numbers.iter().map(Number::as_f64),
        )),
    };
    Some(
        SingleRowListArrayBuilder::new(values)
            .with_nullable(true)
            .build_list_scalar(),
    )
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    use crate::new_session_context;

    /// The type and printed value of `SELECT <literal>` in a session.
    async fn eval(ctx: &SessionContext, literal: &str) -> (DataType, String) {
        let batches = ctx
            .sql(&format!("SELECT {literal} AS v"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let data_type = batches[0].schema().field(0).data_type().clone();
        (
            data_type,
            pretty_format_batches(&batches).unwrap().to_string(),
        )
    }

    /// The folded constant has exactly the value and type DataFusion's `make_array` gives,
    /// and what it does not fold still plans as before.
    #[tokio::test]
    async fn folds_to_what_make_array_gives() {
        let ours = new_session_context();
        let plain = SessionContext::new();
        for literal in [
            "[1, 2, 3]",
            "[1.5, -2, 3e-3]",
            "[-0.25, 0.5]",
            "[9223372036854775807, -9223372036854775807]",
            "[1, NULL, 2.5]",
            "[[1, 2], [3, 4]]",
            "[1, 2 + 3]",
        ] {
            assert_eq!(
                eval(&ours, literal).await,
                eval(&plain, literal).await,
                "{literal}"
            );
        }
    }

    /// A query vector written as numbers becomes one literal in the logical plan.
    #[tokio::test]
    async fn a_number_array_is_one_literal() {
        let ctx = new_session_context();
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let df = ctx.sql(sql).await.unwrap();
                df.into_unoptimized_plan().display_indent().to_string()
            }
        };
        let folded = plan("SELECT [0.5, -1, 2] AS v").await;
        assert!(!folded.contains("make_array"), "{folded}");
        let with_column = plan("SELECT [0.5, x] AS v FROM (SELECT 1.0 AS x)").await;
        assert!(with_column.contains("make_array"), "{with_column}");
    }
}
