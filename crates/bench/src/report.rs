//! Results: JSON lines for machines, a markdown table for people.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::Result;
use serde_json::{Map, Value};

/// Appends one JSON object per line to `out` (creating parent directories).
pub fn append_jsonl(out: &Path, rows: &[Value]) -> std::io::Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;
    for r in rows {
        writeln!(f, "{r}")?;
    }
    Ok(())
}

/// Median of a sample (sorted copy).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// The first row of a statement's result as a JSON object: numbers as numbers, everything
/// else as its display text. Empty when the result has no rows.
pub fn first_row_json(batches: &[RecordBatch]) -> Result<Map<String, Value>> {
    let mut row = Map::new();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(row);
    };
    let options = FormatOptions::default();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let text = ArrayFormatter::try_new(column.as_ref(), &options)?
            .value(0)
            .to_string();
        let value = text
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(text));
        row.insert(field.name().clone(), value);
    }
    Ok(row)
}

/// This process's peak resident set (VmHWM) in MiB; NaN where /proc is not there.
pub fn peak_rss_mb() -> f64 {
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
