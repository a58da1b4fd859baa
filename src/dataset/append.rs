//! Appending rows: the batches of one write become one new fragment, committed as one version.
//!
//! Every writer of rows (INSERT, Python's `create_dataset`, the benchmark loader) goes through
//! [`Dataset::append`], so all of them keep the same guarantee: the fragment file is written
//! completely before the manifest that references it, a failed write removes its partial file,
//! and a killed one leaves only an unreferenced file that cleanup removes.

use datafusion::arrow::array::RecordBatch;
use datafusion::error::Result;
use futures::{Stream, StreamExt};

use super::{Dataset, Operation};

/// What an append committed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Rows written (0: nothing was committed).
    pub rows: u64,
    /// The new version, or this one when there was nothing to write.
    pub dataset: Dataset,
}

impl Dataset {
    /// Writes `batches` (in the dataset's schema: cast them first, see
    /// `provider::conform_batch`) as one fragment and commits it as an `Append` on top of
    /// this version. An empty input commits nothing.
    pub async fn append(
        &self,
        batches: impl Stream<Item = Result<RecordBatch>> + Send,
    ) -> Result<Appended> {
        let mut writer = self.fragment_writer()?;
        let mut batches = std::pin::pin!(batches);
        let written: Result<()> = async {
            while let Some(batch) = batches.next().await {
                writer.write(batch?).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            writer.abort().await;
            return Err(e);
        }
        let Some(fragment) = writer.finish().await? else {
            return Ok(Appended {
                rows: 0,
                dataset: self.clone(),
            });
        };
        let rows = fragment.physical_rows;
        let dataset = self
            .commit(&Operation::Append {
                fragments: vec![fragment],
            })
            .await?;
        Ok(Appended { rows, dataset })
    }
}
