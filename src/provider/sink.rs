//! `INSERT INTO`: the rows of one statement become one new fragment and one new version.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::plan_datafusion_err;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use super::conform::conform_batch;
use crate::dataset::Dataset;

#[derive(Debug)]
pub struct VecfusionSink {
    dataset: Dataset,
    schema: SchemaRef,
}

impl VecfusionSink {
    pub fn new(dataset: Dataset, schema: SchemaRef) -> Self {
        Self { dataset, schema }
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
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let schema = self.schema.clone();
        let batches = data.map(move |batch| {
            conform_batch(&batch.map_err(|e| name_null_column(e, &schema))?, &schema)
        });
        Ok(self.dataset.append(batches).await?.rows)
    }
}

/// DataFusion's insert plan checks NOT NULL columns before rows reach the sink and reports a
/// violation by column position ("Invalid batch column at '0' has null but schema specifies
/// non-nullable"); this names the column instead.
fn name_null_column(e: DataFusionError, schema: &SchemaRef) -> DataFusionError {
    let text = e.to_string();
    let position = text
        .split_once("Invalid batch column at '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .and_then(|(n, rest)| {
            rest.contains("has null but schema specifies non-nullable")
                .then(|| n.parse::<usize>().ok())?
        });
    match position.and_then(|i| schema.fields().get(i)) {
        Some(field) => plan_datafusion_err!(
            "column '{}' is NOT NULL, but the inserted rows have a NULL in it; give every row \
             a value for '{}'",
            field.name(),
            field.name()
        ),
        None => e,
    }
}
