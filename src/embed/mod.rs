//! Text embeddings in SQL: sentence-embedding models run on candle, exposed as scalar
//! functions returning `FLOAT[d]`, so that text → vector → index → answer stays in one
//! statement and on the accelerators the index is built on.
//!
//! `model_dir` reads what a sentence-transformers directory says (BERT config, tokenizer,
//! pooling, normalisation, length limit); `embedder` runs tokeniser, transformer and pooling
//! over a batch of texts; `function` is the `ScalarUDFImpl` a session registers under the
//! model's name; `chunks_rule` puts a `chunks_exec` below every operator that calls a model,
//! so a model sees small chunks and a cancelled statement stops between them.

pub mod chunks_exec;
pub mod chunks_rule;
pub mod embedder;
pub mod function;
pub mod model_dir;

pub use chunks_exec::{CHUNK_ROWS, ModelInputChunksExec};
pub use chunks_rule::ChunkModelInputs;
pub use embedder::{EmbedTimings, SentenceEmbedder};
pub use function::EmbeddingFunction;
pub use model_dir::ModelDirectory;
