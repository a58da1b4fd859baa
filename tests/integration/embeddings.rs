//! Sentence embeddings as SQL functions, against all-MiniLM-L6-v2's published numbers.
//! The model comes from `scripts/fetch-models.sh` (the test command runs it first).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type};
use datafusion::execution::FunctionRegistry;
use vecfusion::embed::{EmbeddingFunction, ModelDirectory};
use vecfusion::kmeans::AcceleratorRequest;
use vecfusion::{VecfusionContext, new_session_context};

use crate::common::{explain, sql, sql_err};

fn minilm_dir() -> PathBuf {
    let dir = match std::env::var_os("VECFUSION_MODELS") {
        Some(models) => PathBuf::from(models),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/vecfusion/models")
        }
    }
    .join("all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        dir.display()
    );
    dir
}

fn session_with_minilm() -> datafusion::prelude::SessionContext {
    let ctx = new_session_context();
    let f = EmbeddingFunction::load("minilm", minilm_dir(), AcceleratorRequest::Cpu).unwrap();
    ctx.register_udf(f.into_udf());
    ctx
}

/// The model card's example: "The weather is lovely today." against two sentences.
#[tokio::test]
async fn minilm_matches_the_model_cards_similarities() {
    let ctx = session_with_minilm();
    let batches = sql(
        &ctx,
        "SELECT 1 - cosine_distance(minilm('The weather is lovely today.'), minilm(s)) AS sim \
         FROM (VALUES ('It''s so sunny outside!'), ('He drove to the stadium.')) AS t(s)",
    )
    .await;
    let sims: Vec<f32> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Float32Type>().values().to_vec())
        .collect();
    assert_eq!(sims.len(), 2);
    assert!((sims[0] - 0.6660).abs() < 5e-4, "sunny: {}", sims[0]);
    assert!((sims[1] - 0.1046).abs() < 5e-4, "stadium: {}", sims[1]);
}

#[tokio::test]
async fn embeddings_are_unit_vectors_null_for_null_text_and_independent_of_batching() {
    let ctx = session_with_minilm();
    let batches = sql(
        &ctx,
        "SELECT minilm(s) FROM (VALUES ('a short text'), (NULL), (''), \
         ('a much longer text that pads every other text of its batch to its own length')) AS t(s)",
    )
    .await;
    let col = batches[0].column(0);
    assert_eq!(
        col.data_type(),
        &DataType::FixedSizeList(
            Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
                DataType::Float32,
                true
            )),
            384
        )
    );
    let list = col.as_fixed_size_list();
    assert!(list.is_null(1) && !list.is_null(0) && !list.is_null(2));
    let row = |i: usize| {
        list.value(i)
            .as_primitive::<Float32Type>()
            .values()
            .to_vec()
    };
    for i in [0, 2, 3] {
        let norm: f32 = row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "row {i} has norm {norm}");
    }
    // Alone, the short text gets the same embedding as beside a longer, padded one.
    let alone = sql(&ctx, "SELECT minilm('a short text')").await;
    let alone = alone[0].column(0).as_fixed_size_list().value(0);
    let alone = alone.as_primitive::<Float32Type>().values();
    let batched = row(0);
    let max_diff = alone
        .iter()
        .zip(&batched)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff < 1e-5,
        "padding changed the embedding by {max_diff}"
    );
}

/// `texts` as the rows of a `VALUES` list: `(0, 'first'), (1, 'second'), ...`.
fn numbered_values(texts: &[&str]) -> String {
    let rows: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("({i}, '{t}')"))
        .collect();
    rows.join(", ")
}

/// The first vector of `batches`' column `c`, row `r`.
fn vector_at(batches: &[datafusion::arrow::array::RecordBatch], c: usize, r: usize) -> Vec<f32> {
    let list = batches[0].column(c).as_fixed_size_list().value(r);
    list.as_primitive::<Float32Type>().values().to_vec()
}

