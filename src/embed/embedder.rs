//! Texts to sentence embeddings: tokenise, run the BERT encoder in batches, pool, normalise.
//!
//! Texts are sorted by token count before batching, so a batch pads to the length of similar
//! texts rather than to the longest text of the input (the same trick sentence-transformers'
//! `encode` uses); results go back in input order.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use datafusion::common::{exec_datafusion_err, plan_err};
use datafusion::error::{DataFusionError, Result};
use tokenizers::{Tokenizer, TruncationParams};

use crate::embed::model_dir::{ModelDirectory, Pooling};
use crate::kmeans::Accelerator;

/// Texts per forward pass: large enough to keep the matrix products efficient, small enough
/// that a batch of 256-token texts stays in tens of megabytes of activations.
const BATCH: usize = 32;

/// Texts on their way through the model ([`SentenceEmbedder::start`], then
/// [`SentenceEmbedder::step`] until it returns false).
pub struct EmbeddingRun {
    encodings: Vec<tokenizers::Encoding>,
    /// Text indices by token count: each model batch takes the next [`BATCH`].
    order: Vec<usize>,
    done: usize,
    /// Row-major embeddings, in input order.
    out: Vec<f32>,
    started: std::time::Instant,
    tokenize: std::time::Duration,
}

impl EmbeddingRun {
    /// The embeddings (row-major, input order) and where the time went.
    pub fn finish(self) -> (Vec<f32>, EmbedTimings) {
        let timings = EmbedTimings {
            tokenize: self.tokenize,
            model: self.started.elapsed() - self.tokenize,
            tokens: self
                .encodings
                .iter()
                .map(|e| e.get_ids().len() as u64)
                .sum(),
        };
        (self.out, timings)
    }
}

/// A loaded sentence-embedding model on one device.
pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    directory: ModelDirectory,
    accelerator: Accelerator,
    /// Texts embedded since the model was loaded (`SHOW EMBEDDING MODELS`): a running
    /// statement's work is visible while it runs, and a cancelled one's stops growing.
    texts_embedded: AtomicU64,
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("path", &self.directory.path)
            .field("dim", &self.dim())
            .field("accelerator", &self.accelerator.name)
            .finish()
    }
}

fn model_err(what: &str, directory: &ModelDirectory, e: impl std::fmt::Display) -> DataFusionError {
    exec_datafusion_err!(
        "embedding model '{}': {what}: {e}",
        directory.path.display()
    )
}

/// Where one [`SentenceEmbedder::embed_timed`] call spent its time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedTimings {
    /// Tokenizing every text (with truncation).
    pub tokenize: std::time::Duration,
    /// The encoder, pooling and normalisation, batch by batch.
    pub model: std::time::Duration,
    /// Tokens the model ran on (after truncation, special tokens included).
    pub tokens: u64,
}

