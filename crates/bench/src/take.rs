//! `take`: random access by row address vs. Parquet with a page index.
//!
//! The same rows (id + a FLOAT[dim] vector) are stored as a vecfusion dataset and as one
//! uncompressed Parquet file with a page index (the most favourable Parquet layout for random
//! access). Each backend then fetches random rows, one at a time and in batches, with its
//! metadata already loaded, so the measurement is the access path itself.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::common::exec_datafusion_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use serde_json::json;
use vecfusion::dataset::{Dataset, DatasetLocation, row_address};

use crate::report::{append_jsonl, median, print_table};
use crate::table::{session_with_table, sql};

#[derive(Debug, Args)]
pub struct TakeArgs {
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Random fetches per batch size.
    #[arg(long, default_value_t = 2000)]
    fetches: usize,
    /// Rows per fetch, comma separated.
    #[arg(long, default_value = "1,100")]
    batch: String,
    #[arg(long, default_value = "bench/results/take.jsonl")]
    out: PathBuf,
    /// Working directory for the data (a temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn err(e: impl std::fmt::Display) -> DataFusionError {
    exec_datafusion_err!("{e}")
}

pub async fn run(args: TakeArgs) -> Result<()> {
    let tmp = tempfile::tempdir().map_err(err)?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let ds_path = dir.join("take_ds");
    let pq_path = dir.join("take.parquet");
    let columns = format!("id BIGINT, embedding FLOAT[{}]", args.dim);
    let ctx = session_with_table(&ds_path, Some(&columns)).await?;
    sql(
        &ctx,
        &format!(
            "INSERT INTO t SELECT * FROM random_vectors({}, {})",
            args.rows, args.dim
        ),
    )
    .await?;
    let dataset = Dataset::open(DatasetLocation::local(&ds_path)?).await?;

    // The same rows as Parquet: uncompressed, page index on, row groups of 128 Ki rows.
    let batches = sql(&ctx, "SELECT * FROM t").await?;
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let file = std::fs::File::create(&pq_path).map_err(err)?;
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props))?;
    for b in &batches {
        writer.write(b)?;
    }
    writer.close()?;
    let pq_file = std::fs::File::open(&pq_path).map_err(err)?;
    let metadata = ArrowReaderMetadata::load(
        &pq_file,
        ArrowReaderOptions::new()
            .with_page_index_policy(datafusion::parquet::file::metadata::PageIndexPolicy::Required),
    )?;

    let frag = dataset.fragments()[0].id;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    let mut table = vec![];
    let mut lines = vec![];
    for batch in args
        .batch
        .split(',')
        .map(|b| b.trim().parse::<usize>().map_err(err))
    {
        let batch = batch?;
        let (mut vf, mut pq) = (vec![], vec![]);
        for _ in 0..args.fetches {
            let mut rows: Vec<usize> = (0..batch).map(|_| rng.random_range(0..args.rows)).collect();
            // vecfusion: addresses in any order.
            let addrs: Vec<u64> = rows.iter().map(|r| row_address(frag, *r as u32)).collect();
            let t = Instant::now();
            let got = dataset.take(&addrs, None).await?;
            vf.push(t.elapsed().as_secs_f64());
            assert_eq!(got.num_rows(), batch);
            // Parquet: a row selection (ascending, de-duplicated).
            rows.sort_unstable();
            rows.dedup();
            let t = Instant::now();
            let mut selectors = vec![];
            let mut pos = 0;
            for r in &rows {
                if *r > pos {
                    selectors.push(RowSelector::skip(r - pos));
                }
                selectors.push(RowSelector::select(1));
                pos = r + 1;
            }
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                pq_file.try_clone().map_err(err)?,
                metadata.clone(),
            )
            .with_row_selection(RowSelection::from(selectors))
            .build()?;
            let mut n = 0;
            for b in reader {
                n += b?.num_rows();
            }
            pq.push(t.elapsed().as_secs_f64());
            assert_eq!(n, rows.len());
        }
        let (vf_us, pq_us) = (median(&vf) * 1e6, median(&pq) * 1e6);
        table.push(vec![
            batch.to_string(),
            format!("{vf_us:.1}"),
            format!("{pq_us:.1}"),
            format!("{:.1}x", pq_us / vf_us),
        ]);
        lines.push(json!({
            "bench": "take", "rows": args.rows, "dim": args.dim, "rows_per_fetch": batch,
            "fetches": args.fetches, "vecfusion_us_median": vf_us, "parquet_us_median": pq_us,
            "parquet_over_vecfusion": pq_us / vf_us,
        }));
    }
    println!(
        "\nRandom access, {} rows x {} dims, median of {} fetches (Parquet: uncompressed, page index)\n",
        args.rows, args.dim, args.fetches
    );
    print_table(
        &[
            "rows per fetch",
            "vecfusion µs",
            "Parquet µs",
            "Parquet / vecfusion",
        ],
        &table,
    );
    append_jsonl(&args.out, &lines).map_err(err)?;
    Ok(())
}