/// A projection's model calls run ahead of it in `ModelCallsExec` (a whole batch at a time,
/// sorted by length inside): rows keep their order, a call written four times is embedded
/// once per row, and every vector is the one its text gets alone.
#[tokio::test]
async fn a_projections_model_calls_keep_row_order_and_match_single_texts() {
    let ctx = session_with_minilm();
    let texts = [
        "a much longer text about the weather in the mountains early in the spring",
        "short",
        "",
        "a text of middling length",
        "x y",
    ];
    let values = numbered_values(&texts);
    let query = format!(
        "SELECT id, minilm(s) AS a, minilm(upper(s)) AS b, \
         1 - cosine_distance(minilm(s), minilm(s)) AS one \
         FROM (VALUES {values}) AS t(id, s)"
    );
    let plan = explain(&ctx, &format!("ANALYZE {query}")).await;
    // DataFusion's common-subexpression pass computes minilm(s) once; each distinct call
    // runs in a ModelCallsExec (five texts each) and no projection calls the model itself.
    let calls: Vec<&str> = plan
        .lines()
        .filter(|l| l.contains("ModelCallsExec:"))
        .collect();
    assert_eq!(calls.len(), 2, "{plan}");
    assert!(calls.iter().all(|l| l.contains("texts=5,")), "{plan}");
    let projections = plan.lines().filter(|l| l.contains("ProjectionExec:"));
    assert!(projections.clone().count() >= 1, "{plan}");
    assert!(
        projections.into_iter().all(|l| !l.contains("minilm(")),
        "{plan}"
    );
    let batches = sql(&ctx, &query).await;
    assert_eq!(batches.len(), 1);
    let ids = batches[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    for (r, id) in ids.values().iter().enumerate() {
        let text = texts[*id as usize];
        for (c, text) in [(1, text.to_string()), (2, text.to_uppercase())] {
            let alone = sql(&ctx, &format!("SELECT minilm('{text}')")).await;
            let (alone, got) = (vector_at(&alone, 0, 0), vector_at(&batches, c, r));
            let diff = alone
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "row {r} column {c}: differs by {diff}");
        }
        let one = batches[0].column(3).as_primitive::<Float32Type>().value(r);
        assert!((one - 1.0).abs() < 1e-5, "row {r}: {one}");
    }
}

#[tokio::test]
async fn texts_longer_than_the_model_limit_are_truncated_to_256_tokens() {
    let dir = ModelDirectory::open(minilm_dir()).unwrap();
    assert_eq!(dir.max_tokens, 256);
    let ctx = session_with_minilm();
    // 300 and 400 words: both truncated to the same first 256 tokens, so the same embedding.
    let a = "word ".repeat(300);
    let b = format!("{a}{}", "other ".repeat(100));
    let batches = sql(
        &ctx,
        &format!("SELECT cosine_distance(minilm('{a}'), minilm('{b}'))"),
    )
    .await;
    let d = batches[0].column(0).as_primitive::<Float32Type>().value(0);
    assert!(d.abs() < 1e-5, "distance {d}");
}

