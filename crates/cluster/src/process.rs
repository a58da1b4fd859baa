//! What `vecfusion-scheduler` and `vecfusion-executor` share as processes: logging set up the
//! way Ballista's own binaries do, and an exit status that reports an error by the binary's
//! name.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Logs to stdout at `RUST_LOG`'s filter, else at `default` (the `--log-level-setting`).
pub fn init_logging(default: &str) {
    let filter = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| default.to_string());
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(EnvFilter::new(filter))
        .init();
}

/// The exit status of binary `name` after `outcome`, printing an error to stderr.
pub fn exit_code(name: &str, outcome: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
