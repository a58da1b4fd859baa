//! An index opened for searching: its model and its segments, each opened once per dataset
//! and cached (index files are immutable), so repeated queries pay nothing to open them.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;
use vecfusion_kernels::distance::norm_squared;
use vecfusion_kernels::scan::{
    pq_codebook_panels, pq_codeword_norms, pq_dot_tables, resize_scratch,
};
use vecfusion_kernels::topk::{rank_head, sort_head};

use crate::dataset::{Dataset, IndexMeta};
use crate::index_format::{IndexModel, SegmentFile};
use crate::metric::Metric;
use crate::quantizer::QueryTables;

/// An opened vector index: one model, the segments encoded with it.
#[derive(Debug)]
pub struct LoadedIndex {
    pub name: String,
    pub model: Arc<IndexModel>,
    pub segments: Vec<Arc<SegmentFile>>,
    covered: HashSet<u32>,
    rows_indexed: u64,
    /// The centroids as one codebook of `partitions` codewords, laid out by
    /// [`pq_codebook_panels`]: ranking a query's partitions is the PQ table kernel.
    centroid_panels: Vec<f32>,
    /// l2/cosine: `‖c‖²` per centroid (empty for dot).
    centroid_norms: Vec<f32>,
}

/// What a query needs per index, prepared once.
pub struct PreparedQuery {
    /// The query as the index compares it (normalised for cosine).
    pub vector: Vec<f32>,
    tables: QueryTables,
    /// Its coarse score against every partition's centroid, less the query's own squared
    /// norm for l2/cosine (a term common to all partitions, added back by
    /// [`PartitionOrder`] to the partitions read).
    coarse: Vec<f32>,
}

impl LoadedIndex {
    /// Opens the index `meta` describes. The assembled index is cached per set of files,
    /// and its model and segments each per file, so a version that adds one segment reopens
    /// only that segment.
    pub async fn open(dataset: &Dataset, meta: &IndexMeta) -> Result<Arc<Self>> {
        let mut key = format!("index:{}", meta.model.file);
        for s in &meta.segments {
            key.push(':');
            key.push_str(&s.file);
        }
        dataset
            .cached_derived(&key, || Self::assemble(dataset, meta))
            .await
            .map_err(|e| {
                exec_datafusion_err!(
                    "vector index '{}' of dataset {} cannot be read: {}. Rebuild it (CREATE \
                     VECTOR INDEX {} ... WITH (replace = true), or DROP VECTOR INDEX and CREATE \
                     again), or search exactly meanwhile (SET vecfusion.use_index = false)",
                    meta.name,
                    dataset.uri(),
                    e.strip_backtrace(),
                    meta.name
                )
            })
    }

    async fn assemble(dataset: &Dataset, meta: &IndexMeta) -> Result<Self> {
        let location = dataset.location().clone();
        let model_file = meta.model.file.clone();
        let model = dataset
            .cached_derived(&format!("model:{model_file}"), || async move {
                IndexModel::open(&location, &model_file).await
            })
            .await?;
        let mut segments = Vec::with_capacity(meta.segments.len());
        for s in &meta.segments {
            let (location, model, file) =
                (dataset.location().clone(), model.clone(), s.file.clone());
            segments.push(
                dataset
                    .cached_derived(&format!("segment:{file}"), || async move {
                        SegmentFile::open(&location, &file, &model).await
                    })
                    .await?,
            );
        }
        let (partitions, dim) = (model.num_partitions, model.dim());
        let centroid_norms = match model.metric() {
            Metric::Dot => vec![],
            Metric::L2 | Metric::Cosine => pq_codeword_norms(&model.centroids, 1, partitions, dim),
        };
        Ok(Self {
            centroid_panels: pq_codebook_panels(&model.centroids, 1, partitions),
            centroid_norms,
            name: meta.name.clone(),
            covered: meta
                .segments
                .iter()
                .flat_map(|s| s.fragments.iter().copied())
                .collect(),
            rows_indexed: meta.rows_indexed(),
            model,
            segments,
        })
    }

    pub fn partitions(&self) -> usize {
        self.model.num_partitions
    }

    pub fn covers(&self, fragment: u32) -> bool {
        self.covered.contains(&fragment)
    }

    /// Rows held by all segments.
    pub fn rows_indexed(&self) -> u64 {
        self.rows_indexed
    }

