//! `vecfusion`: a SQL shell for DataFusion with vector datasets and indexes. It runs SQL from
//! `-c`, `-f` or an interactive prompt, like datafusion-cli.

mod format;
mod progress;
mod repl;
mod run;

use std::io::IsTerminal;
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
    /// Run every statement on the vecfusion cluster whose scheduler is at this address
    /// (df://HOST:PORT) instead of in this process.
    #[arg(long, value_name = "df://HOST:PORT")]
    remote: Option<String>,
}

/// Stack of the runtime threads statements run on. DataFusion plans and drops expression
/// trees recursively, so `SELECT 1 + 1 + ...` with thousands of terms overflowed the default
/// 2 MiB (and the main thread's 8 MiB); this is address space, touched only when used.
const STATEMENT_STACK_BYTES: usize = 256 << 20;

/// How long exit waits for blocking work still running (a cancelled build stops at its next
/// KMeans iteration; this bounds the wait if one does not).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[global_allocator]
static GLOBAL: vecfusion::allocator::MiMalloc = vecfusion::allocator::MiMalloc;

fn main() -> ExitCode {
    vecfusion::allocator::keep_freed_memory();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STATEMENT_STACK_BYTES)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The shell runs on a runtime thread (not the main thread) to get its large stack.
    let code = runtime
        .block_on(runtime.spawn(shell(Args::parse())))
        .unwrap_or_else(|e| {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}

async fn shell(args: Args) -> ExitCode {
    let mut config = datafusion::prelude::SessionConfig::new();
    if !args.quiet {
        config = config.with_extension(std::sync::Arc::new(progress_bars()));
    }
    let (ctx, connected) = match &args.remote {
        None => (
            vecfusion::new_session_context_with_config(config),
            "this process (in-process session)".to_string(),
        ),
        Some(url) => {
            match vecfusion_cluster::remote_session_context_with_config(url, config).await {
                Ok(ctx) => (ctx, format!("the vecfusion cluster at {url}")),
                Err(e) => {
                    eprintln!("Error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let options = PrintOptions {
        format: args.format,
        quiet: args.quiet,
    };
    if args.commands.is_empty() && args.files.is_empty() {
        return match run_repl(&ctx, options, &connected).await {
            // Piped input is a script: a failed statement fails the run, as with -f.
            Ok(false) if !std::io::stdin().is_terminal() => ExitCode::FAILURE,
            Ok(_) => ExitCode::SUCCESS,
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
