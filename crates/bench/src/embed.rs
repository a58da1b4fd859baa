//! `embed`: sentence embeddings on the CPU, two ways, on the same texts: the embedder alone
//! (tokenizer and model timed apart) and a whole `INSERT INTO t SELECT id, text, minilm(text)`
//! into a fresh dataset, the way a user fills an embedding column. `bench/embed.py` runs it
//! beside sentence-transformers on PyTorch.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;
use serde_json::json;
use vecfusion::embed::EmbeddingFunction;
use vecfusion::kmeans::AcceleratorRequest;

use crate::table::{session_with_table, sql};

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A sentence-transformers model directory (scripts/fetch-models.sh).
    #[arg(long)]
    model: PathBuf,
    /// Texts, one JSON object `{"text": "..."}` per line (what `STORED AS JSON` reads).
    #[arg(long)]
    texts: PathBuf,
    /// A directory for the datasets the INSERT runs write (one per run).
    #[arg(long)]
    work: PathBuf,
    /// Runs of each measurement.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

/// Prints one JSON line per run: `{"path": "embedder" | "sql_insert", "run", "texts",
/// "seconds", "tokenize_seconds", "model_seconds", "tokens"}`.
pub async fn run(args: EmbedArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.texts)
        .map_err(|e| exec_datafusion_err!("cannot read {}: {e}", args.texts.display()))?;
    let texts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l)
                .map_err(|e| exec_datafusion_err!("bad text line {l:?}: {e}"))?;
            row["text"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| exec_datafusion_err!("text line without a \"text\": {l:?}"))
        })
        .collect::<Result<_>>()?;
    let function = EmbeddingFunction::load("minilm", &args.model, AcceleratorRequest::Cpu)?;
    let embedder = function.embedder().clone();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for run in 0..args.repeat {
        let start = Instant::now();
        let (_, timings) = embedder.embed_timed(&refs)?;
        println!(
            "{}",
            json!({
                "path": "embedder", "run": run, "texts": texts.len(),
                "seconds": start.elapsed().as_secs_f64(),
                "tokenize_seconds": timings.tokenize.as_secs_f64(),
                "model_seconds": timings.model.as_secs_f64(),
                "tokens": timings.tokens,
            })
        );
    }
    for run in 0..args.repeat {
        let dataset = args.work.join(format!("docs-{run}"));
        let ctx = session_with_table(
            &dataset,
            Some("id BIGINT, text VARCHAR, embedding FLOAT[384]"),
        )
        .await?;
        ctx.register_udf(
            EmbeddingFunction::load("minilm", &args.model, AcceleratorRequest::Cpu)?.into_udf(),
        );
        sql(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE texts (text VARCHAR) STORED AS JSON LOCATION '{}'",
                args.texts.display()
            ),
        )
        .await?;
        let start = Instant::now();
        sql(
            &ctx,
            "INSERT INTO t SELECT row_number() OVER () AS id, text, minilm(text) FROM texts",
        )
        .await?;
        println!(
            "{}",
            json!({
                "path": "sql_insert", "run": run, "texts": texts.len(),
                "seconds": start.elapsed().as_secs_f64(),
            })
        );
    }
    Ok(())
}
