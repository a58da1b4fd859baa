//! Reading a query vector from a constant expression: an array literal (`[0.1, 0.2]`, which
//! `sql::array_literal` plans as one constant) or any `FixedSizeList`/`List` scalar of numbers.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;

/// The vector `e` holds: `Ok(None)` when `e` is not a constant list, an error when it is one
/// that cannot be a query vector (NULL elements, or not numbers). Non-finite elements are
/// refused where every search checks its request (`SearchRequest::check`) and by the exact
/// distance functions.
pub fn constant_vector(e: &Expr) -> Result<Option<Vec<f32>>> {
    let values = match e {
        Expr::Literal(ScalarValue::FixedSizeList(a), _) => a.values().clone(),
        Expr::Literal(ScalarValue::List(a), _) => a.values().clone(),
        _ => return Ok(None),
    };
    if !values.data_type().is_numeric() && values.data_type() != &DataType::Null {
        return plan_err!(
            "a query vector must hold numbers, got a list of {}",
            values.data_type()
        );
    }
    if values.null_count() > 0 {
        return plan_err!("the query vector has NULL elements; every element must be a number");
    }
    let floats = cast(&values, &DataType::Float32)?;
    Ok(Some(floats.as_primitive::<Float32Type>().values().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::lit;

    fn list(values: Vec<Option<f64>>) -> Expr {
        lit(ScalarValue::List(ScalarValue::new_list_nullable(
            &values
                .into_iter()
                .map(ScalarValue::Float64)
                .collect::<Vec<_>>(),
            &DataType::Float64,
        )))
    }

    #[test]
    fn reads_lists_of_numbers_and_rejects_nulls() {
        let v = constant_vector(&list(vec![Some(0.5), Some(-2.0)])).unwrap();
        assert_eq!(v, Some(vec![0.5, -2.0]));
        assert_eq!(constant_vector(&lit(1.0)).unwrap(), None);
        let err = constant_vector(&list(vec![Some(1.0), None]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("NULL elements"), "{err}");
    }
}
