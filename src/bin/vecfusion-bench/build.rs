//! `load` and `build`: a vecfusion dataset from a `.npy` file, and one timed
//! `CREATE VECTOR INDEX` on it, in its own process so that its peak RSS is the build's.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::Result;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use vecfusion::dataset::{Dataset, DatasetLocation, Operation};
use vecfusion::{VecfusionContext, new_session_context};

use crate::npy;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// float32 .npy, rows × dim.
    #[arg(long)]
    data: PathBuf,
    /// Dataset directory to create.
    #[arg(long)]
    dataset: PathBuf,
}

/// Writes the rows as a dataset `(id BIGINT, embedding FLOAT[dim])`, one fragment.
pub async fn load(args: LoadArgs) -> Result<()> {
    let (values, rows, dim) = npy::read_f32(&args.data)?;
    let ctx = new_session_context();
    ctx.vf_sql(&format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[{dim}]) STORED AS VECFUSION LOCATION '{}'",
        args.dataset.display()
    ))
    .await?
    .collect()
    .await?;
    let dataset = Dataset::open(DatasetLocation::local(&args.dataset)?).await?;
    let mut writer = dataset.fragment_writer()?;
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    for start in (0..rows).step_by(65_536) {
        let n = 65_536.min(rows - start);
        let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
        let vecs = FixedSizeListArray::try_new(
            item.clone(),
            dim as i32,
            Arc::new(Float32Array::from(
                values[start * dim..(start + n) * dim].to_vec(),
            )),
            None,
        )?;
        let batch = RecordBatch::try_new(
            dataset.schema().clone(),
            vec![Arc::new(ids), Arc::new(vecs)],
        )?;
        writer.write(batch).await?;
    }
    let fragment = writer.finish().await?.into_iter().collect();
    dataset
        .commit(&Operation::Append {
            fragments: fragment,
        })
        .await?;
    println!("{}", json!({"rows": rows, "dim": dim}));
    Ok(())
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(long)]
    dataset: PathBuf,
    /// The WITH (...) options and USING kind, e.g. "USING IVF_PQ WITH (num_partitions = 256)".
    #[arg(long)]
    index: String,
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `CREATE VECTOR INDEX bench_idx ON t (embedding) <index>` and prints its result row
/// plus wall seconds and peak RSS as JSON.
pub async fn build(args: BuildArgs) -> Result<()> {
    let ctx = new_session_context();
    ctx.vf_sql(&format!(
        "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}'",
        args.dataset.display()
    ))
    .await?
    .collect()
    .await?;
    let start = Instant::now();
    let batches = ctx
        .vf_sql(&format!(
            "CREATE VECTOR INDEX bench_idx ON t (embedding) {}",
            args.index
        ))
        .await?
        .collect()
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    let mut row = Map::new();
    let options = FormatOptions::default();
    for b in &batches {
        for (f, c) in b.schema().fields().iter().zip(b.columns()) {
            let text = ArrayFormatter::try_new(c.as_ref(), &options)?
                .value(0)
                .to_string();
            let value = text
                .parse::<f64>()
                .map(Value::from)
                .unwrap_or(Value::String(text));
            row.insert(f.name().clone(), value);
        }
    }
    row.insert("wall_seconds".into(), seconds.into());
    row.insert("peak_rss_mb".into(), peak_rss_mb().into());
    // Leave the dataset as it was for the next repetition.
    ctx.vf_sql("DROP VECTOR INDEX bench_idx ON t")
        .await?
        .collect()
        .await?;
    println!("{}", Value::Object(row));
    Ok(())
}
