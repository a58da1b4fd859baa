//! `vecfusion-bench`: the Rust side of the benchmark harness in `bench/`.
//!
//! Each subcommand measures one thing on vecfusion, prints a markdown table and appends JSON
//! lines to `--out`. `bench/run.py` runs it beside faiss and pylance on the same data.

mod report;
mod take;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "vecfusion benchmarks (see bench/README.md)")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Random access: rows by address from a vecfusion dataset vs. rows by index from Parquet.
    Take(take::TakeArgs),
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    match Args::parse().command {
        Command::Take(args) => take::run(args).await,
    }
}
