//! The table every benchmark works on: `t`, a vecfusion dataset registered in a fresh session.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use vecfusion::{VecfusionContext, new_session_context};

/// Runs one statement and collects its result.
pub async fn sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    ctx.vf_sql(sql).await?.collect().await
}

/// A session with table `t` on the dataset at `path`: opened as it is when `columns` is
/// `None`, created with those columns (e.g. `id BIGINT, embedding FLOAT[128]`) otherwise.
pub async fn session_with_table(path: &Path, columns: Option<&str>) -> Result<SessionContext> {
    let ctx = new_session_context();
    let columns = columns.map(|c| format!("({c})")).unwrap_or_default();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t {columns} STORED AS VECFUSION LOCATION '{}'",
            path.display()
        ),
    )
    .await?;
    Ok(ctx)
}
