//! Fragments: immutable Arrow IPC files holding the rows of one append.
//!
//! Rows are re-batched to exactly [`ROWS_PER_BATCH`] rows per IPC record batch (the last one
//! may be shorter), so the batch holding row offset `o` is `o / rows_per_batch` and reading one
//! row touches one batch. Files are uncompressed and 64-byte aligned; on a local disk the file
//! is memory-mapped and record batches are decoded without copying their buffers.
//!
//! Every record batch is checksummed: the footer's custom metadata [`CHECKSUMS_KEY`] holds the
//! CRC-32 of each batch's bytes (message and body), and a reader verifies a batch the first
//! time it decodes it, so a flipped byte is an error that names the file and the batch instead
//! of a silently different vector. Files written before checksums existed have none and are
//! read as before.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::datatypes::{DataType, Float32Type, SchemaRef};
use datafusion::arrow::ipc::convert::fb_to_schema;
use datafusion::arrow::ipc::reader::{FileDecoder, read_footer_length};
use datafusion::arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use datafusion::arrow::ipc::{Block, MetadataVersion, root_as_footer};
use datafusion::common::{
    exec_datafusion_err, exec_err, internal_datafusion_err, internal_err, plan_err,
};
use datafusion::error::{DataFusionError, Result};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use super::location::DatasetLocation;
use super::manifest::FragmentMeta;

/// Rows per IPC record batch inside a fragment file.
pub const ROWS_PER_BATCH: usize = 8192;

/// Footer metadata key of the per-batch CRC-32s (comma-separated lowercase hex).
pub const CHECKSUMS_KEY: &str = "vecfusion.batch_crc32";

/// What a finished [`FragmentWriter`] produced; becomes a [`FragmentMeta`] at commit, when
/// the fragment gets its id.
#[derive(Debug, Clone)]
pub struct NewFragment {
    pub file: String,
    pub physical_rows: u64,
    pub rows_per_batch: u32,
    pub file_bytes: u64,
}

impl NewFragment {
    pub fn into_meta(self, id: u32) -> FragmentMeta {
        FragmentMeta {
            id,
            file: self.file,
            physical_rows: self.physical_rows,
            rows_per_batch: self.rows_per_batch,
            file_bytes: self.file_bytes,
            deletion: None,
            column_files: vec![],
        }
    }
}

/// A `Write` target the synchronous IPC writer fills and the async uploader drains.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("buffer lock"))
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams record batches into a new fragment file. Memory stays at one record batch plus the
/// upload buffer, whatever the number of rows.
pub struct FragmentWriter {
    file: String,
    schema: SchemaRef,
    upload: BufWriter,
    ipc: FileWriter<SharedBuffer>,
    buffer: SharedBuffer,
    coalescer: BatchCoalescer,
    rows: u64,
    bytes: u64,
    /// Bytes at the start of the buffer that precede the next batch (the file header).
    header: usize,
    checksums: Vec<u32>,
    rows_per_batch: usize,
}

impl FragmentWriter {
    pub fn try_new(location: &DatasetLocation, schema: SchemaRef) -> Result<Self> {
        Self::with_rows_per_batch(location, schema, ROWS_PER_BATCH)
    }

    /// A writer whose record batches hold `rows_per_batch` rows: a column file must match the
    /// batch layout of the fragment it extends.
    pub fn with_rows_per_batch(
        location: &DatasetLocation,
        schema: SchemaRef,
        rows_per_batch: usize,
    ) -> Result<Self> {
        if rows_per_batch == 0 {
            return internal_err!("a fragment needs at least one row per record batch");
        }
        let file = super::files::new_fragment_file();
        let upload = BufWriter::new(location.store.clone(), location.path(&file));
        let buffer = SharedBuffer::default();
        let options = IpcWriteOptions::try_new(64, false, MetadataVersion::V5)?;
        let ipc = FileWriter::try_new_with_options(buffer.clone(), &schema, options)?;
        let header = buffer.0.lock().expect("buffer lock").len();
        Ok(Self {
            file,
            coalescer: BatchCoalescer::new(schema.clone(), rows_per_batch),
            rows_per_batch,
            schema,
            upload,
            ipc,
            buffer,
            rows: 0,
            bytes: 0,
            header,
            checksums: vec![],
        })
    }

