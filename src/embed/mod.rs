//! Text embeddings in SQL: sentence-embedding models run on candle, exposed as scalar
//! functions returning `FLOAT[d]`, so that text → vector → index → answer stays in one
//! statement and on the accelerators the index is built on.
//!
//! `model_dir` reads what a sentence-transformers directory says (BERT config, tokenizer,
//! pooling, normalisation, length limit); `embedder` runs tokeniser, transformer and pooling
//! over a batch of texts; `function` is the `ScalarUDFImpl` a session registers under the
//! model's name; `chunks_rule` evaluates a projection's model calls in a `calls_exec` below
//! it (whole batches sorted by length, a yield between model batches) and puts a
//! `chunks_exec` below any other operator that calls a model (small chunks, a yield between
//! them), so a cancelled statement stops within one model batch or chunk.

pub mod calls_exec;
pub mod chunks_exec;
pub mod chunks_rule;
pub mod embedder;
pub mod function;
pub mod model_dir;

pub use calls_exec::{ModelCall, ModelCallsExec};
pub use chunks_exec::{CHUNK_ROWS, ModelInputChunksExec};
pub use chunks_rule::ChunkModelInputs;
pub use embedder::{EmbedTimings, SentenceEmbedder};
pub use function::EmbeddingFunction;
pub use model_dir::ModelDirectory;
