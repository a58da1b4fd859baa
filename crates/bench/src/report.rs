//! Results: JSON lines for machines, a markdown table for people.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

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

/// Prints a markdown table.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    println!("| {} |", header.join(" | "));
    println!(
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        println!("| {} |", r.join(" | "));
    }
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