#[tokio::test]
async fn bad_model_directories_and_arguments_get_clear_errors() {
    let missing = EmbeddingFunction::load("m", "/nonexistent/model", AcceleratorRequest::Cpu)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("does not exist"), "{missing}");

    let empty = tempfile::tempdir().unwrap();
    let err = EmbeddingFunction::load("m", empty.path(), AcceleratorRequest::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no config.json"), "{err}");

    // A copy of the model whose weights are truncated, and one whose config is not BERT's.
    let broken = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
    ] {
        std::fs::copy(minilm_dir().join(f), broken.path().join(f)).unwrap();
    }
    let weights = std::fs::read(minilm_dir().join("model.safetensors")).unwrap();
    std::fs::write(broken.path().join("model.safetensors"), &weights[..1000]).unwrap();
    let err = EmbeddingFunction::load("m", broken.path(), AcceleratorRequest::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors cannot be read"), "{err}");
    std::fs::write(
        broken.path().join("config.json"),
        r#"{"model_type": "gpt2", "architectures": ["GPT2Model"]}"#,
    )
    .unwrap();
    let err = EmbeddingFunction::load("m", broken.path(), AcceleratorRequest::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a gpt2 model"), "{err}");

    let ctx = session_with_minilm();
    let err = sql_err(&ctx, "SELECT minilm(42)").await;
    assert!(err.contains("minilm embeds text"), "{err}");
    let err = sql_err(&ctx, "SELECT minilm('a', 'b')").await;
    assert!(err.contains("takes one text argument"), "{err}");
}

/// A constant text is embedded while planning: the query the ANN rewrite sees has a constant
/// vector, and the index serves `ORDER BY cosine_distance(embedding, minilm('...')) LIMIT k`.
#[tokio::test]
async fn query_by_text_is_served_by_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = session_with_minilm();
    let location = dir.path().join("docs");
    ctx.vf_sql(&format!(
        "CREATE EXTERNAL TABLE docs (id BIGINT, text VARCHAR, embedding FLOAT[384]) \
         STORED AS VECFUSION LOCATION '{}'",
        location.display()
    ))
    .await
    .unwrap();
    let texts = [
        "The cat sat on the mat.",
        "Dogs love to play fetch in the park.",
        "The stock market fell sharply today.",
        "Interest rates were raised by the central bank.",
        "It is sunny and warm outside.",
        "Heavy rain is expected tomorrow.",
        "The team won the championship game.",
        "She scored the winning goal in the final minute.",
    ];
    let values = numbered_values(&texts);
    // Through a table: DataFusion 55 plans `INSERT ... SELECT ... FROM (VALUES ...)` with the
    // target's column count for the VALUES list (also for its own memory tables).
    sql(
        &ctx,
        &format!(
            "CREATE TABLE texts AS SELECT * FROM (VALUES {}) AS t(id, text)",
            values
        ),
    )
    .await;
    sql(
        &ctx,
        "INSERT INTO docs SELECT id, text, minilm(text) FROM texts",
    )
    .await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX docs_idx ON docs (embedding) USING IVF_FLAT \
         WITH (num_partitions = 2, metric = 'cosine')",
    )
    .await;
    let query = "SELECT id FROM docs \
                 ORDER BY cosine_distance(embedding, minilm('What is the weather like?')) LIMIT 2";
    let plan = explain(&ctx, query).await;
    let search = plan
        .lines()
        .find(|l| l.contains("AnnSearchExec"))
        .unwrap_or_else(|| panic!("not served by the index:\n{plan}"));
    assert!(
        search.contains("[384 values]") && search.contains("index=docs_idx"),
        "the query text was not embedded at planning: {search}"
    );
    let mut ids = crate::common::column_i64(&ctx, query).await;
    ids.sort();
    assert_eq!(ids, vec![4, 5], "the two weather sentences");
}

#[tokio::test]
async fn create_show_and_drop_embedding_models_in_sql() {
    let ctx = new_session_context();
    let dir = minilm_dir();
    let create = format!("CREATE EMBEDDING MODEL MiniLM FROM '{}'", dir.display());
    sql(&ctx, &create).await;
    // Unquoted names are lower-cased, as DataFusion resolves function names.
    let shown = sql(&ctx, "SHOW EMBEDDING MODELS").await;
    let shown = datafusion::arrow::util::pretty::pretty_format_batches(&shown)
        .unwrap()
        .to_string();
    assert!(
        shown.contains("| minilm ") && shown.contains("| 384 ") && shown.contains("| cpu "),
        "{shown}"
    );
    let dims = crate::common::scalar_i64(&ctx, "SELECT array_length(minilm('hello'))").await;
    assert_eq!(dims, 384);

    let err = sql_err(&ctx, &create).await;
    assert!(err.contains("already exists"), "{err}");
    sql(
        &ctx,
        &format!(
            "CREATE EMBEDDING MODEL IF NOT EXISTS minilm FROM '{}'",
            dir.display()
        ),
    )
    .await;
    let err = sql_err(
        &ctx,
        &format!("CREATE EMBEDDING MODEL lower FROM '{}'", dir.display()),
    )
    .await;
    assert!(err.contains("'lower' is already a SQL function"), "{err}");
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EMBEDDING MODEL m2 FROM '{}' WITH (batch = 3)",
            dir.display()
        ),
    )
    .await;
    assert!(err.contains("unknown option 'batch'"), "{err}");
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EMBEDDING MODEL m2 FROM '{}' WITH (accelerator = 'tpu')",
            dir.display()
        ),
    )
    .await;
    assert!(err.contains("unknown accelerator 'tpu'"), "{err}");
    let err = sql_err(&ctx, "CREATE EMBEDDING MODEL m2 FROM '/no/such/dir'").await;
    assert!(err.contains("does not exist"), "{err}");
    let err = sql_err(&ctx, "CREATE EMBEDDING MODEL m2").await;
    assert!(err.contains("needs the model's directory"), "{err}");

    sql(&ctx, "DROP EMBEDDING MODEL minilm").await;
    let err = sql_err(&ctx, "SELECT minilm('hello')").await;
    assert!(err.contains("minilm"), "{err}");
    let err = sql_err(&ctx, "DROP EMBEDDING MODEL minilm").await;
    assert!(
        err.contains("there is no embedding model 'minilm'"),
        "{err}"
    );
    sql(&ctx, "DROP EMBEDDING MODEL IF EXISTS minilm").await;
    let err = sql_err(&ctx, "DROP EMBEDDING MODEL lower").await;
    assert!(err.contains("there is no embedding model 'lower'"), "{err}");
    assert!(ctx.udf("lower").is_ok(), "a built-in function was dropped");
}

