//! Running a script: every statement through vecfusion's own parser entry point (so
//! vecfusion's statements work), each result printed as it completes.

use std::io::Write;
use std::time::{Duration, Instant};

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
            eprintln!("{rows} row(s) in {}.", elapsed_text(start.elapsed()));
        }
        start = Instant::now();
    }
    Ok(())
}

/// A statement's time as the timing line shows it: milliseconds under a second (as psql's
/// `\timing` does; an ANN query takes a fraction of one), seconds above.
fn elapsed_text(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 1.0 {
        format!("{:.3} ms", seconds * 1e3)
    } else {
        format!("{seconds:.3} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_statements_are_timed_in_milliseconds_long_ones_in_seconds() {
        assert_eq!(elapsed_text(Duration::from_micros(61)), "0.061 ms");
        assert_eq!(elapsed_text(Duration::from_micros(999_999)), "999.999 ms");
        assert_eq!(elapsed_text(Duration::from_millis(1_250)), "1.250 s");
        assert_eq!(elapsed_text(Duration::from_secs(75)), "75.000 s");
    }
}
