//! Result printing for the shell: `table` (aligned, for people), `csv` (a header line and the
//! rows, nothing else, for scripts) and `json` (one array of row objects per result).

use std::io::Write;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use serde_json::{Map, Value};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Writes one statement's result. Results without columns (DDL) print nothing.
pub fn write_result(
    out: &mut dyn Write,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    if schema.fields().is_empty() {
        return Ok(());
    }
    match format {
        OutputFormat::Table => writeln!(
            out,
            "{}",
            pretty_format_batches_with_schema(schema.clone(), batches)?
        )?,
        OutputFormat::Csv => write_csv(out, schema, batches)?,
        OutputFormat::Json => write_json(out, batches)?,
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(out: &mut dyn Write, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let header: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| csv_field(f.name()))
        .collect();
    writeln!(out, "{}", header.join(","))?;
    let options = FormatOptions::default().with_null("");
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| csv_field(&f.value(row).to_string()))
                .collect();
            writeln!(out, "{}", cells.join(","))?;
        }
    }
    Ok(())
}

fn write_json(out: &mut dyn Write, batches: &[RecordBatch]) -> Result<()> {
    let mut rows = vec![];
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut obj = Map::new();
            for (field, col) in schema.fields().iter().zip(batch.columns()) {
                obj.insert(field.name().clone(), json_value(col.as_ref(), row)?);
            }
            rows.push(Value::Object(obj));
        }
    }
    writeln!(
        out,
        "{}",
        serde_json::to_string(&Value::Array(rows)).map_err(std::io::Error::other)?
    )?;
    Ok(())
}

fn json_value(array: &dyn Array, row: usize) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let scalar = ScalarValue::try_from_array(array, row)?;
    Ok(match scalar {
        ScalarValue::Boolean(Some(b)) => Value::Bool(b),
        ScalarValue::Int8(Some(v)) => v.into(),
        ScalarValue::Int16(Some(v)) => v.into(),
        ScalarValue::Int32(Some(v)) => v.into(),
        ScalarValue::Int64(Some(v)) => v.into(),
        ScalarValue::UInt8(Some(v)) => v.into(),
        ScalarValue::UInt16(Some(v)) => v.into(),
        ScalarValue::UInt32(Some(v)) => v.into(),
        ScalarValue::UInt64(Some(v)) => v.into(),
        ScalarValue::Float32(Some(v)) => float(v as f64),
        ScalarValue::Float64(Some(v)) => float(v),
        ScalarValue::FixedSizeList(a) => list_value(a.values().as_ref())?,
        ScalarValue::List(a) => list_value(a.values().as_ref())?,
        ScalarValue::LargeList(a) => list_value(a.values().as_ref())?,
        other => Value::String(other.to_string()),
    })
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}

fn list_value(values: &dyn Array) -> Result<Value> {
    (0..values.len())
        .map(|i| json_value(values, i))
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("label", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a,b"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn csv_is_header_and_rows_only() {
        let b = batch();
        let mut out = vec![];
        write_result(&mut out, OutputFormat::Csv, &b.schema(), &[b]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "id,label\n1,\"a,b\"\n2,\n");
    }

    #[test]
    fn json_is_an_array_of_objects() {
        let b = batch();
        let mut out = vec![];
        write_result(&mut out, OutputFormat::Json, &b.schema(), &[b]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["id"], 1);
        assert_eq!(v[0]["label"], "a,b");
        assert!(v[1]["label"].is_null());
    }
}
