//! Exact distance functions over vectors: `l2_distance`, `cosine_distance`, `inner_product`,
//! `negative_inner_product`.
//!
//! Arguments are fixed-size float lists (a `FLOAT[d]` column) or an array literal such as
//! `[0.1, 0.2, ...]`; `coerce_types` asks DataFusion to cast both sides to
//! `FixedSizeList(Float32, d)`, which constant-folds a literal query into one vector at plan
//! time. Evaluation walks the flat `f32` buffers of the arrays with the kernels of
//! `vecfusion-kernels`: no per-row allocation. Two variable-length lists are accepted too
//! (compared row by row, with a dimension check).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Array, Float32Builder};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Float32Type};
use datafusion::common::{exec_err, internal_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use vecfusion_kernels::distance as k;

use crate::metric::{DistanceFunction, check_finite_query};

/// The SQL function computing `function`.
pub fn distance_udf(function: DistanceFunction) -> ScalarUDF {
    ScalarUDF::from(DistanceUdf {
        function,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DistanceUdf {
    function: DistanceFunction,
    signature: Signature,
}

fn element_type(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

impl ScalarUDFImpl for DistanceUdf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float32)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.function.name();
        if arg_types.len() != 2 {
            return plan_err!(
                "{name} takes two vectors, e.g. {name}(embedding, [0.1, 0.2, ...]); got {} \
                 arguments",
                arg_types.len()
            );
        }
        for t in arg_types {
            match element_type(t) {
                Some(e) if e.is_numeric() => {}
                Some(DataType::Null) => {}
                _ if t.is_null() => {}
                _ => {
                    return plan_err!(
                        "{name} expects vectors of numbers (a FLOAT[d] column or an array \
                         literal like [0.1, 0.2]), got {t}"
                    );
                }
            }
        }
        let item = Arc::new(Field::new_list_field(DataType::Float32, true));
        let dims: Vec<i32> = arg_types
            .iter()
            .filter_map(|t| match t {
                DataType::FixedSizeList(_, d) => Some(*d),
                _ => None,
            })
            .collect();
        if let [a, b] = dims.as_slice()
            && a != b
        {
            return plan_err!("{name}: the vectors have different dimensions ({a} and {b})");
        }
        // Each argument keeps its shape: a fixed-size list stays one (as FLOAT[d]), anything
        // else becomes a list of floats. Casting a literal of the wrong length to the column's
        // FLOAT[d] would fail inside constant folding with an Arrow cast error; compared as
        // lists, the dimension check below names both dimensions.
        Ok(arg_types
            .iter()
            .map(|t| match t {
                DataType::FixedSizeList(_, d) => DataType::FixedSizeList(item.clone(), *d),
                _ => DataType::List(item.clone()),
            })
            .collect())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.function.name());
        };
        let rows = args.number_rows;
        let out = match (a, b) {
            (ColumnarValue::Array(a), ColumnarValue::Scalar(s))
            | (ColumnarValue::Scalar(s), ColumnarValue::Array(a)) => {
                let q = s.to_array_of_size(1)?;
                distances_to_one(self.function, a, &q)?
            }
            _ => {
                let a = a.to_array(rows)?;
                let b = b.to_array(rows)?;
                distances_pairwise(self.function, &a, &b)?
            }
        };
        let all_scalar = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        if all_scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(Arc::new(out)))
        }
    }
}

/// A vector array as (flat values, per-row start offsets, per-row lengths).
struct Vectors<'a> {
    values: &'a [f32],
    /// Nulls among the elements: a row with any is treated as a NULL vector (inserts refuse
    /// such rows, but files written elsewhere may hold them).
    element_nulls: Option<NullBuffer>,
    array: &'a ArrayRef,
}

impl<'a> Vectors<'a> {
    fn new(array: &'a ArrayRef, name: &str) -> Result<Self> {
        let values = match array.data_type() {
            DataType::FixedSizeList(..) => array.as_fixed_size_list().values(),
            DataType::List(_) => array.as_list::<i32>().values(),
            DataType::Null => {
                return Ok(Self {
                    values: &[],
                    element_nulls: None,
                    array,
                });
            }
            other => return exec_err!("{name}: unexpected vector type {other}"),
        };
        let element_nulls = values.logical_nulls().filter(|n| n.null_count() > 0);
        let values = values
            .as_primitive_opt::<Float32Type>()
            .ok_or_else(|| internal_datafusion_err!("{name}: vectors not coerced to f32"))?;
        Ok(Self {
            values: values.values(),
            element_nulls,
            array,
        })
    }

    /// The element range of `row`, when the row is not NULL.
    fn range(&self, row: usize) -> Option<std::ops::Range<usize>> {
        if self.array.is_null(row) {
            return None;
        }
        match self.array.data_type() {
            DataType::FixedSizeList(_, d) => {
                let start = self.array.as_fixed_size_list().value_offset(row) as usize;
                Some(start..start + *d as usize)
            }
            DataType::List(_) => {
                let off = self.array.as_list::<i32>().value_offsets();
                Some(off[row] as usize..off[row + 1] as usize)
            }
            _ => None,
        }
    }

    fn has_null_elements(&self, range: &std::ops::Range<usize>) -> bool {
        self.element_nulls
            .as_ref()
            .is_some_and(|n| range.clone().any(|i| n.is_null(i)))
    }

    /// Row `row`'s vector; `None` for a NULL vector or one with NULL elements.
    fn get(&self, row: usize) -> Option<&'a [f32]> {
        let range = self.range(row)?;
        if self.has_null_elements(&range) {
            return None;
        }
        Some(&self.values[range])
    }
}

fn distances_to_one(
    f: DistanceFunction,
    rows: &ArrayRef,
    query: &ArrayRef,
) -> Result<Float32Array> {
    let name = f.name();
    let rows_v = Vectors::new(rows, name)?;
    let q = Vectors::new(query, name)?;
    if q.range(0).is_some_and(|r| q.has_null_elements(&r)) {
        return exec_err!(
            "{name}: the query vector has NULL elements; every element must be a number"
        );
    }
    let Some(qv) = q.get(0) else {
        return Ok(Float32Array::new_null(rows.len()));
    };
    check_finite_query(qv, qv.len())?;
    let q_norm = k::norm_squared(qv).sqrt();
    let mut out = Float32Builder::with_capacity(rows.len());
    for i in 0..rows.len() {
        match rows_v.get(i) {
            None => out.append_null(),
            Some(v) if v.len() != qv.len() => {
                return exec_err!(
                    "{name}: the query vector has {} values, but row {i} holds a vector of \
                     dimension {}; pass a query of the column's dimension",
                    qv.len(),
                    v.len()
                );
            }
            Some(v) => out.append_value(match f {
                DistanceFunction::Cosine => k::cosine_distance_with_norm(v, qv, q_norm),
                _ => f.eval(v, qv),
            }),
        }
    }
    Ok(out.finish())
}

fn distances_pairwise(f: DistanceFunction, a: &ArrayRef, b: &ArrayRef) -> Result<Float32Array> {
    let name = f.name();
    let av = Vectors::new(a, name)?;
    let bv = Vectors::new(b, name)?;
    let mut out = Float32Builder::with_capacity(a.len());
    for i in 0..a.len() {
        match (av.get(i), bv.get(i)) {
            (Some(x), Some(y)) if x.len() != y.len() => {
                return exec_err!(
                    "{name}: row {i} compares vectors of dimensions {} and {}",
                    x.len(),
                    y.len()
                );
            }
            (Some(x), Some(y)) => out.append_value(f.eval(x, y)),
            _ => out.append_null(),
        }
    }
    Ok(out.finish())
}
