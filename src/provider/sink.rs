//! `INSERT INTO`: the rows of one statement become one new fragment and one new version.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use super::conform::{conform_batch, name_not_null_violation};
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
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let batches = data.map(move |batch| {
            conform_batch(
                &batch.map_err(|e| name_not_null_violation(e, &columns))?,
                &schema,
            )
        });
        Ok(self.dataset.append(batches).await?.rows)
    }
}
