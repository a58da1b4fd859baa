//! `vecfusion_cleanup('table or path' [, min_age_seconds])`: removes files no version refers
//! to — what an interrupted INSERT or a killed index build leaves behind — and lists them.
//!
//! Only files older than `min_age_seconds` (default one hour) are removed, so files a writer
//! is still producing (not yet committed) are left alone. Every version's manifest is read,
//! so time travel keeps working for all versions.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::computed::ComputedTable;
use super::lookup::{DatasetArg, resolve_dataset_arg, string_arg};

const USAGE: &str = "vecfusion_cleanup('table name or dataset path' [, min_age_seconds])";

#[derive(Debug, Default)]
pub struct CleanupFunction;

impl TableFunctionImpl for CleanupFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (target, min_age) = match args.exprs() {
            [t] => (t, 3600),
            [t, Expr::Literal(ScalarValue::Int64(Some(s)), _)] if *s >= 0 => (t, *s as u64),
            _ => return plan_err!("{USAGE}: expected a table and an optional age in seconds"),
        };
        let name = string_arg(target, USAGE, "the first argument")?;
        let target = resolve_dataset_arg(args.session(), &name, USAGE)?;
        Ok(Arc::new(ComputedTable::new(
            "vecfusion_cleanup",
            schema(),
            move || Box::pin(cleanup(target.clone(), min_age)),
        )))
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("removed_file", DataType::Utf8, false),
        Field::new("bytes", DataType::UInt64, false),
    ]))
}

/// Removes the unreferenced files of `target` older than `min_age` seconds.
async fn cleanup(target: DatasetArg, min_age: u64) -> Result<RecordBatch> {
    let dataset = target.dataset().await?;
    let mut referenced = HashSet::new();
    for m in dataset.history().await? {
        for f in &m.fragments {
            referenced.insert(f.file.clone());
            if let Some(d) = &f.deletion {
                referenced.insert(d.file.clone());
            }
        }
        for i in &m.indexes {
            referenced.extend(i.files().map(str::to_string));
        }
    }
    let location = dataset.location();
    let cutoff = chrono::Utc::now() - chrono::Duration::seconds(min_age as i64);
    let (mut names, mut sizes) = (vec![], vec![]);
    for dir in ["data", "_deletions", "_indexes"] {
        let prefix = location.path(dir);
        let objects: Vec<_> = location
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        for o in objects {
            let Some(file) = o.location.filename() else {
                continue;
            };
            let relative = format!("{dir}/{file}");
            if referenced.contains(&relative) || o.last_modified > cutoff {
                continue;
            }
            location
                .store
                .delete(&o.location)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            names.push(relative);
            sizes.push(o.size);
        }
    }
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(UInt64Array::from(sizes)),
        ],
    )?)
}
