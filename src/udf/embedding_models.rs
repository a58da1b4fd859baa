//! `CREATE EMBEDDING MODEL`, `DROP EMBEDDING MODEL`, `SHOW EMBEDDING MODELS`: a session's
//! embedding models are its registered [`EmbeddingFunction`]s, so the function registry is
//! the one list of them (no second registry to keep in step).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::common::{exec_datafusion_err, plan_err};
use datafusion::dataframe::DataFrame;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionContext;

use crate::embed::EmbeddingFunction;
use crate::kmeans::AcceleratorRequest;
use crate::sql::statement::{CreateEmbeddingModel, DropEmbeddingModel, OptionValue};

/// Loads the model (off the async runtime: it reads and converts the weights) and registers
/// its function. An existing model of that name is kept with IF NOT EXISTS and an error
/// otherwise; a built-in function's name is refused rather than shadowed.
pub async fn create_model(ctx: &SessionContext, stmt: &CreateEmbeddingModel) -> Result<DataFrame> {
    let mut accelerator = AcceleratorRequest::Auto;
    for (key, value) in &stmt.options {
        match (key.as_str(), value) {
            ("accelerator", OptionValue::String(s)) => accelerator = AcceleratorRequest::parse(s)?,
            ("accelerator", other) => {
                return plan_err!(
                    "option 'accelerator' of CREATE EMBEDDING MODEL takes one of {}, got {other}",
                    AcceleratorRequest::NAMES
                );
            }
            _ => {
                return plan_err!(
                    "unknown option '{key}' for CREATE EMBEDDING MODEL; it takes accelerator \
                     ({})",
                    AcceleratorRequest::NAMES
                );
            }
        }
    }
    if ctx.udf(&stmt.name).is_ok() {
        if !is_embedding_model(ctx, &stmt.name) {
            return plan_err!(
                "'{}' is already a SQL function; give the embedding model another name",
                stmt.name
            );
        }
        if stmt.if_not_exists {
            return ctx.read_empty();
        }
        return plan_err!(
            "embedding model '{}' already exists; DROP EMBEDDING MODEL {} first, or use \
             CREATE EMBEDDING MODEL IF NOT EXISTS",
            stmt.name,
            stmt.name
        );
    }
    let (name, path) = (stmt.name.clone(), stmt.path.clone());
    let function =
        tokio::task::spawn_blocking(move || EmbeddingFunction::load(name, path, accelerator))
            .await
            .map_err(|e| exec_datafusion_err!("loading the embedding model failed: {e}"))??;
    ctx.register_udf(function.into_udf());
    ctx.read_empty()
}

/// Whether the session's function `name` is an embedding model (not a built-in or other UDF).
fn is_embedding_model(ctx: &SessionContext, name: &str) -> bool {
    ctx.udf(name)
        .is_ok_and(|f| f.inner().downcast_ref::<EmbeddingFunction>().is_some())
}

pub fn drop_model(ctx: &SessionContext, stmt: &DropEmbeddingModel) -> Result<DataFrame> {
    let is_model = is_embedding_model(ctx, &stmt.name);
    if !is_model && !stmt.if_exists {
        return plan_err!(
            "there is no embedding model '{}' (SHOW EMBEDDING MODELS lists them)",
            stmt.name
        );
    }
    if is_model {
        ctx.deregister_udf(&stmt.name);
    }
    ctx.read_empty()
}

/// One row per model: name, directory, dimension, device, token limit, texts embedded so far.
pub fn show_models(ctx: &SessionContext) -> Result<DataFrame> {
    let state = ctx.state();
    let mut models: Vec<_> = state
        .scalar_functions()
        .iter()
        .filter_map(|(name, f)| {
            let model = f.inner().downcast_ref::<EmbeddingFunction>()?;
            (name == f.name()).then(|| (name.clone(), model.embedder().clone()))
        })
        .collect();
    models.sort_by(|a, b| a.0.cmp(&b.0));
    let column = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let number = |v: Vec<u64>| Arc::new(UInt64Array::from(v)) as ArrayRef;
    let batch = RecordBatch::try_from_iter([
        ("name", column(models.iter().map(|m| m.0.clone()).collect())),
        (
            "path",
            column(
                models
                    .iter()
                    .map(|m| m.1.directory().path.display().to_string())
                    .collect(),
            ),
        ),
        (
            "dim",
            number(models.iter().map(|m| m.1.dim() as u64).collect()),
        ),
        (
            "accelerator",
            column(
                models
                    .iter()
                    .map(|m| m.1.accelerator().to_string())
                    .collect(),
            ),
        ),
        (
            "max_tokens",
            number(
                models
                    .iter()
                    .map(|m| m.1.directory().max_tokens as u64)
                    .collect(),
            ),
        ),
        (
            "texts_embedded",
            number(models.iter().map(|m| m.1.texts_embedded()).collect()),
        ),
    ])?;
    ctx.read_batch(batch)
}
