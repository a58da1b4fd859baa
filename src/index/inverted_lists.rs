//! The inverted lists of an index build (one per IVF partition), with bounded memory.
//!
//! The encode pass produces, for every row, its partition, its row address and its code.
//! Entries are buffered per partition; when the buffers exceed the memory budget they are
//! written as one *run* to a temporary file (each partition's entries contiguous), and the
//! buffers start over. When the index file is written, each partition's entries are read
//! back from every run, in order, then from memory. So a build holds at most the budget in
//! memory whatever the number of rows; an IVF_FLAT index of a billion vectors spills, a
//! small one never touches the disk.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use datafusion::common::exec_datafusion_err;
use datafusion::error::{DataFusionError, Result};

fn io(e: std::io::Error) -> DataFusionError {
    exec_datafusion_err!("index build spill file: {e}")
}

struct Run {
    file: File,
    /// Byte offset of each partition's entries in the run file.
    offsets: Vec<u64>,
    rows: Vec<u64>,
}

/// Accumulates `(partition, row address, code)` entries.
pub struct InvertedLists {
    code_size: usize,
    budget_bytes: usize,
    addrs: Vec<Vec<u64>>,
    codes: Vec<Vec<u8>>,
    buffered_bytes: usize,
    runs: Vec<Run>,
    rows: Vec<u64>,
}

impl InvertedLists {
    pub fn new(num_partitions: usize, code_size: usize, budget_bytes: usize) -> Self {
        Self {
            code_size,
            budget_bytes: budget_bytes.max(1),
            addrs: vec![vec![]; num_partitions],
            codes: vec![vec![]; num_partitions],
            buffered_bytes: 0,
            runs: vec![],
            rows: vec![0; num_partitions],
        }
    }

    pub fn code_size(&self) -> usize {
        self.code_size
    }

    /// Rows per partition so far.
    pub fn partition_rows(&self) -> &[u64] {
        &self.rows
    }

    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// Adds one entry.
    pub fn push(&mut self, partition: usize, address: u64, code: &[u8]) -> Result<()> {
        debug_assert_eq!(code.len(), self.code_size);
        self.addrs[partition].push(address);
        self.codes[partition].extend_from_slice(code);
        self.rows[partition] += 1;
        self.buffered_bytes += 8 + self.code_size;
        if self.buffered_bytes >= self.budget_bytes {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        let file = tempfile::tempfile().map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut offsets = Vec::with_capacity(self.addrs.len());
        let mut rows = Vec::with_capacity(self.addrs.len());
        let mut pos = 0u64;
        for (addrs, codes) in self.addrs.iter_mut().zip(self.codes.iter_mut()) {
            offsets.push(pos);
            rows.push(addrs.len() as u64);
            for a in addrs.iter() {
                out.write_all(&a.to_le_bytes()).map_err(io)?;
            }
            out.write_all(codes).map_err(io)?;
            pos += (addrs.len() * 8 + codes.len()) as u64;
            addrs.clear();
            codes.clear();
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        self.runs.push(Run {
            file,
            offsets,
            rows,
        });
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Reads the partitions back in order, each partition's entries (from every spilled run,
    /// then from memory) ordered by row address.
    pub fn into_drain(self) -> PartitionDrain {
        PartitionDrain {
            lists: self,
            next: 0,
            raw: vec![],
        }
    }
}

/// One partition's entries: `(partition, row addresses, codes)`.
pub type PartitionEntries = (usize, Vec<u64>, Vec<u8>);

/// Iterator-like reader over the partitions of a finished [`InvertedLists`].
pub struct PartitionDrain {
    lists: InvertedLists,
    next: usize,
    raw: Vec<u8>,
}

impl PartitionDrain {
    /// The next partition's `(index, addresses, codes)`, or `None` after the last.
    pub fn next_partition(&mut self) -> Result<Option<PartitionEntries>> {
        let p = self.next;
        let lists = &mut self.lists;
        if p >= lists.addrs.len() {
            return Ok(None);
        }
        self.next += 1;
        let total = lists.rows[p] as usize;
        let mut addrs = Vec::with_capacity(total);
        let mut codes = Vec::with_capacity(total * lists.code_size);
        for run in &mut lists.runs {
            let n = run.rows[p] as usize;
            if n == 0 {
                continue;
            }
            self.raw.resize(n * (8 + lists.code_size), 0);
            run.file.seek(SeekFrom::Start(run.offsets[p])).map_err(io)?;
            run.file.read_exact(&mut self.raw).map_err(io)?;
            let (a, c) = self.raw.split_at(n * 8);
            addrs.extend(
                a.chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
            );
            codes.extend_from_slice(c);
        }
        addrs.append(&mut lists.addrs[p]);
        codes.append(&mut lists.codes[p]);
        let (addrs, codes) = by_address(addrs, codes, lists.code_size);
        Ok(Some((p, addrs, codes)))
    }
}

/// Entries ordered by row address: the order rows arrived in (which depends on how the scan
/// was split) does not change the index, and rows of one fragment are read in file order.
pub fn by_address(addrs: Vec<u64>, codes: Vec<u8>, code_size: usize) -> (Vec<u64>, Vec<u8>) {
    if addrs.is_sorted() {
        return (addrs, codes);
    }
    let mut order: Vec<u32> = (0..addrs.len() as u32).collect();
    order.sort_unstable_by_key(|i| addrs[*i as usize]);
    let mut sorted_codes = Vec::with_capacity(codes.len());
    for i in &order {
        let i = *i as usize;
        sorted_codes.extend_from_slice(&codes[i * code_size..(i + 1) * code_size]);
    }
    let sorted_addrs = order.iter().map(|i| addrs[*i as usize]).collect();
    (sorted_addrs, sorted_codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_and_in_memory_entries_come_back_by_address() {
        // A budget of 5 entries of 10 bytes: 23 entries make 4 runs and a tail; they arrive
        // out of address order.
        let mut lists = InvertedLists::new(3, 2, 50);
        for i in (0..23u64).rev() {
            lists.push((i % 3) as usize, i, &[i as u8, 0xAA]).unwrap();
        }
        assert_eq!(lists.spilled_runs(), 4);
        assert_eq!(lists.partition_rows(), &[8, 8, 7]);
        let mut seen = vec![];
        let mut drain = lists.into_drain();
        while let Some((p, a, c)) = drain.next_partition().unwrap() {
            assert_eq!(c.len(), a.len() * 2);
            for (i, addr) in a.iter().enumerate() {
                assert_eq!(*addr % 3, p as u64);
                assert_eq!(c[2 * i], *addr as u8);
                seen.push(*addr);
            }
            let mut sorted = a.clone();
            sorted.sort();
            assert_eq!(sorted, a);
        }
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
    }
}
