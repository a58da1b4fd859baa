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

use super::conform::conform_batch;
use crate::dataset::{Dataset, Operation};

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
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mut writer = self.dataset.fragment_writer()?;
        // The data file is written completely before the manifest that references it; a
        // failure (or a kill) before the commit leaves only an unreferenced file.
        let written: Result<()> = async {
            while let Some(batch) = data.next().await {
                let batch = conform_batch(&batch?, &self.schema)?;
                writer.write(batch).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            writer.abort().await;
            return Err(e);
        }
        let Some(fragment) = writer.finish().await? else {
            return Ok(0);
        };
        let rows = fragment.physical_rows;
        self.dataset
            .commit(&Operation::Append {
                fragments: vec![fragment],
            })
            .await?;
        Ok(rows)
    }
}
