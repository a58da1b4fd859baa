//! `vecfusion`: a SQL shell for DataFusion with vector datasets and indexes. It runs SQL from
//! `-c`, `-f` or an interactive prompt, like datafusion-cli.

mod format;
mod progress;
mod repl;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use format::OutputFormat;
use progress::progress_bars;
use repl::run_repl;
use run::{PrintOptions, run_sql};

/// A SQL shell for DataFusion with vecfusion's vector datasets and indexes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Run this SQL (one or more statements) and exit; may be repeated.
    #[arg(short = 'c', long = "command")]
    commands: Vec<String>,
    /// Run the SQL in this file and exit; may be repeated.
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// How results are printed.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Do not print timing lines.
    #[arg(short, long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = datafusion::prelude::SessionConfig::new();
    if !args.quiet {
        config = config.with_extension(std::sync::Arc::new(progress_bars()));
    }
    let ctx = vecfusion::new_session_context_with_config(config);
    let options = PrintOptions {
        format: args.format,
        quiet: args.quiet,
    };
    if args.commands.is_empty() && args.files.is_empty() {
        return match run_repl(&ctx, options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut scripts: Vec<(String, String)> = args
        .commands
        .iter()
        .map(|c| ("-c".to_string(), c.clone()))
        .collect();
    for file in &args.files {
        match std::fs::read_to_string(file) {
            Ok(sql) => scripts.push((file.display().to_string(), sql)),
            Err(e) => {
                eprintln!("Error: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    for (origin, sql) in scripts {
        if let Err(e) = run_sql(&ctx, &sql, options).await {
            eprintln!("Error ({origin}): {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