    /// Writes one record batch and uploads it; the IPC writer is unbuffered, so the bytes it
    /// added past the header are exactly that batch's block, which is checksummed.
    async fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        self.ipc.write(batch)?;
        let bytes = self.buffer.take();
        self.checksums
            .push(crc32fast::hash(&bytes[self.header.min(bytes.len())..]));
        self.header = 0;
        self.upload_bytes(bytes).await
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends a batch whose schema equals the fragment schema (the caller casts first).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.coalescer.push_batch(batch)?;
        while let Some(full) = self.coalescer.next_completed_batch() {
            self.write_batch(&full).await?;
        }
        Ok(())
    }

    async fn upload_bytes(&mut self, bytes: Vec<u8>) -> Result<()> {
        if !bytes.is_empty() {
            self.bytes += bytes.len() as u64;
            self.upload
                .put(Bytes::from(bytes))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        Ok(())
    }

    /// Completes the file. Returns `None` (and writes nothing) when no rows were written.
    pub async fn finish(mut self) -> Result<Option<NewFragment>> {
        if self.rows == 0 {
            self.abort().await;
            return Ok(None);
        }
        self.coalescer.finish_buffered_batch()?;
        while let Some(last) = self.coalescer.next_completed_batch() {
            self.write_batch(&last).await?;
        }
        let checksums: Vec<String> = self.checksums.iter().map(|c| format!("{c:08x}")).collect();
        self.ipc.write_metadata(CHECKSUMS_KEY, checksums.join(","));
        self.ipc.finish()?;
        let footer = self.buffer.take();
        self.upload_bytes(footer).await?;
        self.upload
            .shutdown()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(NewFragment {
            file: self.file,
            physical_rows: self.rows,
            rows_per_batch: u32::try_from(self.rows_per_batch)
                .map_err(|_| internal_datafusion_err!("rows per batch exceed u32"))?,
            file_bytes: self.bytes,
        }))
    }

    /// Drops a partly written file (best effort: the file is unreferenced either way).
    pub async fn abort(mut self) {
        let _ = self.upload.abort().await;
    }
}

/// One vector column of a fragment, decoded once (zero-copy) for random access by offset:
/// what refinement and exact searches read instead of taking rows one by one.
#[derive(Debug)]
pub struct VectorColumn {
    batches: Vec<FixedSizeListArray>,
    rows_per_batch: usize,
    dim: usize,
}

impl VectorColumn {
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The vector at row `offset`, or `None` when it is NULL.
    pub fn get(&self, offset: usize) -> Option<&[f32]> {
        let batch = &self.batches[offset / self.rows_per_batch];
        let row = offset % self.rows_per_batch;
        if batch.is_null(row) {
            return None;
        }
        let start = batch.value_offset(row) as usize;
        let values = batch.values().as_primitive::<Float32Type>().values();
        Some(&values[start..start + self.dim])
    }

    /// Record batches of the column, for sequential scans.
    pub fn batches(&self) -> &[FixedSizeListArray] {
        &self.batches
    }

    pub fn rows_per_batch(&self) -> usize {
        self.rows_per_batch
    }
}

/// One opened Arrow IPC file of a fragment — its data file or a column file: the whole file
/// as one buffer (memory-mapped when local), its own schema and the positions of its record
/// batches.
#[derive(Debug)]
struct DataFile {
    file: String,
    data: Buffer,
    blocks: Vec<Block>,
    /// CRC-32 of each block, when the file has them, and whether it was verified yet.
    checksums: Option<Vec<(u32, AtomicBool)>>,
    schema: SchemaRef,
    version: MetadataVersion,
}

