//! The on-disk index file (documented in `docs/INDEX_FORMAT.md`).
//!
//! ```text
//! "VFINDEX1"                                   8-byte magic
//! section "centroids"       k × dim f32        every section and block starts 64-byte aligned
//! section "pq_codebooks"    m × 2^bits × dim/m f32   (IVF_PQ)
//!      or "sq_bounds"       2 × dim f32 (min, then max)   (IVF_SQ)
//! partition blocks          for each partition: rows × u64 row addresses, then rows × code
//! section "partition_table" k × (u64 offset, u64 rows, u32 crc32, u32 0)
//! header                    JSON: kind, metric, dims, code size, sections (offset, len, crc32)
//! footer                    u64 header length, u32 header crc32, u32 format version, "VFIDXEND"
//! ```
//!
//! A partition is one contiguous block, so a query reads (or maps) only the partitions it
//! probes; each block has its own CRC-32, checked the first time it is read, and the header
//! and small sections are checked when the file is opened. Little-endian throughout.

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

use super::IndexKind;
use crate::dataset::DatasetLocation;
use crate::metric::Metric;

pub const MAGIC: &[u8; 8] = b"VFINDEX1";
pub const END_MAGIC: &[u8; 8] = b"VFIDXEND";
pub const FORMAT_VERSION: u32 = 1;
/// `k × dim` f32: the IVF centroids (every kind).
pub const SECTION_CENTROIDS: &str = "centroids";
/// `m × 2^bits × dim/m` f32: the PQ codebooks (IVF_PQ).
pub const SECTION_PQ_CODEBOOKS: &str = "pq_codebooks";
/// `2 × dim` f32, minimums then maximums: the SQ bounds (IVF_SQ).
pub const SECTION_SQ_BOUNDS: &str = "sq_bounds";
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

    /// Writes the partition table, header and footer, and completes the upload. Returns the
    /// file size.
    pub async fn finish(mut self, mut header: IndexHeader) -> Result<u64> {
        let mut table = Vec::with_capacity(self.partitions.len() * TABLE_ENTRY);
        for p in &self.partitions {
            table.extend_from_slice(&p.offset.to_le_bytes());
            table.extend_from_slice(&p.rows.to_le_bytes());
            table.extend_from_slice(&p.crc32.to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
        }
        self.section("partition_table", &table).await?;
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
        if header_len + FOOTER_LEN + MAGIC.len() > len {
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
            if s.offset % ALIGN != 0 || s.offset + s.len > header_start {
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
        let table = file.section_bytes("partition_table")?;
        if table.len() != file.header.num_partitions * TABLE_ENTRY {
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
        let code = 8 + file.header.code_size as u64;
        if entries
            .iter()
            .any(|e| e.offset % ALIGN != 0 || e.offset + e.rows * code > header_start)
        {
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

    pub fn partition_rows(&self, partition: usize) -> u64 {
        self.table[partition].rows
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
                     the index (DROP VECTOR INDEX) and build it again",
                    self.name
                );
            }
            self.verified[partition].store(true, Ordering::Relaxed);
        }
        let addrs = ScalarBuffer::new(block.slice_with_length(0, rows * 8), 0, rows);
        Ok((addrs, block.slice_with_length(rows * 8, len - rows * 8)))
    }
}
