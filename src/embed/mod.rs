//! Text embeddings in SQL: sentence-embedding models run on candle, exposed as scalar
//! functions returning `FLOAT[d]`, so that text → vector → index → answer stays in one
//! statement and on the accelerators the index is built on.
//!
//! `model_dir` reads what a sentence-transformers directory says (BERT config, tokenizer,
//! pooling, normalisation, length limit); `embedder` runs tokeniser, transformer and pooling
//! over a batch of texts; `function` is the `ScalarUDFImpl` a session registers under the
//! model's name.

pub mod embedder;
pub mod function;
pub mod model_dir;

pub use embedder::{EmbedTimings, SentenceEmbedder};
pub use function::EmbeddingFunction;
pub use model_dir::ModelDirectory;
