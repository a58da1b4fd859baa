//! `load`: a vecfusion dataset `(id BIGINT, embedding FLOAT[dim])` from a `.npy` file, or
//! one more fragment of it from a slice of the file's rows.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_datafusion_err, exec_err};
use datafusion::error::Result;
use serde_json::json;
use vecfusion::dataset::{Dataset, DatasetLocation};

use crate::npy;
use crate::table::session_with_table;

/// Rows per record batch handed to the dataset writer.
const LOAD_BATCH_ROWS: usize = 65_536;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// float32 .npy, rows × dim.
    #[arg(long)]
    data: PathBuf,
    /// Dataset directory to create (or, with `--append`, to add a fragment to).
    #[arg(long)]
    dataset: PathBuf,
    /// Only the file's rows `start:end`; ids stay the row numbers, so the ground truth of the
    /// whole file applies to a dataset loaded in slices.
    #[arg(long, value_parser = parse_rows)]
    rows: Option<Range<usize>>,
    /// Append the rows to an existing dataset as one new fragment.
    #[arg(long)]
    append: bool,
}

fn parse_rows(text: &str) -> Result<Range<usize>> {
    let (start, end) = text
        .split_once(':')
        .ok_or_else(|| exec_datafusion_err!("--rows {text}: expected start:end"))?;
    let number = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|e| exec_datafusion_err!("--rows {text}: {v}: {e}"))
    };
    let (start, end) = (number(start)?, number(end)?);
    if start >= end {
        return exec_err!("--rows {text}: start must be below end");
    }
    Ok(start..end)
}

/// Writes the rows as a new dataset (or a new version of one with `--append`), one fragment.
pub async fn load(args: LoadArgs) -> Result<()> {
    let (values, total, dim) = npy::read_f32(&args.data)?;
    let rows = args.rows.clone().unwrap_or(0..total);
    if rows.end > total {
        return exec_err!(
            "--rows {}:{}: {} has {total} rows",
            rows.start,
            rows.end,
            args.data.display()
        );
    }
    if !args.append {
        // Created through SQL, so the schema is exactly the one `FLOAT[dim]` gives a table.
        let columns = format!("id BIGINT, embedding FLOAT[{dim}]");
        session_with_table(&args.dataset, Some(&columns)).await?;
    }
    let dataset = Dataset::open(DatasetLocation::local(&args.dataset)?).await?;
    let schema = dataset.schema().clone();
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let batches = rows.clone().step_by(LOAD_BATCH_ROWS).map(|start| {
        let n = LOAD_BATCH_ROWS.min(rows.end - start);
        let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
        let vectors = FixedSizeListArray::try_new(
            item.clone(),
            dim as i32,
            Arc::new(Float32Array::from(
                values[start * dim..(start + n) * dim].to_vec(),
            )),
            None,
        )?;
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(ids), Arc::new(vectors)],
        )?)
    });
    let version = dataset
        .append(futures::stream::iter(batches))
        .await?
        .dataset
        .version();
    println!(
        "{}",
        json!({"rows": rows.len(), "dim": dim, "version": version})
    );
    Ok(())
}
