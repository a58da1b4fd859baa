//! `random_vectors(rows, dim [, clusters [, seed]])`: clustered synthetic vectors.
//!
//! Yields `id BIGINT, vector FLOAT[dim]` drawn from a Gaussian mixture: `clusters` centres
//! `~ N(0, 1)` per component, each point a centre plus isotropic noise with a per-cluster
//! spread in `[0.35, 0.7)`. Clustered data is what real embeddings look like, and what makes
//! IVF partitioning and `nprobes` meaningful in tests and benchmarks (uniform noise has no
//! neighbourhoods to find).
//!
//! Deterministic: row `i` depends only on `(seed, i)`, so the output is the same whatever the
//! number of partitions generating it, or the `LIMIT`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    FixedSizeListArray, Float32Array, Int64Array, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ScalarValue, internal_datafusion_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;

use crate::dataset::MAX_VECTOR_DIM;
use crate::plan_properties::streaming_source;

const USAGE: &str = "random_vectors(rows, dim [, clusters [, seed]])";
/// Rows generated per batch; also the unit of determinism (one RNG stream per block).
const BLOCK: usize = 8192;
pub const DEFAULT_CLUSTERS: u64 = 32;
pub const DEFAULT_SEED: u64 = 42;

/// Parameters of a generated table.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RandomVectorsSpec {
    pub rows: u64,
    pub dim: usize,
    pub clusters: u64,
    pub seed: u64,
}

impl RandomVectorsSpec {
    /// Refuses a dimension or cluster count out of range (what the function's arguments, or
    /// a spec received from another process, may hold).
    pub fn check(&self) -> Result<()> {
        let (dim, clusters) = (self.dim, self.clusters);
        if !(1..=MAX_VECTOR_DIM).contains(&dim) {
            return plan_err!("{USAGE}: dim must be between 1 and {MAX_VECTOR_DIM}, got {dim}");
        }
        if !(1..=1 << 20).contains(&clusters) {
            return plan_err!("{USAGE}: clusters must be between 1 and 1048576, got {clusters}");
        }
        Ok(())
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "vector",
                DataType::FixedSizeList(
                    Arc::new(Field::new_list_field(DataType::Float32, true)),
                    self.dim as i32,
                ),
                false,
            ),
        ]))
    }

    /// The mixture: centres (row-major, `clusters × dim`) and per-cluster spreads.
    fn mixture(&self) -> (Vec<f32>, Vec<f32>) {
        let mut rng = Pcg64Mcg::seed_from_u64(mix(self.seed, u64::MAX));
        let k = self.clusters as usize;
        let centres: Vec<f32> = (0..k * self.dim)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        let spreads: Vec<f32> = (0..k).map(|_| 0.35 + 0.35 * rng.random::<f32>()).collect();
        (centres, spreads)
    }
}

/// SplitMix64 finaliser: decorrelates (seed, block) pairs into RNG seeds.
fn mix(seed: u64, block: u64) -> u64 {
    let mut z = seed ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn literal_u64(e: &Expr, what: &str) -> Result<u64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::Int64(Some(n)) if *n >= 0 => Ok(*n as u64),
            ScalarValue::Int32(Some(n)) if *n >= 0 => Ok(*n as u64),
            ScalarValue::UInt64(Some(n)) => Ok(*n),
            other => plan_err!("{USAGE}: {what} must be a non-negative integer, got {other}"),
        },
        other => plan_err!("{USAGE}: {what} must be a constant integer, got {other}"),
    }
}

/// The `random_vectors` table function.
#[derive(Debug, Default)]
pub struct RandomVectorsFunction;

impl TableFunctionImpl for RandomVectorsFunction {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        if !(2..=4).contains(&args.len()) {
            return plan_err!("{USAGE}: expected 2 to 4 arguments, got {}", args.len());
        }
        let rows = literal_u64(&args[0], "rows")?;
        let dim = literal_u64(&args[1], "dim")?;
        let clusters = match args.get(2) {
            Some(e) => literal_u64(e, "clusters")?,
            None => DEFAULT_CLUSTERS,
        };
        let seed = match args.get(3) {
            Some(e) => literal_u64(e, "seed")?,
            None => DEFAULT_SEED,
        };
        let spec = RandomVectorsSpec {
            rows,
            dim: usize::try_from(dim).unwrap_or(usize::MAX),
            clusters,
            seed,
        };
        spec.check()?;
        Ok(Arc::new(RandomVectorsTable::new(spec)))
    }
}

/// The table `random_vectors(...)` returns.
#[derive(Debug)]
pub struct RandomVectorsTable {
    spec: RandomVectorsSpec,
}

impl RandomVectorsTable {
    pub fn new(spec: RandomVectorsSpec) -> Self {
        Self { spec }
    }

    pub fn spec(&self) -> &RandomVectorsSpec {
        &self.spec
    }
}

#[async_trait]
impl TableProvider for RandomVectorsTable {
    fn schema(&self) -> SchemaRef {
        self.spec.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut spec = self.spec;
        if let Some(l) = limit {
            spec.rows = spec.rows.min(l as u64);
        }
        Ok(Arc::new(RandomVectorsExec::new(
            spec,
            projection.cloned(),
            state.config().target_partitions(),
        )?))
    }
}

/// Generates the rows of a [`RandomVectorsSpec`], blocks spread over partitions.
#[derive(Debug)]
pub struct RandomVectorsExec {
    spec: RandomVectorsSpec,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    mixture: Arc<(Vec<f32>, Vec<f32>)>,
    partitions: usize,
    properties: Arc<PlanProperties>,
}

