//! Shared by the unit tests: real sessions over real datasets in temporary directories.

use std::path::Path;

use datafusion::prelude::SessionContext;

use crate::dataset::{Dataset, DatasetLocation};
use crate::{VecfusionContext, new_session_context};

/// A vecfusion session after running `statements` in order (each must succeed).
pub async fn session_after(statements: &[String]) -> SessionContext {
    let ctx = new_session_context();
    for sql in statements {
        let df = ctx
            .vf_sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    ctx
}

/// `CREATE EXTERNAL TABLE t (columns) STORED AS VECFUSION LOCATION 'dir'`.
pub fn create_table(dir: &Path, columns: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE t ({columns}) STORED AS VECFUSION LOCATION '{}'",
        dir.display()
    )
}

/// The latest version of the dataset at `dir`.
pub async fn latest(dir: &Path) -> Dataset {
    Dataset::open(DatasetLocation::local(dir).unwrap())
        .await
        .unwrap()
}