impl DataFile {
    async fn open(location: &DatasetLocation, file: &str) -> Result<Self> {
        let data = match location.local_path(file) {
            Some(path) => {
                let handle = std::fs::File::open(&path).map_err(|e| {
                    exec_datafusion_err!(
                        "cannot open fragment file {} of dataset {}: {e}",
                        path.display(),
                        location.uri
                    )
                })?;
                // SAFETY: fragment files are immutable once committed; nothing writes to them.
                let map = unsafe { memmap2::Mmap::map(&handle) }
                    .map_err(|e| exec_datafusion_err!("cannot map {}: {e}", path.display()))?;
                Buffer::from(Bytes::from_owner(map))
            }
            None => {
                let bytes = location
                    .store
                    .get(&location.path(file))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
                    .bytes()
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                Buffer::from(bytes)
            }
        };
        Self::from_buffer(&location.uri, file, data)
    }

    fn from_buffer(uri: &str, file: &str, data: Buffer) -> Result<Self> {
        let corrupt = |why: String| {
            exec_datafusion_err!(
                "fragment {file} of dataset {uri} is corrupted or not an Arrow IPC file: {why}"
            )
        };
        let len = data.len();
        if len < 16 || &data[..6] != b"ARROW1" || &data[len - 6..] != b"ARROW1" {
            return Err(corrupt("missing ARROW1 magic".into()));
        }
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&data[len - 10..]);
        let footer_len = read_footer_length(tail).map_err(|e| corrupt(e.to_string()))?;
        if footer_len + 10 > len {
            return Err(corrupt("footer length out of range".into()));
        }
        let footer = root_as_footer(&data[len - 10 - footer_len..len - 10])
            .map_err(|e| corrupt(e.to_string()))?;
        let blocks: Vec<Block> = footer
            .recordBatches()
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        let fb_schema = footer
            .schema()
            .filter(|s| s.fields().is_some())
            .ok_or_else(|| corrupt("the footer has no schema".into()))?;
        // arrow's flatbuffer-to-schema conversion panics on some malformed inputs (an integer
        // of bit width 7, say) instead of returning an error: a damaged file must be an error.
        let schema = std::panic::catch_unwind(|| fb_to_schema(fb_schema))
            .map_err(|_| corrupt("unreadable schema in the footer".into()))?;
        for (i, b) in blocks.iter().enumerate() {
            // Every field of a block comes from the file: checked before any is used.
            let end = u64::try_from(b.offset())
                .ok()
                .zip(u64::try_from(b.metaDataLength()).ok())
                .zip(u64::try_from(b.bodyLength()).ok())
                .and_then(|((offset, meta), body)| offset.checked_add(meta)?.checked_add(body));
            if b.metaDataLength() < 8 || end.is_none_or(|end| end > len as u64) {
                return Err(corrupt(format!(
                    "record batch {i} has an invalid block (offset {}, metadata {} bytes, body \
                     {} bytes) in a file of {len} bytes",
                    b.offset(),
                    b.metaDataLength(),
                    b.bodyLength()
                )));
            }
        }
        let checksums = match footer
            .custom_metadata()
            .and_then(|kv| kv.iter().find(|e| e.key() == Some(CHECKSUMS_KEY)))
            .and_then(|e| e.value())
        {
            None => None,
            Some(text) => {
                let parsed: Option<Vec<u32>> = text
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| u32::from_str_radix(t, 16).ok())
                    .collect();
                match parsed {
                    Some(c) if c.len() == blocks.len() => {
                        Some(c.into_iter().map(|c| (c, AtomicBool::new(false))).collect())
                    }
                    _ => return Err(corrupt("unreadable batch checksums in the footer".into())),
                }
            }
        };
        let version = footer.version();
        Ok(Self {
            file: file.to_string(),
            data,
            blocks,
            checksums,
            schema: Arc::new(schema),
            version,
        })
    }

    /// Decodes record batch `i` with the given projection of this file's columns
    /// (zero-copy on a mapped file), verifying the batch's checksum the first time.
    fn read_batch(&self, i: usize, projection: &[usize], rows: usize) -> Result<RecordBatch> {
        let block = self
            .blocks
            .get(i)
            .ok_or_else(|| internal_datafusion_err!("batch {i} out of range in {}", self.file))?;
        let decoder = FileDecoder::new(self.schema.clone(), self.version)
            .with_projection(projection.to_vec());
        let buf = self.data.slice_with_length(
            block.offset() as usize,
            block.metaDataLength() as usize + block.bodyLength() as usize,
        );
        if let Some((expected, verified)) = self.checksums.as_ref().and_then(|c| c.get(i))
            && !verified.load(Ordering::Relaxed)
        {
            let actual = crc32fast::hash(buf.as_slice());
            if actual != *expected {
                return exec_err!(
                    "fragment {} is corrupted: record batch {i} fails its checksum (stored \
                     crc32 {expected:08x}, computed {actual:08x}); the file changed after it was \
                     written. Restore it from a backup, or query an earlier version that does \
                     not include it",
                    self.file
                );
            }
            verified.store(true, Ordering::Relaxed);
        }
        let batch = decoder
            .read_record_batch(block, &buf)
            .map_err(|e| {
                exec_datafusion_err!("fragment {} is corrupted (batch {i}): {e}", self.file)
            })?
            .ok_or_else(|| exec_datafusion_err!("fragment {} batch {i} is empty", self.file))?;
        if batch.num_rows() != rows {
            return exec_err!(
                "fragment {} is corrupted: batch {i} has {} rows, expected {rows}",
                self.file,
                batch.num_rows()
            );
        }
        Ok(batch)
    }
}