impl SentenceEmbedder {
    /// Loads the model in `directory` onto `accelerator`'s device.
    pub fn load(directory: ModelDirectory, accelerator: Accelerator) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_file(directory.path.join("tokenizer.json"))
            .map_err(|e| model_err("tokenizer.json cannot be read", &directory, e))?;
        // The tokenizer file's own padding (often to a fixed 128) and truncation are replaced
        // by sentence-transformers' rule: truncate to max_seq_length, pad per batch.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: directory.max_tokens,
                ..Default::default()
            }))
            .map_err(|e| model_err("cannot set truncation", &directory, e))?;
        let weights = directory.path.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&weights, &accelerator.device)
            .map_err(|e| model_err("model.safetensors cannot be read", &directory, e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &accelerator.device);
        let model = BertModel::load(vb, &directory.config).map_err(|e| {
            model_err(
                "model.safetensors does not hold the BERT weights config.json describes",
                &directory,
                e,
            )
        })?;
        Ok(Self {
            model,
            tokenizer,
            directory,
            accelerator,
            texts_embedded: AtomicU64::new(0),
        })
    }

    pub fn dim(&self) -> usize {
        self.directory.dim()
    }

    pub fn directory(&self) -> &ModelDirectory {
        &self.directory
    }

    /// The device the model runs on (`cpu`, `cuda:0`, ...).
    pub fn accelerator(&self) -> &str {
        &self.accelerator.name
    }

    /// Texts embedded since the model was loaded.
    pub fn texts_embedded(&self) -> u64 {
        self.texts_embedded.load(Ordering::Relaxed)
    }

    /// Embeddings of `texts`, row-major: `texts.len() × dim` values.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>> {
        Ok(self.embed_timed(texts)?.0)
    }

    /// [`embed`](Self::embed), also saying where the time went (the benchmark's split
    /// between the tokenizer and the model).
    pub fn embed_timed(&self, texts: &[&str]) -> Result<(Vec<f32>, EmbedTimings)> {
        let mut run = self.start(texts)?;
        while self.step(&mut run)? {}
        Ok(run.finish())
    }

    /// Tokenizes `texts` and orders them for the model; [`step`](Self::step) then runs one
    /// batch at a time, so a caller can yield (and be cancelled) between batches.
    pub fn start(&self, texts: &[&str]) -> Result<EmbeddingRun> {
        let started = std::time::Instant::now();
        let Some(total) = texts.len().checked_mul(self.dim()) else {
            return plan_err!("{} texts are too many to embed at once", texts.len());
        };
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| model_err("tokenizing failed", &self.directory, e))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        Ok(EmbeddingRun {
            out: vec![0f32; total],
            tokenize: started.elapsed(),
            started,
            encodings,
            order,
            done: 0,
        })
    }

    /// Runs the next batch of `run` through the model; false once every text is embedded.
    pub fn step(&self, run: &mut EmbeddingRun) -> Result<bool> {
        let dim = self.dim();
        let Some(chunk) = run.order.get(run.done..).filter(|rest| !rest.is_empty()) else {
            return Ok(false);
        };
        let chunk = &chunk[..BATCH.min(chunk.len())];
        let ids: Vec<&[u32]> = chunk.iter().map(|&i| run.encodings[i].get_ids()).collect();
        let pooled = self
            .forward(&ids)
            .map_err(|e| model_err("running the model failed", &self.directory, e))?;
        for (row, &i) in pooled.chunks_exact(dim).zip(chunk) {
            run.out[i * dim..(i + 1) * dim].copy_from_slice(row);
        }
        run.done += chunk.len();
        self.texts_embedded
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(run.done < run.order.len())
    }

    /// One batch through the encoder: pooled (and normalised) embeddings, row-major.
    fn forward(&self, ids: &[&[u32]]) -> candle_core::Result<Vec<f32>> {
        let device: &Device = &self.accelerator.device;
        let len = ids.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let pad = self.directory.config.pad_token_id as u32;
        let mut flat_ids = Vec::with_capacity(ids.len() * len);
        let mut mask = Vec::with_capacity(ids.len() * len);
        for t in ids {
            flat_ids.extend_from_slice(t);
            flat_ids.extend(std::iter::repeat_n(pad, len - t.len()));
            mask.extend(std::iter::repeat_n(1u32, t.len()));
            mask.extend(std::iter::repeat_n(0u32, len - t.len()));
        }
        let input = Tensor::from_vec(flat_ids, (ids.len(), len), device)?;
        let mask = Tensor::from_vec(mask, (ids.len(), len), device)?;
        let types = input.zeros_like()?;
        let hidden = self.model.forward(&input, &types, Some(&mask))?;
        let pooled = match self.directory.pooling {
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                sum.broadcast_div(&count)?
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        };
        let pooled = if self.directory.normalize {
            let norm = pooled
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            pooled.broadcast_div(&norm)?
        } else {
            pooled
        };
        pooled.flatten_all()?.to_vec1::<f32>()
    }
}
