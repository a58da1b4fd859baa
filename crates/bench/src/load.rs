//! `load`: a vecfusion dataset `(id BIGINT, embedding FLOAT[dim])` from a `.npy` file.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field};
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
    /// Dataset directory to create.
    #[arg(long)]
    dataset: PathBuf,
}

/// Writes the rows as a new dataset, one fragment.
pub async fn load(args: LoadArgs) -> Result<()> {
    let (values, rows, dim) = npy::read_f32(&args.data)?;
    // Created through SQL, so the schema is exactly the one `FLOAT[dim]` gives a table.
    let columns = format!("id BIGINT, embedding FLOAT[{dim}]");
    session_with_table(&args.dataset, Some(&columns)).await?;
    let dataset = Dataset::open(DatasetLocation::local(&args.dataset)?).await?;
    let schema = dataset.schema().clone();
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let batches = (0..rows).step_by(LOAD_BATCH_ROWS).map(|start| {
        let n = LOAD_BATCH_ROWS.min(rows - start);
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
    dataset.append(futures::stream::iter(batches)).await?;
    println!("{}", json!({"rows": rows, "dim": dim}));
    Ok(())
}
