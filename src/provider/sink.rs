//! `INSERT INTO`: the rows of one statement become one new fragment and one new version.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use super::column_values::ComputedColumns;
use super::conform::{conform_batch, name_not_null_violation};
use crate::dataset::Dataset;
use crate::progress::{ProgressHook, report};

#[derive(Debug)]
pub struct VecfusionSink {
    dataset: Dataset,
    schema: SchemaRef,
    computed: ComputedColumns,
}

impl VecfusionSink {
    /// A sink appending to `dataset`, computing the `computed` columns of each row.
    pub fn new(dataset: Dataset, schema: SchemaRef, computed: ComputedColumns) -> Self {
        Self {
            dataset,
            schema,
            computed,
        }
    }

    /// A sink appending rows of a table of `schema` to `dataset`, with the table's computed
    /// columns planned in `state`.
    pub fn for_table(state: &dyn Session, dataset: Dataset, schema: SchemaRef) -> Result<Self> {
        let computed = ComputedColumns::plan(state, &schema)?;
        Ok(Self::new(dataset, schema, computed))
    }

    /// The version the rows are appended to.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
}

impl DisplayAs for VecfusionSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "VecfusionSink: dataset={} (append one fragment)",
            self.dataset.uri()
        )
    }
}

#[async_trait]
impl DataSink for VecfusionSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let schema = self.schema.clone();
        let columns: Arc<[String]> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let computed = self.computed.clone();
        let hook = context.session_config().get_extension::<ProgressHook>();
        let batch_hook = hook.clone();
        let mut written = 0u64;
        // How many rows arrive is not known up front: progress counts rows (total 0).
        let batches = data
            .then(move |batch| {
                let (schema, columns, computed) =
                    (schema.clone(), columns.clone(), computed.clone());
                async move {
                    let batch = conform_batch(
                        &batch.map_err(|e| name_not_null_violation(e, &columns))?,
                        &schema,
                    )?;
                    if computed.is_empty() {
                        Ok(batch)
                    } else {
                        computed.fill_inserted(batch).await
                    }
                }
            })
            .inspect(move |batch| {
                if let Ok(batch) = batch {
                    written += batch.num_rows() as u64;
                    report(batch_hook.as_deref(), "insert", written, 0, "rows");
                }
            });
        let rows = self.dataset.append(batches).await?.rows;
        report(hook.as_deref(), "commit", rows, rows, "rows");
        Ok(rows)
    }
}
