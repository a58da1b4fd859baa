//! `vecfusion-bench`: the Rust side of the benchmark harness in `bench/`.
//!
//! Each subcommand measures one thing on vecfusion, prints a markdown table and appends JSON
//! lines to `--out`. `bench/run.py` runs it beside faiss and pylance on the same data.

mod distributed;
mod embed;
mod index_build;
mod kmeans;
mod load;
mod npy;
mod report;
mod search;
mod statement;
mod table;
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
    /// Writes a .npy matrix (or a slice of its rows) as a vecfusion dataset or a new fragment.
    Load(load::LoadArgs),
    /// Timed SQL statements on a dataset (bench/optimize.py times OPTIMIZE with it).
    Sql(statement::SqlArgs),
    /// One timed CREATE VECTOR INDEX (bench/build.py compares it with faiss and Lance).
    Build(index_build::BuildArgs),
    /// Sentence embeddings: the embedder (tokenizer and model apart) and INSERT ... SELECT
    /// minilm(text) (bench/embed.py compares them with sentence-transformers).
    Embed(embed::EmbedArgs),
    /// Recall and latency of ANN search (bench/search.py compares it with faiss and Lance).
    Search(search::SearchArgs),
    /// The same index build in-process and on local clusters (bench/distributed.py).
    Distributed(distributed::DistributedArgs),
}

#[global_allocator]
static GLOBAL: vecfusion::allocator::MiMalloc = vecfusion::allocator::MiMalloc;

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    vecfusion::allocator::keep_freed_memory();
    match Args::parse().command {
        Command::Take(args) => take::run(args).await,
        Command::Kmeans(args) => kmeans::run(args).await,
        Command::Load(args) => load::load(args).await,
        Command::Build(args) => index_build::build(args).await,
        Command::Search(args) => search::run(args).await,
        Command::Sql(args) => statement::run(args).await,
        Command::Embed(args) => embed::run(args).await,
        Command::Distributed(args) => distributed::run(args).await,
    }
}
