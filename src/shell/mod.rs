//! The `vecfusion` shell: runs SQL from `-c`, `-f` or an interactive prompt, like
//! datafusion-cli, through vecfusion's own parser entry point (so vecfusion's statements work).

mod format;
mod progress;
mod repl;

use std::io::Write;
use std::time::Instant;

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

pub use format::{OutputFormat, write_result};
pub use progress::progress_bars;
pub use repl::run_repl;

use crate::session::VecfusionContext;

/// How the shell prints.
#[derive(Debug, Clone, Copy)]
pub struct PrintOptions {
    pub format: OutputFormat,
    /// No timing lines.
    pub quiet: bool,
}

/// Runs every statement of `sql` in order, printing each result; stops at the first error.
pub async fn run_sql(ctx: &SessionContext, sql: &str, options: PrintOptions) -> Result<()> {
    for statement in ctx.vf_parse(sql)? {
        let start = Instant::now();
        let df = ctx.vf_execute(statement).await?;
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
    }
    Ok(())
}
