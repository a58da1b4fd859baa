//! What the stages of a build hand each other, as Arrow record batches (on a cluster they
//! travel through Ballista's shuffle files):
//!
//! - a sample task yields its sampled rows (`_rowaddr`, `vector`) and, last, one *tally* row
//!   (no address or vector) with the rows it saw that had a usable vector, the rows it
//!   skipped and its seconds — the state of a partial aggregate that the training task
//!   merges;
//! - the training task yields one row: the trained model's summary ([`Trained`], JSON);
//! - an encode task yields one row: its segment's summary with the model's ([`Encoded`],
//!   JSON).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, FixedSizeListArray, Float32Array, Float64Array, RecordBatch, StringArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, SchemaRef, UInt64Type,
};
use datafusion::common::{exec_datafusion_err, exec_err};
use datafusion::error::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::index::blocks::{BuildPlan, ModelSummary, Sample, Segment};
use crate::provider::ROW_ADDRESS_COLUMN;

/// Sampled rows per record batch a sample task yields.
const SAMPLE_BATCH_ROWS: usize = 8192;

/// The rows of a sample task (see the module documentation).
pub fn sample_schema(dim: usize) -> Result<SchemaRef> {
    let dim = i32::try_from(dim)
        .map_err(|_| exec_datafusion_err!("a vector of {dim} values is too long to sample"))?;
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    Ok(Arc::new(Schema::new(vec![
        Field::new(ROW_ADDRESS_COLUMN, DataType::UInt64, true),
        Field::new("vector", DataType::FixedSizeList(item, dim), true),
        Field::new("rows_usable", DataType::UInt64, false),
        Field::new("rows_skipped", DataType::UInt64, false),
        Field::new("seconds", DataType::Float64, false),
    ])))
}

/// `sample` as the batches a sample task yields, its tally row last.
pub fn sample_batches(sample: &Sample, dim: usize, seconds: f64) -> Result<Vec<RecordBatch>> {
    let schema = sample_schema(dim)?;
    let (addresses, vectors) = sample.rows();
    let addresses: Vec<u64> = addresses.collect();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let mut out = vec![];
    for (i, chunk) in addresses.chunks(SAMPLE_BATCH_ROWS).enumerate() {
        let start = i * SAMPLE_BATCH_ROWS * dim;
        let values = Float32Array::from(vectors[start..start + chunk.len() * dim].to_vec());
        let zeros = Arc::new(UInt64Array::from(vec![0u64; chunk.len()]));
        out.push(RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt64Array::from(chunk.to_vec())),
                Arc::new(FixedSizeListArray::try_new(
                    item.clone(),
                    dim as i32,
                    Arc::new(values),
                    None,
                )?),
                zeros.clone(),
                zeros,
                Arc::new(Float64Array::from(vec![0.0; chunk.len()])),
            ],
        )?);
    }
    out.push(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from(vec![None::<u64>])),
            Arc::new(FixedSizeListArray::try_new(
                item,
                dim as i32,
                Arc::new(Float32Array::from(vec![0.0; dim])),
                Some(vec![false].into()),
            )?),
            Arc::new(UInt64Array::from(vec![sample.usable_rows()])),
            Arc::new(UInt64Array::from(vec![sample.skipped_rows()])),
            Arc::new(Float64Array::from(vec![seconds])),
        ],
    )?);
    Ok(out)
}

/// Adds the rows of one batch a sample task yielded to `sample`; returns the largest
/// seconds among its tally rows (0 without one).
pub fn add_sample_batch(sample: &mut Sample, plan: &BuildPlan, batch: &RecordBatch) -> Result<f64> {
    if batch.num_columns() != 5 {
        return exec_err!(
            "a sample task's rows have {} columns, not 5: the processes of a cluster must run \
             the same vecfusion version",
            batch.num_columns()
        );
    }
    let addresses = batch.column(0).as_primitive::<UInt64Type>();
    let list = batch.column(1).as_fixed_size_list();
    let dim = plan.dim;
    if list.value_length() as usize != dim {
        return exec_err!(
            "a sample task sent vectors of {} values for a column of {dim}",
            list.value_length()
        );
    }
    let values = list.values().as_primitive::<Float32Type>().values();
    let usable = batch.column(2).as_primitive::<UInt64Type>();
    let skipped = batch.column(3).as_primitive::<UInt64Type>();
    let seconds = batch.column(4).as_primitive::<Float64Type>();
    let mut slowest = 0f64;
    for row in 0..batch.num_rows() {
        if addresses.is_null(row) {
            sample.add_tally(usable.value(row), skipped.value(row));
            slowest = slowest.max(seconds.value(row));
        } else {
            let start = list.value_offset(row) as usize;
            sample.add_row(plan, addresses.value(row), &values[start..start + dim]);
        }
    }
    Ok(slowest)
}

/// The training task's row: the model and what training learned about the rows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Trained {
    pub model: ModelSummary,
    pub rows_usable: u64,
    pub rows_skipped: u64,
    /// The device training ran on.
    pub accelerator: String,
    /// The slowest sample task's seconds.
    pub seconds_sample: f64,
    pub device_memory_budget_bytes: Option<u64>,
    pub device_bytes_uploaded: Option<u64>,
}

/// An encode task's row: its segment (written, not committed) and the model it used.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Encoded {
    pub trained: Trained,
    pub segment: Segment,
    /// The device the encode task ran on.
    pub accelerator: String,
}

/// One column of JSON documents, named `name`.
pub fn json_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
}

/// `value` as the one row of a [`json_schema`] batch.
pub fn json_batch<T: Serialize>(name: &str, value: &T) -> Result<RecordBatch> {
    let text = serde_json::to_string(value)
        .map_err(|e| exec_datafusion_err!("cannot write the {name} row: {e}"))?;
    Ok(RecordBatch::try_new(
        json_schema(name),
        vec![Arc::new(StringArray::from(vec![text]))],
    )?)
}

/// Every row of [`json_schema`] batches, read back.
pub fn from_json_batches<T: DeserializeOwned>(
    name: &str,
    batches: &[RecordBatch],
) -> Result<Vec<T>> {
    let mut out = vec![];
    for batch in batches {
        let Some(column) = batch.column(0).as_string_opt::<i32>() else {
            return exec_err!("the {name} rows are not text");
        };
        for text in column.iter().flatten() {
            out.push(serde_json::from_str(text).map_err(|e| {
                exec_datafusion_err!(
                    "cannot read a {name} row ({e}): the processes of a cluster must run the \
                     same vecfusion version"
                )
            })?);
        }
    }
    Ok(out)
}
