//! Which columns of a dataset hold vectors: `FLOAT[d]`, i.e. `FixedSizeList(Float32, d)`.
//! Index builds, every search surface and the Python bindings resolve a vector column here,
//! so they accept the same columns and explain a wrong one the same way.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::plan_err;
use datafusion::error::Result;

/// Largest vector dimension a dataset column may have (and `random_vectors` makes).
pub const MAX_VECTOR_DIM: usize = 65_536;

/// Fails for a fixed-size list column whose size cannot be a vector (`FLOAT[0]`, or beyond
/// [`MAX_VECTOR_DIM`]): checked when a dataset is created, before anything is written.
pub fn check_vector_sizes(schema: &Schema) -> Result<()> {
    for field in schema.fields() {
        if let DataType::FixedSizeList(_, d) = field.data_type()
            && (*d < 1 || *d as usize > MAX_VECTOR_DIM)
        {
            return plan_err!(
                "column '{}' is a list of {d} elements; vector columns have 1 to \
                 {MAX_VECTOR_DIM} (e.g. FLOAT[128])",
                field.name()
            );
        }
    }
    Ok(())
}

/// The dimension of `column` when it is a vector column.
pub fn vector_dim(data_type: &DataType) -> Option<usize> {
    match data_type {
        DataType::FixedSizeList(item, d) if item.data_type() == &DataType::Float32 && *d > 0 => {
            Some(*d as usize)
        }
        _ => None,
    }
}

/// The vector columns of `schema`, in schema order.
pub fn vector_columns(schema: &Schema) -> Vec<usize> {
    (0..schema.fields().len())
        .filter(|i| vector_dim(schema.field(*i).data_type()).is_some())
        .collect()
}

/// `(position, dimension)` of the vector column `column`, or an error that says what the
/// column is (or which columns there are).
pub fn vector_column(schema: &Schema, column: &str) -> Result<(usize, usize)> {
    let Ok(i) = schema.index_of(column) else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return plan_err!(
            "there is no column '{column}'; the columns are {}",
            names.join(", ")
        );
    };
    match vector_dim(schema.field(i).data_type()) {
        Some(d) => Ok((i, d)),
        None => plan_err!(
            "column '{column}' is {}, not a vector column; vector indexes and searches need \
             a fixed-size float vector (FLOAT[d], i.e. FixedSizeList(Float32, d))",
            schema.field(i).data_type()
        ),
    }
}

/// The vector column searches use when none is named: `column` when given, else the
/// schema's only vector column.
pub fn resolve_vector_column(schema: &Schema, column: Option<&str>) -> Result<(usize, usize)> {
    if let Some(c) = column {
        return vector_column(schema, c);
    }
    match vector_columns(schema).as_slice() {
        [one] => vector_column(schema, schema.field(*one).name()),
        [] => plan_err!("the table has no vector column (FLOAT[d])"),
        several => {
            let names: Vec<&str> = several
                .iter()
                .map(|i| schema.field(*i).name().as_str())
                .collect();
            plan_err!(
                "the table has several vector columns ({}); name the one to search",
                names.join(", ")
            )
        }
    }
}