/// An opened fragment: its data file and column files, read as one table of the dataset's
/// schema. Each table column comes from the newest file that holds a column of that name;
/// the files' own columns no longer in the schema (dropped) are never decoded.
#[derive(Debug)]
pub struct FragmentReader {
    file: String,
    files: Vec<DataFile>,
    /// For each column of `schema`: the file and the column within it.
    sources: Vec<(usize, usize)>,
    schema: SchemaRef,
    rows_per_batch: usize,
    physical_rows: usize,
    num_batches: usize,
    vectors: Mutex<HashMap<usize, Arc<VectorColumn>>>,
    columns: Mutex<HashMap<usize, Arc<Vec<ArrayRef>>>>,
}

impl FragmentReader {
    /// Opens the files of `meta`; `schema` is the dataset schema they must provide.
    pub async fn open(
        location: &DatasetLocation,
        meta: &FragmentMeta,
        schema: SchemaRef,
    ) -> Result<Self> {
        let mut files = vec![DataFile::open(location, &meta.file).await?];
        for c in &meta.column_files {
            files.push(DataFile::open(location, &c.file).await?);
        }
        Self::from_files(&location.uri, meta, files, schema)
    }

    fn from_files(
        uri: &str,
        meta: &FragmentMeta,
        files: Vec<DataFile>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let num_batches = meta.num_batches();
        for f in &files {
            if f.blocks.len() != num_batches {
                return exec_err!(
                    "fragment {} of dataset {uri} is corrupted or not an Arrow IPC file: file \
                     has {} record batches, the manifest expects {num_batches}",
                    f.file,
                    f.blocks.len()
                );
            }
        }
        let sources = schema
            .fields()
            .iter()
            .map(|field| {
                let found = files
                    .iter()
                    .enumerate()
                    .rev()
                    .find_map(|(i, f)| f.schema.index_of(field.name()).ok().map(|c| (i, c)));
                let Some((file, column)) = found else {
                    return exec_err!(
                        "fragment {} of dataset {uri} is corrupted: none of its files holds \
                         column '{}' of the dataset schema",
                        meta.file,
                        field.name()
                    );
                };
                let stored = files[file].schema.field(column).data_type();
                if stored != field.data_type() {
                    return exec_err!(
                        "fragment {} of dataset {uri} is corrupted: column '{}' is stored as \
                         {stored}, the dataset schema says {}",
                        files[file].file,
                        field.name(),
                        field.data_type()
                    );
                }
                Ok((file, column))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            file: meta.file.clone(),
            files,
            sources,
            schema,
            rows_per_batch: meta.rows_per_batch.max(1) as usize,
            physical_rows: meta.physical_rows as usize,
            num_batches,
            vectors: Mutex::new(HashMap::new()),
            columns: Mutex::new(HashMap::new()),
        })
    }