    /// Prepares queries (row-major) for searching this index: normalised for cosine, their
    /// quantizer tables and their coarse scores against every centroid. Built together for
    /// the whole batch: both are matrix-vector products over a codebook, whose reads are
    /// shared by [`pq_dot_tables`] when several queries come at once.
    pub fn prepare(&self, queries: &[f32]) -> Vec<PreparedQuery> {
        let (dim, partitions) = (self.model.dim().max(1), self.partitions());
        let mut vectors = queries.to_vec();
        if self.model.metric() == Metric::Cosine {
            crate::metric::normalize_rows(&mut vectors, dim);
        }
        let tables = self.model.quantizer.prepare_all(&vectors);
        // −q·c for dot; ‖q − c‖² − ‖q‖² = −2·q·c + ‖c‖² for l2/cosine.
        let scale = match self.model.metric() {
            Metric::Dot => -1.0,
            Metric::L2 | Metric::Cosine => -2.0,
        };
        let mut coarse = vec![0.0f32; vectors.len() / dim * partitions];
        let (panels, norms) = (&self.centroid_panels, &self.centroid_norms);
        pq_dot_tables(&vectors, panels, 1, partitions, scale, norms, &mut coarse);
        vectors
            .chunks_exact(dim)
            .zip(tables)
            .zip(coarse.chunks_exact(partitions))
            .map(|((vector, tables), coarse)| PreparedQuery {
                vector: vector.to_vec(),
                tables,
                coarse: coarse.to_vec(),
            })
            .collect()
    }

    /// The partitions in order of the query's coarse score against their centroids (squared
    /// distance, or negated inner product), nearest first. Only the first `head` are sorted
    /// up front — a search probes `nprobes` of 1,024 or more — and the rest only if the
    /// search goes on past them (see [`PartitionOrder`]).
    pub fn rank_partitions(&self, q: &PreparedQuery, head: usize) -> PartitionOrder {
        let shift = match self.model.metric() {
            Metric::Dot => 0.0,
            Metric::L2 | Metric::Cosine => norm_squared(&q.vector),
        };
        PartitionOrder::new(&q.coarse, head, shift)
    }

    /// Prepares the scoring of partition `p` into `scratch`, once for all segments.
    pub fn prepare_partition(&self, p: usize, q: &PreparedQuery, scratch: &mut Vec<f32>) {
        self.model
            .quantizer
            .prepare_partition(p, &q.tables, scratch);
    }

    /// Approximate scores (smaller is closer) of every row of partition `p` in `segment`,
    /// with their row addresses. `coarse` is the query's score against the partition's
    /// centroid (from [`Self::rank_partitions`]); `scratch` holds what
    /// [`Self::prepare_partition`] wrote for `p`.
    pub fn scan_partition(
        &self,
        segment: &SegmentFile,
        p: usize,
        coarse: f32,
        q: &PreparedQuery,
        scores: &mut Vec<f32>,
        scratch: &mut Vec<f32>,
    ) -> Result<ScalarBuffer<u64>> {
        let (addrs, codes) = segment.scan_partition(p)?;
        resize_scratch(scores, addrs.len());
        self.model
            .quantizer
            .scan(p, coarse, &q.vector, &q.tables, &codes, scores, scratch);
        Ok(addrs)
    }
}

/// Partitions as `(coarse score, partition)`, nearest first, sorted as far as they are read:
/// the first `head` at once, the rest when [`PartitionOrder::get`] first reaches them.
#[derive(Debug)]
pub struct PartitionOrder {
    /// `(score − shift, partition)`, the first `sorted` in order.
    ranked: Vec<(f32, u64)>,
    sorted: usize,
    /// Added to every score read (a term common to all partitions).
    shift: f32,
}

impl PartitionOrder {
    /// The partitions of `scores` (one per partition, less `shift`), the first `head`
    /// sorted.
    fn new(scores: &[f32], head: usize, shift: f32) -> Self {
        Self {
            ranked: rank_head(scores, head),
            sorted: head.min(scores.len()),
            shift,
        }
    }

    pub fn len(&self) -> usize {
        self.ranked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranked.is_empty()
    }

    /// The `i`-th nearest partition.
    pub fn get(&mut self, i: usize) -> (f32, usize) {
        if i >= self.sorted {
            let all = self.ranked.len();
            sort_head(&mut self.ranked[self.sorted..], all);
            self.sorted = all;
        }
        let (score, p) = self.ranked[i];
        (score + self.shift, p as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::PartitionOrder;

    #[test]
    fn partitions_come_nearest_first_whatever_head_was_sorted_up_front() {
        // Scores with ties (broken by partition number) and a negative zero.
        let scores: Vec<f32> = (0..200u32)
            .map(|i| ((i * 7919) % 61) as f32 - 30.0)
            .chain([-0.0, 0.0])
            .collect();
        let mut expected: Vec<(f32, usize)> = scores.iter().copied().zip(0..).collect();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for head in [0, 1, 5, 201, 202, 10_000] {
            let mut order = PartitionOrder::new(&scores, head, 0.0);
            let got: Vec<(f32, usize)> = (0..order.len()).map(|i| order.get(i)).collect();
            assert_eq!(got, expected, "head {head}");
        }
        // A shift common to every partition (the query's own norm) is added as they are read.
        let mut order = PartitionOrder::new(&scores, 3, 1.5);
        assert_eq!(order.get(0), (expected[0].0 + 1.5, expected[0].1));
        assert_eq!(order.get(150), (expected[150].0 + 1.5, expected[150].1));
    }
}
