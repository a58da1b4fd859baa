//! Segment files: the partition lists (row addresses and codes) of a set of fragments,
//! encoded with one model.
//!
//! An index is one model plus any number of segments over disjoint fragment sets; a search
//! probes a partition in every segment. Segments are written by a build or an `OPTIMIZE
//! VECTOR INDEX` (nothing is committed by writing one) and are immutable afterwards.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::common::exec_err;
use datafusion::error::Result;

use super::file::{IndexFile, IndexHeader, IndexWriter};
use super::model::IndexModel;
use crate::dataset::DatasetLocation;
use crate::quantizer::Quantizer;

/// Writes one segment file, partition by partition (0, 1, ... in order).
pub struct SegmentWriter {
    writer: IndexWriter,
    header: IndexHeader,
    next: usize,
}

impl SegmentWriter {
    pub async fn create(
        location: &DatasetLocation,
        file: &str,
        model: &IndexModel,
    ) -> Result<Self> {
        Ok(Self {
            writer: IndexWriter::create(location, file).await?,
            header: model.header(),
            next: 0,
        })
    }

    /// Writes the next partition's rows: their addresses and codes (`code_size` bytes each).
    pub async fn partition(&mut self, addresses: &[u64], codes: &[u8]) -> Result<()> {
        if self.next >= self.header.num_partitions
            || Some(codes.len()) != addresses.len().checked_mul(self.header.code_size)
        {
            return exec_err!(
                "segment partition {} of {}: {} codes for {} rows of {} bytes",
                self.next,
                self.header.num_partitions,
                codes.len(),
                addresses.len(),
                self.header.code_size
            );
        }
        self.next += 1;
        self.writer.partition(addresses, codes).await
    }

    /// Completes the file (every partition must have been written). Returns its size.
    pub async fn finish(self) -> Result<u64> {
        if self.next != self.header.num_partitions {
            self.writer.abort().await;
            return exec_err!(
                "segment finished after {} of {} partitions",
                self.next,
                self.header.num_partitions
            );
        }
        self.writer.finish(self.header).await
    }

    /// Drops a partly written file.
    pub async fn abort(self) {
        self.writer.abort().await
    }
}

/// An opened segment file.
#[derive(Debug)]
pub struct SegmentFile {
    file: Arc<IndexFile>,
    /// The model's quantizer, which arranges each partition's codes for its scan.
    quantizer: Arc<dyn Quantizer>,
    /// Per partition, its codes as the quantizer scans them, arranged on first read.
    arranged: Vec<OnceLock<Buffer>>,
}

impl SegmentFile {
    /// Opens segment `file` and checks that it was encoded with `model`.
    pub async fn open(location: &DatasetLocation, file: &str, model: &IndexModel) -> Result<Self> {
        let file = IndexFile::open(location, file).await?;
        let h = &file.header;
        let id = h.model_id.as_deref().unwrap_or_default();
        if !file.has_partitions() && h.num_partitions > 0 {
            return exec_err!(
                "index file {} holds no partitions; it is not a segment",
                file.name()
            );
        }
        if id != model.id
            || h.kind != model.kind()
            || h.dim != model.dim()
            || h.num_partitions != model.num_partitions
            || h.code_size != model.code_size()
        {
            return exec_err!(
                "segment {} was not encoded with model '{}' of this index (it names model '{id}', \
                 {} {}×{}); the index is inconsistent: rebuild it with CREATE VECTOR INDEX ... \
                 WITH (replace = true)",
                file.name(),
                model.id,
                h.kind.name(),
                h.num_partitions,
                h.dim
            );
        }
        let arranged = (0..h.num_partitions).map(|_| OnceLock::new()).collect();
        Ok(Self {
            file,
            quantizer: model.quantizer.clone(),
            arranged,
        })
    }

    pub fn rows(&self) -> u64 {
        self.file.header.rows
    }

    pub fn partition_rows(&self, partition: usize) -> u64 {
        self.file.partition_rows(partition)
    }

    /// Row addresses and codes of one partition as stored: row-major, `code_size` bytes per
    /// row (checksum verified on first access).
    pub fn partition(&self, partition: usize) -> Result<(ScalarBuffer<u64>, Buffer)> {
        self.file.partition(partition)
    }

    /// Row addresses of one partition and its codes as the model's quantizer scans them
    /// ([`Quantizer::arrange`]): arranged once, on the first search that reads the
    /// partition, and kept with the opened segment.
    pub fn scan_partition(&self, partition: usize) -> Result<(ScalarBuffer<u64>, Buffer)> {
        let (addrs, codes) = self.file.partition(partition)?;
        let Some(slot) = self.arranged.get(partition) else {
            return Ok((addrs, codes));
        };
        let codes = slot.get_or_init(|| self.quantizer.arrange(codes)).clone();
        Ok((addrs, codes))
    }
}
