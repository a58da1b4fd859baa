//! Helpers shared by the integration tests.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use vecfusion::{VecfusionContext, new_session_context};

/// Runs one statement and collects its result.
pub async fn sql(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    match ctx.vf_sql(sql).await {
        Ok(df) => df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}")),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// `EXPLAIN query`, as the text the shell prints.
pub async fn explain(ctx: &SessionContext, query: &str) -> String {
    let plan = sql(ctx, &format!("EXPLAIN {query}")).await;
    datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string()
}

/// Runs one statement that must fail, returning the error text.
pub async fn sql_err(ctx: &SessionContext, sql: &str) -> String {
    match ctx.vf_sql(sql).await {
        Ok(df) => match df.collect().await {
            Ok(_) => panic!("{sql}: expected an error"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

/// The single Int64 value of a one-row, one-column result (e.g. `count(*)`).
pub async fn scalar_i64(ctx: &SessionContext, query: &str) -> i64 {
    let batches = sql(ctx, query).await;
    let col = batches[0].column(0);
    match col.data_type() {
        datafusion::arrow::datatypes::DataType::Int64 => col.as_primitive::<Int64Type>().value(0),
        datafusion::arrow::datatypes::DataType::UInt64 => col
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0) as i64,
        other => panic!("{query}: unexpected type {other}"),
    }
}

/// All Int64 values of the first column, in result order.
pub async fn column_i64(ctx: &SessionContext, query: &str) -> Vec<i64> {
    sql(ctx, query)
        .await
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_primitive::<Int64Type>();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

/// A fresh session with a dataset `t (id BIGINT, embedding FLOAT[dim])` at `dir`.
pub async fn table_at(dir: &std::path::Path, dim: usize) -> SessionContext {
    let ctx = new_session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[{dim}]) STORED AS VECFUSION \
             LOCATION '{}'",
            dir.display()
        ),
    )
    .await;
    ctx
}

/// A fresh session with the existing dataset at `dir` registered as table `name`.
pub async fn open_table(dir: &std::path::Path, name: &str) -> SessionContext {
    let ctx = new_session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE {name} STORED AS VECFUSION LOCATION '{}'",
            dir.display()
        ),
    )
    .await;
    ctx
}

/// Runs one statement and collects its result, or returns the error text.
pub async fn try_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.vf_sql(sql).await {
        Ok(df) => df.collect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Copies the directory tree `from` to `to` (created).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
