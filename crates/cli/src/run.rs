//! Running a script: every statement through vecfusion's own parser entry point (so
//! vecfusion's statements work), each result printed as it completes.

use std::io::Write;
use std::time::Instant;

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use vecfusion::VecfusionContext;

use crate::format::{OutputFormat, write_result};

/// How the shell prints.
#[derive(Debug, Clone, Copy)]
pub struct PrintOptions {
    pub format: OutputFormat,
    /// No timing lines.
    pub quiet: bool,
}

/// Runs every statement of `sql` in order, printing each result; stops at the first error.
pub async fn run_sql(ctx: &SessionContext, sql: &str, options: PrintOptions) -> Result<()> {
    let mut start = Instant::now();
    let mut script = ctx.vf_script(sql).await?;
    while let Some(df) = script.next().await {
        let df = df?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut stdout = std::io::stdout().lock();
        write_result(
            &mut stdout,
            options.format,
            &std::sync::Arc::new(schema),
            &batches,
        )?;
        stdout.flush()?;
        if !options.quiet {
            eprintln!("{rows} row(s) in {:.3} s.", start.elapsed().as_secs_f64());
        }
        start = Instant::now();
    }
    Ok(())
}
