//! The model file of an index: what was trained, written once and shared by every segment.
//!
//! It holds the IVF centroids and the quantizer's sections (PQ codebooks, SQ bounds) under a
//! random model id that every segment encoded with it names. A format-1 index file, which
//! holds its partitions too, opens as a model with the empty id.

use std::sync::Arc;

use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::common::exec_err;
use datafusion::error::Result;

use super::file::{FORMAT_VERSION, IndexFile, IndexHeader, IndexWriter};
use crate::dataset::DatasetLocation;
use crate::kmeans::{Assignment, Backend, Layout};
use crate::metric::Metric;
use crate::quantizer::{IndexKind, Quantizer, QuantizerParams};

/// `k × dim` f32: the IVF centroids (unit length for cosine).
pub const SECTION_CENTROIDS: &str = "centroids";

/// A trained index model.
#[derive(Debug, Clone)]
pub struct IndexModel {
    /// Random id; segments name the model they were encoded with.
    pub id: String,
    pub num_partitions: usize,
    /// `num_partitions × dim`.
    pub centroids: ScalarBuffer<f32>,
    pub quantizer: Arc<dyn Quantizer>,
}

impl IndexModel {
    pub fn params(&self) -> &QuantizerParams {
        self.quantizer.params()
    }

    pub fn kind(&self) -> IndexKind {
        self.params().kind
    }

    pub fn metric(&self) -> Metric {
        self.params().metric
    }

    pub fn dim(&self) -> usize {
        self.params().dim
    }

    pub fn code_size(&self) -> usize {
        self.quantizer.code_size()
    }

    pub fn centroid(&self, partition: usize) -> &[f32] {
        let dim = self.dim();
        &self.centroids[partition * dim..(partition + 1) * dim]
    }

    /// The nearest centroid of every row (rows normalised for cosine).
    pub fn assign(&self, backend: &dyn Backend, rows: &[f32]) -> Result<Assignment> {
        backend.assign(
            rows,
            Layout::coarse(self.dim(), self.num_partitions),
            &self.centroids,
            self.metric(),
        )
    }

    /// The header every file of this model carries (segments add their rows).
    pub fn header(&self) -> IndexHeader {
        let p = self.params();
        IndexHeader {
            format_version: FORMAT_VERSION,
            kind: p.kind,
            metric: p.metric,
            dim: p.dim,
            num_partitions: self.num_partitions,
            num_sub_vectors: p.num_sub_vectors,
            num_bits: p.num_bits,
            code_size: self.code_size(),
            rows: 0,
            sections: vec![],
            model_id: Some(self.id.clone()),
        }
    }

    /// Writes the model file `file` (relative to the dataset root). Returns its size.
    pub async fn write(&self, location: &DatasetLocation, file: &str) -> Result<u64> {
        let mut writer = IndexWriter::create(location, file).await?;
        let mut sections = vec![(SECTION_CENTROIDS, &self.centroids[..])];
        sections.extend(self.quantizer.sections());
        for (name, values) in sections {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            if let Err(e) = writer.section(name, &bytes).await {
                writer.abort().await;
                return Err(e);
            }
        }
        writer.finish(self.header()).await
    }

    /// Opens the model file `file`.
    pub async fn open(location: &DatasetLocation, file: &str) -> Result<Self> {
        let file = IndexFile::open(location, file).await?;
        Self::from_file(&file)
    }

    fn from_file(file: &IndexFile) -> Result<Self> {
        let h = &file.header;
        let params = QuantizerParams {
            kind: h.kind,
            dim: h.dim,
            metric: h.metric,
            num_sub_vectors: h.num_sub_vectors,
            num_bits: h.num_bits,
        };
        let centroids = file.section_f32(SECTION_CENTROIDS)?;
        if h.dim == 0
            || h.num_partitions == 0
            || h.num_partitions.checked_mul(h.dim) != Some(centroids.len())
        {
            return exec_err!(
                "index file {} is corrupted: {} centroid values for {} partitions of {} \
                 dimensions; drop the index (DROP VECTOR INDEX) and build it again",
                file.name(),
                centroids.len(),
                h.num_partitions,
                h.dim
            );
        }
        let quantizer = crate::quantizer::load(params, &centroids, &|name| file.section_f32(name))
            .map_err(|e| e.context(format!("reading the model of {}", file.name())))?;
        if quantizer.code_size() != h.code_size {
            return exec_err!(
                "index file {} is corrupted: code size {} where {} {} codes take {}",
                file.name(),
                h.code_size,
                h.kind.name(),
                h.dim,
                quantizer.code_size()
            );
        }
        Ok(Self {
            id: h.model_id.clone().unwrap_or_default(),
            num_partitions: h.num_partitions,
            centroids,
            quantizer,
        })
    }
}
