//! `sql`: timed SQL statements on table `t`, each in this one process, so the harness can time
//! any statement (`OPTIMIZE VECTOR INDEX`, `OPTIMIZE TABLE`, ...) the way a user runs it.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::error::Result;
use serde_json::Value;

use crate::report::{first_row_json, peak_rss_mb};
use crate::table::{session_with_table, sql};

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Dataset directory, registered as table `t`.
    #[arg(long)]
    dataset: PathBuf,
    /// Statements, run in order.
    #[arg(required = true)]
    statements: Vec<String>,
}

/// Runs each statement and prints one JSON line per statement: the first row of its result
/// (numbers as numbers), `wall_seconds` and the process's `peak_rss_mb` so far.
pub async fn run(args: SqlArgs) -> Result<()> {
    let ctx = session_with_table(&args.dataset, None).await?;
    for statement in &args.statements {
        let start = Instant::now();
        let batches = sql(&ctx, statement).await?;
        let seconds = start.elapsed().as_secs_f64();
        let mut row = first_row_json(&batches)?;
        row.insert("statement".into(), statement.clone().into());
        row.insert("wall_seconds".into(), seconds.into());
        row.insert("peak_rss_mb".into(), peak_rss_mb().into());
        println!("{}", Value::Object(row));
    }
    Ok(())
}
