//! The container every index file uses (documented in `docs/INDEX_FORMAT.md`): named,
//! checksummed `f32` sections, optional partition blocks, a JSON header and a footer.
//!
//! ```text
//! "VFINDEX1"                                   8-byte magic
//! sections                  named f32 arrays   every section and block starts 64-byte aligned
//! partition blocks          for each partition: rows × u64 row addresses, then rows × code
//! section "partition_table" k × (u64 offset, u64 rows, u32 crc32, u32 0)
//! header                    JSON: kind, metric, dims, code size, model id, sections
//! footer                    u64 header length, u32 header crc32, u32 format version, "VFIDXEND"
//! ```
//!
//! A model file (`super::model`) has sections and no partitions; a segment file
//! (`super::segment`) has partitions and no sections; a format-1 file has both. A partition
//! is one contiguous block, so a query reads (or maps) only the partitions it probes; each
//! block has its own CRC-32, checked the first time it is read, and the header and sections
//! are checked when the file is opened. Little-endian throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use datafusion::arrow::buffer::{Buffer, MutableBuffer, ScalarBuffer};
use datafusion::common::{exec_datafusion_err, exec_err, internal_datafusion_err};
use datafusion::error::{DataFusionError, Result};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::dataset::DatasetLocation;
use crate::metric::Metric;
use crate::quantizer::IndexKind;

pub const MAGIC: &[u8; 8] = b"VFINDEX1";
pub const END_MAGIC: &[u8; 8] = b"VFIDXEND";
/// 1: one file per index (model and partitions together). 2: a model file plus segment
/// files. Readers open both.
pub const FORMAT_VERSION: u32 = 2;
const PARTITION_TABLE: &str = "partition_table";
const ALIGN: u64 = 64;
const FOOTER_LEN: usize = 24;
const TABLE_ENTRY: usize = 24;

/// Where a section lies in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionMeta {
    pub name: String,
    pub offset: u64,
    pub len: u64,
    pub crc32: u32,
}

/// The header, stored as JSON near the end of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexHeader {
    pub format_version: u32,
    pub kind: IndexKind,
    pub metric: Metric,
    pub dim: usize,
    pub num_partitions: usize,
    pub num_sub_vectors: usize,
    pub num_bits: u32,
    /// Bytes of one row's code (FLAT: dim × 4, SQ: dim, PQ: num_sub_vectors).
    pub code_size: usize,
    pub rows: u64,
    pub sections: Vec<SectionMeta>,
    /// The model this file is (a model file) or was encoded with (a segment file). Absent in
    /// format-1 files, which are their own model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// A partition's place in the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionEntry {
    pub offset: u64,
    pub rows: u64,
    pub crc32: u32,
}

fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Streams an index file into the dataset's store.
pub struct IndexWriter {
    upload: BufWriter,
    pos: u64,
    sections: Vec<SectionMeta>,
    partitions: Vec<PartitionEntry>,
}

