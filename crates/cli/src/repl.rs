//! The interactive prompt: rustyline with history, statements ending at `;`, backslash
//! commands, and Ctrl-C cancelling the running statement rather than the shell.

use datafusion::prelude::SessionContext;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::run::{PrintOptions, run_sql};

const HELP: &str = "\
Statements end with ';' and may span lines. Commands:
  \\q            quit (or Ctrl-D)
  \\d            list tables
  \\d NAME       describe a table
  \\?            this help
Ctrl-C cancels a running statement, or clears the current input.";

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".vecfusion_history"))
}

/// Runs the prompt until `\q` or end of input. Returns whether every statement succeeded, so
/// that piped input (`vecfusion < script.sql`) exits non-zero after a failure.
pub async fn run_repl(
    ctx: &SessionContext,
    options: PrintOptions,
    connected: &str,
) -> rustyline::Result<bool> {
    let mut editor = DefaultEditor::new()?;
    if let Some(p) = history_path() {
        let _ = editor.load_history(&p);
    }
    println!(
        "vecfusion {} — type \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    let mut all_ok = true;
    loop {
        let prompt = if buffer.is_empty() {
            "vecfusion> "
        } else {
            "       ... "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    let _ = editor.add_history_entry(trimmed);
                    let mut parts = trimmed.splitn(2, char::is_whitespace);
                    match (parts.next(), parts.next().map(str::trim)) {
                        (Some("\\q"), _) => break,
                        (Some("\\?"), _) | (Some("\\h"), _) => {
                            println!("{HELP}\nStatements run in {connected}.")
                        }
                        (Some("\\d"), None) => {
                            all_ok &= execute(ctx, "SHOW TABLES;", options).await
                        }
                        (Some("\\d"), Some(name)) => {
                            all_ok &= execute(ctx, &format!("DESCRIBE {name};"), options).await
                        }
                        _ => eprintln!("unknown command {trimmed}; \\? lists the commands"),
                    }
                    continue;
                }
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if trimmed.ends_with(';') {
                    let sql = std::mem::take(&mut buffer);
                    let _ = editor.add_history_entry(sql.trim());
                    all_ok &= execute(ctx, &sql, options).await;
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    if let Some(p) = history_path() {
        let _ = editor.save_history(&p);
    }
    Ok(all_ok)
}

/// Runs `sql`; false when it failed or was cancelled. Cancelling drops the statement's
/// future, which also stops the training threads of an index build (`kmeans::cancel`).
async fn execute(ctx: &SessionContext, sql: &str, options: PrintOptions) -> bool {
    tokio::select! {
        result = run_sql(ctx, sql, options) => match result {
            Ok(()) => true,
            Err(e) => {
                eprintln!("Error: {e}");
                false
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("Statement cancelled.");
            false
        }
    }
}
