//! `vecfusion_versions('table' | 'path')`: the history of a dataset, one row per version.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::plan_err;
use datafusion::error::Result;

use super::computed::ComputedTable;
use super::lookup::{DatasetArg, resolve_dataset_arg, string_arg};

const USAGE: &str = "vecfusion_versions('table name or dataset path')";

#[derive(Debug, Default)]
pub struct VersionsFunction;

impl TableFunctionImpl for VersionsFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let [arg] = args.exprs() else {
            return plan_err!("{USAGE}: expected one argument");
        };
        let name = string_arg(arg, USAGE, "the argument")?;
        let target = resolve_dataset_arg(args.session(), &name, USAGE)?;
        Ok(Arc::new(ComputedTable::new(
            "vecfusion_versions",
            versions_schema(),
            move || Box::pin(history(target.clone())),
        )))
    }
}

fn versions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("version", DataType::UInt64, false),
        Field::new(
            "committed_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("operation", DataType::Utf8, false),
        Field::new("rows_added", DataType::UInt64, false),
        Field::new("rows_deleted", DataType::UInt64, false),
        Field::new("total_rows", DataType::UInt64, false),
        Field::new("fragments", DataType::UInt64, false),
        Field::new("indexes", DataType::Utf8, false),
    ]))
}

/// One row per version of `target`.
async fn history(target: DatasetArg) -> Result<RecordBatch> {
    let history = target.dataset().await?.history().await?;
    Ok(RecordBatch::try_new(
        versions_schema(),
        vec![
            Arc::new(UInt64Array::from_iter_values(
                history.iter().map(|m| m.version),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(history.iter().map(|m| m.timestamp_ms))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                history.iter().map(|m| m.operation.kind.as_str()),
            )),
            Arc::new(UInt64Array::from_iter_values(
                history.iter().map(|m| m.operation.rows_added),
            )),
            Arc::new(UInt64Array::from_iter_values(
                history.iter().map(|m| m.operation.rows_deleted),
            )),
            Arc::new(UInt64Array::from_iter_values(
                history.iter().map(|m| m.live_rows()),
            )),
            Arc::new(UInt64Array::from_iter_values(
                history.iter().map(|m| m.fragments.len() as u64),
            )),
            Arc::new(StringArray::from_iter_values(history.iter().map(|m| {
                m.indexes
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            }))),
        ],
    )?)
}