impl IndexWriter {
    pub async fn create(location: &DatasetLocation, file: &str) -> Result<Self> {
        let mut w = Self {
            upload: BufWriter::new(location.store.clone(), location.path(file)),
            pos: 0,
            sections: vec![],
            partitions: vec![],
        };
        w.write(MAGIC).await?;
        Ok(w)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.upload
            .write_all(bytes)
            .await
            .map_err(|e| exec_datafusion_err!("writing index file: {e}"))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    async fn align(&mut self) -> Result<()> {
        let pad = (ALIGN - self.pos % ALIGN) % ALIGN;
        self.write(&vec![0u8; pad as usize]).await
    }

    /// Writes a named section.
    pub async fn section(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.align().await?;
        self.sections.push(SectionMeta {
            name: name.into(),
            offset: self.pos,
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        });
        self.write(bytes).await
    }

    /// Writes the next partition's block (partitions must come in order 0, 1, ...).
    pub async fn partition(&mut self, addresses: &[u64], codes: &[u8]) -> Result<()> {
        self.align().await?;
        let mut block = Vec::with_capacity(addresses.len() * 8 + codes.len());
        for a in addresses {
            block.extend_from_slice(&a.to_le_bytes());
        }
        block.extend_from_slice(codes);
        self.partitions.push(PartitionEntry {
            offset: self.pos,
            rows: addresses.len() as u64,
            crc32: crc32fast::hash(&block),
        });
        self.write(&block).await
    }

    /// Writes the partition table (when partitions were written), header and footer, and
    /// completes the upload. Returns the file size.
    pub async fn finish(mut self, mut header: IndexHeader) -> Result<u64> {
        if !self.partitions.is_empty() {
            let mut table = Vec::with_capacity(self.partitions.len() * TABLE_ENTRY);
            for p in &self.partitions {
                table.extend_from_slice(&p.offset.to_le_bytes());
                table.extend_from_slice(&p.rows.to_le_bytes());
                table.extend_from_slice(&p.crc32.to_le_bytes());
                table.extend_from_slice(&0u32.to_le_bytes());
            }
            self.section(PARTITION_TABLE, &table).await?;
        }
        header.sections = std::mem::take(&mut self.sections);
        header.rows = self.partitions.iter().map(|p| p.rows).sum();
        let json = serde_json::to_vec(&header)
            .map_err(|e| internal_datafusion_err!("index header: {e}"))?;
        self.write(&json).await?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&(json.len() as u64).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        footer.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        footer.extend_from_slice(END_MAGIC);
        self.write(&footer).await?;
        self.upload
            .shutdown()
            .await
            .map_err(|e| exec_datafusion_err!("writing index file: {e}"))?;
        Ok(self.pos)
    }

    /// Drops a partly written file.
    pub async fn abort(mut self) {
        let _ = self.upload.abort().await;
    }
}

/// An opened index file: one buffer (memory-mapped when local), the header, the partition
/// table, and which partitions' checksums were verified.
#[derive(Debug)]
pub struct IndexFile {
    name: String,
    data: Buffer,
    pub header: IndexHeader,
    table: Vec<PartitionEntry>,
    verified: Vec<AtomicBool>,
}

impl IndexFile {
    pub async fn open(location: &DatasetLocation, file: &str) -> Result<Arc<Self>> {
        let name = format!("{}/{file}", location.uri);
        let data = match location.local_path(file) {
            Some(path) => {
                let f = std::fs::File::open(&path)
                    .map_err(|e| exec_datafusion_err!("cannot open index file {name}: {e}"))?;
                // SAFETY: index files are immutable once committed.
                let map = unsafe { memmap2::Mmap::map(&f) }
                    .map_err(|e| exec_datafusion_err!("cannot map {name}: {e}"))?;
                Buffer::from(Bytes::from_owner(map))
            }
            None => {
                let bytes = location
                    .store
                    .get(&location.path(file))
                    .await
                    .map_err(store_err)?
                    .bytes()
                    .await
                    .map_err(store_err)?;
                // Typed views need aligned memory; a downloaded buffer may not be.
                let mut aligned = MutableBuffer::new(bytes.len());
                aligned.extend_from_slice(&bytes);
                aligned.into()
            }
        };
        Ok(Arc::new(Self::parse(name, data)?))
    }

