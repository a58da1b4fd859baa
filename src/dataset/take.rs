//! Random access: rows by address, without scanning.
//!
//! An address names a fragment and a row offset; the offset names the record batch
//! (`offset / rows_per_batch`). Each fragment's columns are decoded once per dataset handle
//! (zero-copy from the mapped file, so only touched pages are read) and cached; taking rows is
//! then arrow's `interleave` over the batches that hold them, in the requested order.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::interleave;
use datafusion::common::{exec_datafusion_err, exec_err};
use datafusion::error::Result;

use super::{Dataset, FragmentReader, RowAddress, split_row_address};

impl Dataset {
    /// The rows at `addresses`, in that order, with the columns in `projection` (all columns
    /// when `None`). Deleted rows are returned too: callers that must hide them (queries)
    /// filter addresses against the deletion vectors first.
    pub async fn take(
        &self,
        addresses: &[RowAddress],
        projection: Option<&[usize]>,
    ) -> Result<RecordBatch> {
        let all: Vec<usize>;
        let projection = match projection {
            Some(p) => p,
            None => {
                all = (0..self.schema().fields().len()).collect();
                &all
            }
        };
        let schema = Arc::new(self.schema().project(projection)?);
        let mut readers: HashMap<u32, Arc<FragmentReader>> = HashMap::new();
        // (fragment, batch) -> slot; picks are (slot, row in batch).
        let mut slots: HashMap<(u32, usize), usize> = HashMap::new();
        let mut slot_keys: Vec<(u32, usize)> = vec![];
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(addresses.len());
        for &addr in addresses {
            let (frag_id, offset) = split_row_address(addr);
            let frag = self.fragment(frag_id).ok_or_else(|| {
                exec_datafusion_err!(
                    "row address {addr:#x} names fragment {frag_id}, which version {} of {} \
                     does not have",
                    self.version(),
                    self.uri()
                )
            })?;
            if offset as u64 >= frag.physical_rows {
                return exec_err!(
                    "row address {addr:#x}: fragment {frag_id} has only {} rows",
                    frag.physical_rows
                );
            }
            if let std::collections::hash_map::Entry::Vacant(e) = readers.entry(frag_id) {
                e.insert(self.fragment_reader(frag).await?);
            }
            let rpb = frag.rows_per_batch as usize;
            let key = (frag_id, offset as usize / rpb);
            let slot = *slots.entry(key).or_insert_with(|| {
                slot_keys.push(key);
                slot_keys.len() - 1
            });
            picks.push((slot, offset as usize % rpb));
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(projection.len());
        for (i, &c) in projection.iter().enumerate() {
            if addresses.is_empty() {
                columns.push(datafusion::arrow::array::new_empty_array(
                    schema.field(i).data_type(),
                ));
                continue;
            }
            let per_fragment: HashMap<u32, Arc<Vec<ArrayRef>>> = readers
                .iter()
                .map(|(id, r)| Ok((*id, r.column_batches(c)?)))
                .collect::<Result<_>>()?;
            let arrays: Vec<&dyn Array> = slot_keys
                .iter()
                .map(|(f, b)| per_fragment[f][*b].as_ref())
                .collect();
            columns.push(interleave(&arrays, &picks)?);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(addresses.len()));
        Ok(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?)
    }
}