/// `ADD COLUMN ... AS (minilm(text))` on a table of two fragments with a deleted row: the
/// stored vectors are the model's, rows inserted afterwards get theirs, and the index built on
/// the new column serves query-by-text.
#[tokio::test]
async fn a_computed_embedding_column_is_added_and_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = session_with_minilm();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE docs (id BIGINT, text VARCHAR) STORED AS VECFUSION \
             LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await;
    sql(
        &ctx,
        "INSERT INTO docs VALUES (0, 'The cat sat on the mat.'), \
         (1, 'Dogs love to play fetch in the park.'), (2, 'The stock market fell sharply.'), \
         (3, 'A deleted row is never embedded.')",
    )
    .await;
    sql(
        &ctx,
        "INSERT INTO docs VALUES (4, 'It is sunny and warm outside.'), \
         (5, 'Heavy rain is expected tomorrow.'), (6, 'The team won the championship.')",
    )
    .await;
    sql(&ctx, "DELETE FROM docs WHERE id = 3").await;
    sql(
        &ctx,
        "ALTER TABLE docs ADD COLUMN embedding FLOAT[384] AS (minilm(text))",
    )
    .await;
    sql(
        &ctx,
        "INSERT INTO docs (id, text) VALUES (7, 'Snow is falling in the mountains.')",
    )
    .await;
    // Every stored vector is the model's embedding of the row's text.
    let batches = sql(
        &ctx,
        "SELECT id, cosine_distance(embedding, minilm(text)) FROM docs ORDER BY id",
    )
    .await;
    let distances: Vec<(i64, f32)> = batches
        .iter()
        .flat_map(|b| {
            let ids = b
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let d = b.column(1).as_primitive::<Float32Type>();
            (0..b.num_rows())
                .map(|r| (ids.value(r), d.value(r)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        distances.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![0, 1, 2, 4, 5, 6, 7]
    );
    assert!(
        distances.iter().all(|(_, d)| d.abs() < 1e-5),
        "{distances:?}"
    );
    sql(
        &ctx,
        "CREATE VECTOR INDEX docs_idx ON docs (embedding) USING IVF_FLAT \
         WITH (num_partitions = 2, metric = 'cosine')",
    )
    .await;
    let query = "SELECT id FROM docs \
                 ORDER BY cosine_distance(embedding, minilm('What is the weather like?')) LIMIT 3";
    let plan = explain(&ctx, query).await;
    assert!(plan.contains("index=docs_idx"), "{plan}");
    let mut ids = crate::common::column_i64(&ctx, query).await;
    ids.sort_unstable();
    assert_eq!(ids, vec![4, 5, 7], "the three weather sentences");
    // The same through vector_search, the text embedded once while planning.
    let found = crate::common::column_i64(
        &ctx,
        "SELECT id FROM vector_search('docs', 'embedding', minilm('What is the weather like?'), 3) \
         ORDER BY id",
    )
    .await;
    assert_eq!(found, vec![4, 5, 7]);
}

/// Runs `statement`, cancels it once the model has embedded one chunk, and returns the texts
/// embedded when it was cancelled and once the model went quiet. The statement's rows number
/// `16 × CHUNK_ROWS`.
async fn cancel_after_one_chunk(
    ctx: &datafusion::prelude::SessionContext,
    embedder: &vecfusion::embed::SentenceEmbedder,
    statement: String,
) -> (u64, u64) {
    let chunk = vecfusion::embed::CHUNK_ROWS as u64;
    let before = embedder.texts_embedded();
    let running = ctx.clone();
    let task = tokio::spawn(async move { running.sql(&statement).await?.collect().await });
    let deadline = Instant::now() + Duration::from_secs(300);
    while embedder.texts_embedded() < before + chunk {
        assert!(
            Instant::now() < deadline,
            "the first chunk was not embedded"
        );
        assert!(
            !task.is_finished(),
            "the statement ended before it was cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let at_cancel = embedder.texts_embedded() - before;
    // The chunk in flight runs to its end (on a blocking thread for computed columns); then
    // nothing more.
    let mut settled = at_cancel;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = embedder.texts_embedded() - before;
        if now == settled {
            return (at_cancel, settled);
        }
        settled = now;
    }
}

/// Cancelling an INSERT that embeds texts — through a computed column or by calling the
/// model in its SELECT — stops the model within one chunk (the chunk or model batch in
/// flight finishes, no other starts) and leaves the table as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_insert_stops_embedding_within_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    // One DataFusion partition: one chunk in flight at a time (each partition has its own).
    let config = datafusion::prelude::SessionConfig::new().with_target_partitions(1);
    let ctx = vecfusion::new_session_context_with_config(config);
    let model = EmbeddingFunction::load("minilm", minilm_dir(), AcceleratorRequest::Cpu).unwrap();
    let embedder = model.embedder().clone();
    ctx.register_udf(model.into_udf());
    for (table, columns) in [
        ("computed", "id BIGINT, text VARCHAR"),
        ("plain", "id BIGINT, text VARCHAR, embedding FLOAT[384]"),
    ] {
        sql(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE {table} ({columns}) STORED AS VECFUSION LOCATION '{}'",
                dir.path().join(table).display()
            ),
        )
        .await;
    }
    sql(
        &ctx,
        "ALTER TABLE computed ADD COLUMN embedding FLOAT[384] AS (minilm(text))",
    )
    .await;
    let chunk = vecfusion::embed::CHUNK_ROWS as u64;
    let rows = 16 * chunk;
    let source = format!("FROM generate_series(1, {rows})");
    let text = "'document number ' || value";
    let explicit = format!("INSERT INTO plain SELECT value, {text}, minilm({text}) {source}");
    // The projection's model call runs ahead of it, a model batch at a time.
    let plan = explain(&ctx, &explicit).await;
    assert!(plan.contains("ModelCallsExec"), "{plan}");
    for (table, statement) in [
        (
            "computed",
            format!("INSERT INTO computed (id, text) SELECT value, {text} {source}"),
        ),
        ("plain", explicit),
    ] {
        let (at_cancel, settled) = cancel_after_one_chunk(&ctx, &embedder, statement).await;
        assert!(
            settled <= at_cancel + chunk,
            "{table}: {settled} texts embedded after cancelling at {at_cancel}"
        );
        assert!(settled < rows, "{table}: every row was embedded");
        let count = format!("SELECT count(*) FROM {table}");
        let count = crate::common::scalar_i64(&ctx, &count).await;
        assert_eq!(count, 0, "{table}: a cancelled INSERT wrote rows");
    }
}

/// 100 texts (Python standard-library docstrings, PSF license; five longer than the model's
/// 256 tokens) embedded by candle agree with sentence-transformers on PyTorch, whose vectors
/// `scripts/embedding-reference.py` stored in `tests/data/minilm-reference.json`.
#[test]
fn embeddings_of_100_texts_agree_with_sentence_transformers() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm-reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let texts: Vec<&str> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let expected: Vec<Vec<f32>> = reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(texts.len(), 100);
    let long = reference["token_counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.as_u64().unwrap() > 256)
        .count();
    assert!(long >= 3, "the reference exercises truncation");

    let f = EmbeddingFunction::load("minilm", minilm_dir(), AcceleratorRequest::Cpu).unwrap();
    let ours = f.embedder().embed(&texts).unwrap();
    let dim = f.embedder().dim();
    assert_eq!(ours.len(), 100 * dim);
    let mut worst = (1.0f32, 0usize);
    for (i, (mine, theirs)) in ours.chunks(dim).zip(&expected).enumerate() {
        let dot: f32 = mine.iter().zip(theirs).map(|(a, b)| a * b).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cosine = dot / (norm(mine) * norm(theirs));
        if cosine < worst.0 {
            worst = (cosine, i);
        }
    }
    assert!(
        worst.0 >= 0.999,
        "text {} has cosine {} with the reference: {:?}",
        worst.1,
        worst.0,
        texts[worst.1]
    );
}
