//! Random access: rows by address, without scanning.
//!
//! An address names a fragment and a row offset; the offset names the record batch
//! (`offset / rows_per_batch`). Each needed batch is decoded once (zero-copy from the mapped
//! file, so only the touched pages are read) and the rows are gathered in the requested order
//! with arrow's `interleave`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::interleave;
use datafusion::error::{DataFusionError, Result};

use super::{Dataset, RowAddress, split_row_address};

impl Dataset {
    /// The rows at `addresses`, in that order, with the columns in `projection` (all columns
    /// when `None`). Deleted rows are returned too: callers that must hide them (queries)
    /// filter addresses against the deletion vectors first.
    pub async fn take(
        &self,
        addresses: &[RowAddress],
        projection: Option<&[usize]>,
    ) -> Result<RecordBatch> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema().project(p)?),
            None => self.schema().clone(),
        };
        let fragments: HashMap<u32, _> = self.fragments().iter().map(|f| (f.id, f)).collect();
        // (fragment, batch) -> slot in `batches`
        let mut slots: HashMap<(u32, usize), usize> = HashMap::new();
        let mut batches: Vec<RecordBatch> = vec![];
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(addresses.len());
        for &addr in addresses {
            let (frag_id, offset) = split_row_address(addr);
            let frag = fragments.get(&frag_id).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "row address {addr:#x} names fragment {frag_id}, which version {} of {} \
                     does not have",
                    self.version(),
                    self.uri()
                ))
            })?;
            if offset as u64 >= frag.physical_rows {
                return Err(DataFusionError::Execution(format!(
                    "row address {addr:#x}: fragment {frag_id} has only {} rows",
                    frag.physical_rows
                )));
            }
            let batch_idx = offset as usize / frag.rows_per_batch as usize;
            let slot = match slots.get(&(frag_id, batch_idx)) {
                Some(s) => *s,
                None => {
                    let reader = self.fragment_reader(frag).await?;
                    batches.push(reader.read_batch(batch_idx, projection)?);
                    slots.insert((frag_id, batch_idx), batches.len() - 1);
                    batches.len() - 1
                }
            };
            picks.push((slot, offset as usize % frag.rows_per_batch as usize));
        }
        let columns = (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn datafusion::arrow::array::Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, &picks)
            })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(addresses.len()));
        Ok(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?)
    }
}
