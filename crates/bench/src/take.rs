//! `take`: random access by row address vs. Parquet laid out for random access.
//!
//! The same rows (id + a FLOAT[dim] vector) are stored as a vecfusion dataset and as one
//! Parquet file written the way a user tuning Parquet for random access would: no
//! compression, no dictionary, small data pages (`PARQUET_PAGE_BYTES`), page statistics and
//! the offset index. A Parquet fetch reads only the row groups holding the wanted rows and,
//! through the offset index, only their pages. Each backend fetches the same random rows,
//! one at a time and in batches, with its metadata already loaded, so the measurement is the
//! access path itself. Every run prints one JSON line per (engine, rows per fetch) with the
//! median over its fetches; `--fetches-out` writes the rows fetched so another engine (the
//! harness's Lance column, `bench/take.py`) fetches exactly the same ones, from the Parquet
//! file left in `--dir`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::{exec_datafusion_err, exec_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use rand::{Rng, SeedableRng};
use serde_json::json;
use vecfusion::dataset::{Dataset, DatasetLocation, row_address};

use crate::report::median;
use crate::table::{session_with_table, sql};

/// Parquet data page size: a few rows of a 128-d vector per page, so a fetch of one row
/// decodes a few KiB, not a whole row group.
const PARQUET_PAGE_BYTES: usize = 8 * 1024;
/// Rows per Parquet row group.
const PARQUET_ROW_GROUP_ROWS: usize = 64 * 1024;

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
    /// Measurements of the same rows: each prints its JSON lines.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where to write the rows fetched (JSON: rows per fetch -> list of row lists).
    #[arg(long)]
    fetches_out: Option<PathBuf>,
    /// Working directory for the data, kept afterwards (a temporary directory by default).
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
    // A `--dir` holding both already (an earlier run) is reused: runs can be interleaved
    // with other engines without writing the data again.
    if !(ds_path.exists() && pq_path.exists()) {
        write_data(&args, &ds_path, &pq_path).await?;
    }
    let dataset = Dataset::open(DatasetLocation::local(&ds_path)?).await?;
    if dataset.count_rows() != args.rows as u64 || dataset.fragments().len() != 1 {
        return exec_err!(
            "{} does not hold {} rows in one fragment; give an empty --dir",
            ds_path.display(),
            args.rows
        );
    }
    // The id at every row position, to check that each fetch returned the rows asked for.
    let ids = ids_by_position(&ds_path).await?;
    let pq_file = std::fs::File::open(&pq_path).map_err(err)?;
    let metadata = ArrowReaderMetadata::load(
        &pq_file,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
    )?;
    // First row of each row group.
    let mut group_starts = vec![0usize];
    for g in metadata.metadata().row_groups() {
        let rows = usize::try_from(g.num_rows()).map_err(err)?;
        group_starts.push(group_starts.last().copied().unwrap_or(0) + rows);
    }

    // The rows every engine fetches: `fetches` random lists per batch size.
    let frag = dataset.fragments()[0].id;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    let mut fetches: BTreeMap<usize, Vec<Vec<usize>>> = BTreeMap::new();
    for batch in args.batch.split(',') {
        let batch = batch.trim().parse::<usize>().map_err(err)?;
        let lists = (0..args.fetches)
            .map(|_| (0..batch).map(|_| rng.random_range(0..args.rows)).collect())
            .collect();
        fetches.insert(batch, lists);
    }
    if let Some(out) = &args.fetches_out {
        std::fs::write(out, serde_json::to_vec(&fetches).map_err(err)?).map_err(err)?;
    }
    for run in 0..args.runs {
        for (batch, lists) in &fetches {
            let (mut vf, mut pq) = (vec![], vec![]);
            for rows in lists {
                // vecfusion: addresses in any order.
                let addrs: Vec<u64> = rows.iter().map(|r| row_address(frag, *r as u32)).collect();
                let t = Instant::now();
                let got = dataset.take(&addrs, None).await?;
                vf.push(t.elapsed().as_secs_f64());
                check_ids(&got, rows, &ids)?;
                // Parquet: the row groups holding the rows, a row selection within them.
                let t = Instant::now();
                let mut rows = rows.clone();
                rows.sort_unstable();
                rows.dedup();
                let (groups, selection) = parquet_selection(&rows, &group_starts);
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    pq_file.try_clone().map_err(err)?,
                    metadata.clone(),
                )
                .with_row_groups(groups)
                .with_row_selection(selection)
                .build()?;
                let got = reader.collect::<std::result::Result<Vec<_>, _>>()?;
                pq.push(t.elapsed().as_secs_f64());
                check_ids(&concat_batches(&got[0].schema(), &got)?, &rows, &ids)?;
            }
            for (engine, times) in [("vecfusion", &vf), ("parquet", &pq)] {
                let line = json!({
                    "engine": engine, "run": run, "rows": args.rows, "dim": args.dim,
                    "rows_per_fetch": batch, "fetches": args.fetches,
                    "median_us": median(times) * 1e6,
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// Writes `rows` random vectors (ids 0, 1, ...) as a vecfusion dataset in one fragment and,
/// in the same order, as Parquet laid out for random access (see the module documentation).
async fn write_data(args: &TakeArgs, ds_path: &Path, pq_path: &Path) -> Result<()> {
    let columns = format!("id BIGINT, embedding FLOAT[{}]", args.dim);
    let ctx = session_with_table(ds_path, Some(&columns)).await?;
    sql(
        &ctx,
        &format!(
            "INSERT INTO t SELECT * FROM random_vectors({}, {})",
            args.rows, args.dim
        ),
    )
    .await?;
    // One DataFusion partition: the rows in fragment order, so that Parquet row r is the
    // fragment's row r.
    sql(&ctx, "SET datafusion.execution.target_partitions = 1").await?;
    let batches = sql(&ctx, "SELECT * FROM t").await?;
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_data_page_size_limit(PARQUET_PAGE_BYTES)
        // The page size is checked after every write batch (in leaf values: 128 per row).
        .set_write_batch_size(1024)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
        .build();
    let file = std::fs::File::create(pq_path).map_err(err)?;
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props))?;
    for b in &batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(())
}

/// The ids of the dataset's rows, by position in its one fragment.
async fn ids_by_position(ds_path: &Path) -> Result<Vec<i64>> {
    let ctx = session_with_table(ds_path, None).await?;
    sql(&ctx, "SET datafusion.execution.target_partitions = 1").await?;
    let batches = sql(&ctx, "SELECT id FROM t").await?;
    Ok(batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect())
}

/// Refuses a fetch that did not return the rows at positions `rows`, in that order.
fn check_ids(batch: &RecordBatch, rows: &[usize], ids_by_position: &[i64]) -> Result<()> {
    let ids = batch.column(0).as_primitive::<Int64Type>().values();
    if ids.len() != rows.len() || ids.iter().zip(rows).any(|(i, r)| *i != ids_by_position[*r]) {
        return exec_err!("a fetch returned other rows than asked for");
    }
    Ok(())
}

/// The row groups holding `rows` (sorted, distinct) and the selection of those rows within
/// the chosen groups (which the reader reads back to back), for a file whose row groups start
/// at `group_starts` (then the row count).
fn parquet_selection(rows: &[usize], group_starts: &[usize]) -> (Vec<usize>, RowSelection) {
    let (mut groups, mut selectors) = (Vec::<usize>::new(), vec![]);
    // Rows of the chosen groups before the current one; rows the selectors cover so far.
    let (mut before, mut pos) = (0usize, 0usize);
    for &r in rows {
        let g = group_starts.partition_point(|&s| s <= r) - 1;
        if groups.last() != Some(&g) {
            if let Some(&last) = groups.last() {
                before += group_starts[last + 1] - group_starts[last];
            }
            groups.push(g);
        }
        let local = before + r - group_starts[g];
        if local > pos {
            selectors.push(RowSelector::skip(local - pos));
        }
        selectors.push(RowSelector::select(1));
        pos = local + 1;
    }
    (groups, RowSelection::from(selectors))
}
