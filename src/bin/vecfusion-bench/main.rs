//! `vecfusion-bench`: the Rust side of the benchmark harness in `bench/`.
//!
//! Each subcommand measures one thing on vecfusion, prints a markdown table and appends JSON
//! lines to `--out`. `bench/run.py` runs it beside faiss and pylance on the same data.

mod build;
mod kmeans;
mod npy;
mod report;
mod search;
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
    /// KMeans training on a .npy file (bench/kmeans.py compares it with faiss).
    Kmeans(kmeans::KMeansArgs),
    /// Writes a .npy matrix as a vecfusion dataset.
    Load(build::LoadArgs),
    /// One timed CREATE VECTOR INDEX (bench/build.py compares it with faiss and Lance).
    Build(build::BuildArgs),
    /// Recall and latency of ANN search (bench/search.py compares it with faiss and Lance).
    Search(search::SearchArgs),
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    match Args::parse().command {
        Command::Take(args) => take::run(args).await,
        Command::Kmeans(args) => kmeans::run(args).await,
        Command::Load(args) => build::load(args).await,
        Command::Build(args) => build::build(args).await,
        Command::Search(args) => search::run(args).await,
    }
}