    fn parse(name: String, data: Buffer) -> Result<Self> {
        let label = name.clone();
        let corrupt = |why: &str| {
            exec_datafusion_err!(
                "index file {label} is corrupted or not a vecfusion index: {why}; drop the index \
                 (DROP VECTOR INDEX) and build it again"
            )
        };
        let len = data.len();
        if len < MAGIC.len() + FOOTER_LEN || &data[..8] != MAGIC || &data[len - 8..] != END_MAGIC {
            return Err(corrupt("missing magic bytes"));
        }
        let footer = &data[len - FOOTER_LEN..];
        let header_len = u64::from_le_bytes(footer[..8].try_into().expect("8")) as usize;
        let header_crc = u32::from_le_bytes(footer[8..12].try_into().expect("4"));
        let version = u32::from_le_bytes(footer[12..16].try_into().expect("4"));
        if version > FORMAT_VERSION {
            return exec_err!(
                "index file {name} has format {version}, newer than this vecfusion reads \
                 ({FORMAT_VERSION}); upgrade vecfusion"
            );
        }
        if header_len
            .checked_add(FOOTER_LEN + MAGIC.len())
            .is_none_or(|n| n > len)
        {
            return Err(corrupt("header length out of range"));
        }
        let json = &data[len - FOOTER_LEN - header_len..len - FOOTER_LEN];
        if crc32fast::hash(json) != header_crc {
            return Err(corrupt("header checksum mismatch"));
        }
        let header: IndexHeader =
            serde_json::from_slice(json).map_err(|e| corrupt(&format!("header: {e}")))?;
        let header_start = (len - FOOTER_LEN - header_len) as u64;
        for s in &header.sections {
            let end = s.offset.checked_add(s.len);
            if !s.offset.is_multiple_of(ALIGN) || end.is_none_or(|end| end > header_start) {
                return Err(corrupt(&format!("section {} out of range", s.name)));
            }
            let bytes = &data[s.offset as usize..(s.offset + s.len) as usize];
            if crc32fast::hash(bytes) != s.crc32 {
                return Err(corrupt(&format!("section {} checksum mismatch", s.name)));
            }
        }
        let mut file = Self {
            name,
            data,
            header,
            table: vec![],
            verified: vec![],
        };
        if !file
            .header
            .sections
            .iter()
            .any(|s| s.name == PARTITION_TABLE)
        {
            return Ok(file);
        }
        let table = file.section_bytes(PARTITION_TABLE)?;
        if file.header.num_partitions.checked_mul(TABLE_ENTRY) != Some(table.len()) {
            return Err(corrupt("partition table size"));
        }
        let entries: Vec<PartitionEntry> = table
            .chunks_exact(TABLE_ENTRY)
            .map(|e| PartitionEntry {
                offset: u64::from_le_bytes(e[..8].try_into().expect("8")),
                rows: u64::from_le_bytes(e[8..16].try_into().expect("8")),
                crc32: u32::from_le_bytes(e[16..20].try_into().expect("4")),
            })
            .collect();
        let Some(code) = (file.header.code_size as u64).checked_add(8) else {
            return Err(corrupt("code size"));
        };
        let in_range = |e: &PartitionEntry| {
            e.rows
                .checked_mul(code)
                .and_then(|len| len.checked_add(e.offset))
                .is_some_and(|end| e.offset.is_multiple_of(ALIGN) && end <= header_start)
        };
        if !entries.iter().all(in_range) {
            return Err(corrupt("partition block out of range"));
        }
        file.verified = entries.iter().map(|_| AtomicBool::new(false)).collect();
        file.table = entries;
        Ok(file)
    }

    fn section(&self, name: &str) -> Result<&SectionMeta> {
        self.header
            .sections
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| exec_datafusion_err!("index file {} has no section {name}", self.name))
    }

    fn section_bytes(&self, name: &str) -> Result<&[u8]> {
        let s = self.section(name)?;
        Ok(&self.data[s.offset as usize..(s.offset + s.len) as usize])
    }

    /// A section of `f32` values (centroids, codebooks, bounds), without copying.
    pub fn section_f32(&self, name: &str) -> Result<ScalarBuffer<f32>> {
        let s = self.section(name)?;
        Ok(ScalarBuffer::new(
            self.data
                .slice_with_length(s.offset as usize, s.len as usize),
            0,
            s.len as usize / 4,
        ))
    }

    /// The file's name as error messages show it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the file holds partition blocks (a segment, or a format-1 file).
    pub fn has_partitions(&self) -> bool {
        !self.table.is_empty()
    }

    pub fn partition_rows(&self, partition: usize) -> u64 {
        self.table.get(partition).map_or(0, |e| e.rows)
    }

    /// Row addresses and codes of one partition (checksum verified on first access).
    pub fn partition(&self, partition: usize) -> Result<(ScalarBuffer<u64>, Buffer)> {
        let e = self
            .table
            .get(partition)
            .ok_or_else(|| internal_datafusion_err!("partition {partition} out of range"))?;
        let rows = e.rows as usize;
        let len = rows * (8 + self.header.code_size);
        let block = self.data.slice_with_length(e.offset as usize, len);
        if !self.verified[partition].load(Ordering::Relaxed) {
            if crc32fast::hash(block.as_slice()) != e.crc32 {
                return exec_err!(
                    "index file {} is corrupted: partition {partition} checksum mismatch; drop \
                     the index (DROP VECTOR INDEX) and build it again, or search exactly \
                     meanwhile (SET vecfusion.use_index = false)",
                    self.name
                );
            }
            self.verified[partition].store(true, Ordering::Relaxed);
        }
        let addrs = ScalarBuffer::new(block.slice_with_length(0, rows * 8), 0, rows);
        Ok((addrs, block.slice_with_length(rows * 8, len - rows * 8)))
    }
}