impl RandomVectorsExec {
    pub fn new(
        spec: RandomVectorsSpec,
        projection: Option<Vec<usize>>,
        target_partitions: usize,
    ) -> Result<Self> {
        spec.check()?;
        let full = spec.schema();
        let schema = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        let blocks = (spec.rows as usize).div_ceil(BLOCK);
        let partitions = target_partitions.max(1).min(blocks.max(1));
        let properties = streaming_source(schema.clone(), partitions);
        Ok(Self {
            mixture: Arc::new(spec.mixture()),
            spec,
            projection,
            schema,
            partitions,
            properties,
        })
    }

    pub fn spec(&self) -> &RandomVectorsSpec {
        &self.spec
    }

    /// Columns generated (all when `None`).
    pub fn projection(&self) -> Option<&[usize]> {
        self.projection.as_deref()
    }
}

impl DisplayAs for RandomVectorsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.spec;
        write!(
            f,
            "RandomVectorsExec: rows={} dim={} clusters={} seed={}",
            s.rows, s.dim, s.clusters, s.seed
        )
    }
}

impl ExecutionPlan for RandomVectorsExec {
    fn name(&self) -> &str {
        "RandomVectorsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let blocks = (self.spec.rows as usize).div_ceil(BLOCK);
        let per = blocks.div_ceil(self.partitions);
        let range = (partition * per).min(blocks)..((partition + 1) * per).min(blocks);
        let spec = self.spec;
        let mixture = self.mixture.clone();
        let schema = self.schema.clone();
        let projection = self.projection.clone();
        let stream = futures::stream::iter(range).map(move |block| {
            generate_block(&spec, &mixture, block, &schema, projection.as_deref())
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

use futures::StreamExt;

fn generate_block(
    spec: &RandomVectorsSpec,
    mixture: &(Vec<f32>, Vec<f32>),
    block: usize,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
) -> Result<RecordBatch> {
    let start = block * BLOCK;
    let n = (spec.rows as usize - start).min(BLOCK);
    let wants = |col: usize| projection.is_none_or(|p| p.contains(&col));
    let mut columns: Vec<(usize, Arc<dyn datafusion::arrow::array::Array>)> = vec![];
    if wants(0) {
        let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
        columns.push((0, Arc::new(ids)));
    }
    if wants(1) {
        let (centres, spreads) = mixture;
        let dim = spec.dim;
        let mut rng = Pcg64Mcg::seed_from_u64(mix(spec.seed, block as u64));
        let mut values = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.random_range(0..spec.clusters as usize);
            let centre = &centres[c * dim..(c + 1) * dim];
            let spread = spreads[c];
            values.extend(centre.iter().map(|m| {
                let z: f32 = rng.sample(StandardNormal);
                m + spread * z
            }));
        }
        let item = Arc::new(Field::new_list_field(DataType::Float32, true));
        let list = FixedSizeListArray::try_new(
            item,
            dim as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )?;
        columns.push((1, Arc::new(list)));
    }
    // Order the columns as the projection asks.
    let order: Vec<usize> = projection.map_or(vec![0, 1], |p| p.to_vec());
    let arrays = order
        .iter()
        .map(|c| {
            columns
                .iter()
                .find(|(i, _)| i == c)
                .map(|(_, a)| a.clone())
                .ok_or_else(|| internal_datafusion_err!("column {c} not generated"))
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rows: u64) -> RandomVectorsSpec {
        RandomVectorsSpec {
            rows,
            dim: 8,
            clusters: 4,
            seed: 7,
        }
    }

    #[test]
    fn blocks_are_deterministic_and_partition_independent() {
        let s = spec(20_000);
        let m = s.mixture();
        let schema = s.schema();
        let a = generate_block(&s, &m, 1, &schema, None).unwrap();
        let b = generate_block(&s, &m, 1, &schema, None).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.num_rows(), BLOCK);
        let last = generate_block(&s, &m, 2, &schema, None).unwrap();
        assert_eq!(last.num_rows(), 20_000 - 2 * BLOCK);
    }

    #[test]
    fn points_cluster_around_centres() {
        let s = spec(8192);
        let (centres, _) = s.mixture();
        let m = s.mixture();
        let batch = generate_block(&s, &m, 0, &s.schema(), None).unwrap();
        let list = batch
            .column(1)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        let values = list
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        // Every point is much closer to its nearest centre than centres are to each other.
        let mut worst = 0.0f32;
        for row in values.values().chunks(8) {
            let nearest = centres
                .chunks(8)
                .map(|c| vecfusion_kernels::distance::l2_squared(row, c))
                .fold(f32::MAX, f32::min);
            worst = worst.max(nearest);
        }
        let mut closest_centres = f32::MAX;
        for (i, a) in centres.chunks(8).enumerate() {
            for b in centres.chunks(8).skip(i + 1) {
                closest_centres =
                    closest_centres.min(vecfusion_kernels::distance::l2_squared(a, b));
            }
        }
        let mean_nearest = {
            let mut s = 0.0;
            for row in values.values().chunks(8) {
                s += centres
                    .chunks(8)
                    .map(|c| vecfusion_kernels::distance::l2_squared(row, c))
                    .fold(f32::MAX, f32::min);
            }
            s / 8192.0
        };
        assert!(
            mean_nearest < closest_centres,
            "{mean_nearest} vs {closest_centres}"
        );
        assert!(worst.is_finite());
    }
}