    /// The dataset schema this fragment is read with.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn num_batches(&self) -> usize {
        self.num_batches
    }

    pub fn rows_per_batch(&self) -> usize {
        self.rows_per_batch
    }

    pub fn physical_rows(&self) -> usize {
        self.physical_rows
    }

    /// First row offset of batch `i`.
    pub fn batch_start(&self, i: usize) -> usize {
        i * self.rows_per_batch
    }

    /// Rows in batch `i`.
    fn batch_rows(&self, i: usize) -> usize {
        self.physical_rows
            .saturating_sub(self.batch_start(i))
            .min(self.rows_per_batch)
    }

    /// Column `column` of every record batch, decoded once (zero-copy) and cached: random
    /// access to single rows then costs no decoding.
    pub fn column_batches(&self, column: usize) -> Result<Arc<Vec<ArrayRef>>> {
        if let Some(c) = self.columns.lock().expect("column cache").get(&column) {
            return Ok(c.clone());
        }
        let arrays = (0..self.num_batches())
            .map(|i| Ok(self.read_batch(i, Some(&[column]))?.column(0).clone()))
            .collect::<Result<Vec<_>>>()?;
        let arrays = Arc::new(arrays);
        self.columns
            .lock()
            .expect("column cache")
            .insert(column, arrays.clone());
        Ok(arrays)
    }

    /// Column `column` (a `FixedSizeList<Float32>`) of every batch, decoded once and cached.
    pub fn vector_column(&self, column: usize) -> Result<Arc<VectorColumn>> {
        if let Some(v) = self.vectors.lock().expect("vector cache").get(&column) {
            return Ok(v.clone());
        }
        let dim = match self.schema.field(column).data_type() {
            DataType::FixedSizeList(item, d) if item.data_type() == &DataType::Float32 => {
                *d as usize
            }
            other => {
                return plan_err!(
                    "column {} is {other}, not a FLOAT[d] vector column",
                    self.schema.field(column).name()
                );
            }
        };
        let batches = self
            .column_batches(column)?
            .iter()
            .map(|a| a.as_fixed_size_list().clone())
            .collect();
        let v = Arc::new(VectorColumn {
            batches,
            rows_per_batch: self.rows_per_batch,
            dim,
        });
        self.vectors
            .lock()
            .expect("vector cache")
            .insert(column, v.clone());
        Ok(v)
    }

    /// Decodes record batch `i` with the given projection of the dataset's columns
    /// (zero-copy on a mapped file), each column from the file that holds it.
    pub fn read_batch(&self, i: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let all: Vec<usize>;
        let columns = match projection {
            Some(p) => p,
            None => {
                all = (0..self.schema.fields().len()).collect();
                &all
            }
        };
        let rows = self.batch_rows(i);
        if i >= self.num_batches {
            return internal_err!("batch {i} out of range in {}", self.file);
        }
        let schema = Arc::new(self.schema.project(columns)?);
        if columns.is_empty() {
            // No column to decode: the batch's row count is all that is asked; the data
            // file's batch is still decoded so that its checksum and row count are checked.
            self.files[0].read_batch(i, &[], rows)?;
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            return Ok(RecordBatch::try_new_with_options(schema, vec![], &options)?);
        }
        let mut arrays: Vec<Option<ArrayRef>> = vec![None; columns.len()];
        for (f, file) in self.files.iter().enumerate() {
            let wanted: Vec<(usize, usize)> = columns
                .iter()
                .enumerate()
                .filter_map(|(out, &c)| {
                    let (src_file, src_col) = *self.sources.get(c)?;
                    (src_file == f).then_some((out, src_col))
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let projection: Vec<usize> = wanted.iter().map(|(_, c)| *c).collect();
            let batch = file.read_batch(i, &projection, rows)?;
            for (k, (out, _)) in wanted.iter().enumerate() {
                arrays[*out] = Some(batch.column(k).clone());
            }
        }
        let arrays = arrays
            .into_iter()
            .zip(columns)
            .map(|(a, c)| {
                a.ok_or_else(|| {
                    internal_datafusion_err!("column {c} out of range in {}", self.file)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(schema, arrays)?)
    }
}
