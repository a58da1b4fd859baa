//! `vecfusion_cleanup('table or path' [, min_age_seconds])`: removes files no version refers
//! to — what an interrupted INSERT or a killed index build leaves behind — and lists them.
//!
//! Only files older than `min_age_seconds` (default one hour) are removed, so files a writer
//! is still producing (not yet committed) are left alone. Every version's manifest is read,
//! so time travel keeps working for all versions.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, exec_datafusion_err, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::dataset::files;

use super::computed::ComputedTable;
use super::lookup::{DatasetArg, resolve_dataset_arg, string_arg};

const USAGE: &str = "vecfusion_cleanup('table name or dataset path' [, min_age_seconds])";

#[derive(Debug, Default)]
pub struct CleanupFunction;

impl TableFunctionImpl for CleanupFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (target, min_age) = match args.exprs() {
            [t] => (t, 3600),
            [t, Expr::Literal(ScalarValue::Int64(Some(s)), _)] => match u64::try_from(*s) {
                Ok(age) => (t, age),
                Err(_) => {
                    return plan_err!(
                        "{USAGE}: min_age_seconds must be 0 or more (got {s}); 0 removes every \
                         unreferenced file, including those of writes still running"
                    );
                }
            },
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

/// Removes the unreferenced files of `target` older than `min_age` seconds: only files named
/// as this dataset's writers name them, directly inside its own directories
/// (`dataset::files`), and, for local datasets, the staging files of interrupted writes.
async fn cleanup(target: DatasetArg, min_age: u64) -> Result<RecordBatch> {
    let dataset = target.dataset().await?;
    let mut referenced = HashSet::new();
    // A version whose manifest cannot be read fails the history: nothing is removed when
    // what some version refers to is unknown.
    for m in dataset.history().await? {
        referenced.extend(m.files().map(str::to_string));
    }
    let location = dataset.location();
    // An age beyond the clock's range means no file is old enough.
    let cutoff = chrono::Duration::try_seconds(i64::try_from(min_age).unwrap_or(i64::MAX))
        .and_then(|age| chrono::Utc::now().checked_sub_signed(age));
    let staging_cutoff = SystemTime::now().checked_sub(Duration::from_secs(min_age));
    let (mut names, mut sizes) = (vec![], vec![]);
    for dir in files::DATA_DIRS {
        let listed = match location
            .store
            .list_with_delimiter(Some(&location.path(dir)))
            .await
        {
            Ok(listed) => listed.objects,
            Err(object_store::Error::NotFound { .. }) => vec![],
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        };
        for o in listed {
            let Some(file) = o.location.filename() else {
                continue;
            };
            let relative = format!("{dir}/{file}");
            let old_enough = cutoff.is_some_and(|c| o.last_modified <= c);
            if !files::is_writer_file(dir, file) || referenced.contains(&relative) || !old_enough {
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
        // The store's listing hides staging files, so they are found on the file system.
        if let (Some(dir_path), Some(cutoff)) = (location.local_path(dir), staging_cutoff) {
            for (file, bytes) in remove_staging_files(&dir_path, dir, cutoff)? {
                names.push(format!("{dir}/{file}"));
                sizes.push(bytes);
            }
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

/// Removes the staging files of interrupted writes in the local directory `path` (the
/// dataset's `dir`) last modified before `cutoff`; returns their names and sizes.
fn remove_staging_files(
    path: &std::path::Path,
    dir: &str,
    cutoff: SystemTime,
) -> Result<Vec<(String, u64)>> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(exec_datafusion_err!("cannot list {}: {e}", path.display())),
    };
    let mut removed = vec![];
    for entry in entries {
        let entry =
            entry.map_err(|e| exec_datafusion_err!("cannot list {}: {e}", path.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !files::is_staging_file(dir, &name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || meta.modified().map_or(true, |m| m > cutoff) {
            continue;
        }
        std::fs::remove_file(entry.path())
            .map_err(|e| exec_datafusion_err!("cannot remove {}: {e}", entry.path().display()))?;
        removed.push((name, meta.len()));
    }
    Ok(removed)
}
