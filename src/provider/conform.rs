//! Making incoming rows match the table schema, with errors that name the column and row.
//!
//! SQL `INSERT` already casts (DataFusion plans a cast to the table's column types); this is
//! the check for every other way rows arrive (the Rust and Python APIs) and the place where a
//! vector of the wrong dimension gets a precise error instead of a generic cast failure.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{plan_datafusion_err, plan_err};
use datafusion::error::{DataFusionError, Result};

use super::column_values::cast_to_field;

/// Casts the columns of `batch` (by position) to `schema`.
pub fn conform_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return plan_err!(
            "the inserted rows have {} columns, the table has {} ({})",
            batch.num_columns(),
            schema.fields().len(),
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if batch.schema().fields() == schema.fields() {
        check_vector_elements(batch.columns(), schema)?;
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(col, field)| {
            if let DataType::FixedSizeList(_, dim) = field.data_type() {
                check_vector_lengths(col, *dim as usize, field.name())?;
            }
            cast_to_field(col, field)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    check_vector_elements(&columns, schema)?;
    for (col, field) in columns.iter().zip(schema.fields()) {
        if !field.is_nullable() && col.null_count() > 0 {
            return plan_err!(
                "column '{}' is NOT NULL but {} of the inserted rows have no value for it",
                field.name(),
                col.null_count()
            );
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(schema.as_ref().clone()),
        columns,
    )?)
}

/// Fails with the first vector that is not NULL but has a NULL element: a vector is either
/// missing as a whole (NULL, skipped by indexes, distance NULL) or complete. Partial vectors
/// have no distance that means anything, so they are refused where they enter.
fn check_vector_elements(columns: &[ArrayRef], schema: &SchemaRef) -> Result<()> {
    for (col, field) in columns.iter().zip(schema.fields()) {
        let (DataType::FixedSizeList(_, dim), Some(list)) =
            (field.data_type(), col.as_fixed_size_list_opt())
        else {
            continue;
        };
        let Some(element_nulls) = list.values().logical_nulls() else {
            continue;
        };
        let dim = *dim as usize;
        for row in (0..list.len()).filter(|r| list.is_valid(*r)) {
            let start = list.value_offset(row) as usize;
            if let Some(at) = (start..start + dim).find(|i| element_nulls.is_null(*i)) {
                return plan_err!(
                    "column '{}': row {row} of the inserted data has a NULL at element {}; a \
                     vector must be complete (insert NULL for a row without a vector)",
                    field.name(),
                    at - start
                );
            }
        }
    }
    Ok(())
}

/// Fails with the first row whose vector length differs from `dim`.
fn check_vector_lengths(col: &ArrayRef, dim: usize, name: &str) -> Result<()> {
    let bad = |row: usize, len: usize| {
        plan_datafusion_err!(
            "column '{name}' holds vectors of dimension {dim}, but row {row} of the inserted \
             data has {len} values"
        )
    };
    match col.data_type() {
        DataType::FixedSizeList(_, n) if *n as usize != dim => Err(bad(0, *n as usize)),
        DataType::List(_) => {
            let list = col.as_list::<i32>();
            for (row, w) in list.offsets().windows(2).enumerate() {
                let len = (w[1] - w[0]) as usize;
                if len != dim && list.is_valid(row) {
                    return Err(bad(row, len));
                }
            }
            Ok(())
        }
        DataType::LargeList(_) => {
            let list = col.as_list::<i64>();
            for (row, w) in list.offsets().windows(2).enumerate() {
                let len = (w[1] - w[0]) as usize;
                if len != dim && list.is_valid(row) {
                    return Err(bad(row, len));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// DataFusion reports a NULL in a NOT NULL column by position before rows reach the sink:
/// its insert plan checks each batch ("Invalid batch column at '0' has null but schema
/// specifies non-nullable"), and `VALUES` rows are built with the target's nullability
/// ("Column 'column2' is declared as non-nullable", the generated name of the second VALUES
/// column). This names the table column instead; `columns` are the inserted columns in
/// order. Other errors pass through.
pub fn name_not_null_violation(e: DataFusionError, columns: &[String]) -> DataFusionError {
    let text = e.to_string();
    let between = |start: &str, end: &str| {
        let (_, rest) = text.split_once(start)?;
        let (n, rest) = rest.split_once('\'')?;
        rest.starts_with(end).then(|| n.parse::<usize>().ok())?
    };
    if let Some(name) = between(
        "Invalid batch column at '",
        " has null but schema specifies",
    )
    .and_then(|i| columns.get(i))
    {
        return plan_datafusion_err!(
            "column '{name}' is NOT NULL, but the inserted rows have a NULL in it; give every \
             row a value for '{name}'"
        );
    }
    if let Some(name) = between("Column 'column", " is declared as non-nullable")
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| columns.get(i))
    {
        return plan_datafusion_err!(
            "column '{name}' is NOT NULL, but a row of VALUES has NULL for it; give every row a \
             value for '{name}'"
        );
    }
    e
}
