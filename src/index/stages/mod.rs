//! `CREATE VECTOR INDEX` as a plan of stages, one exec per building block:
//!
//! ```text
//! IndexCommitExec            one task: one commit of the model and every segment
//!   CoalescePartitionsExec
//!     IndexEncodeExec        a task per group of whole fragments: a segment each
//!       IndexTrainExec       one task: IVF centroids and the quantizer, the model file
//!         CoalescePartitionsExec
//!           IndexSampleExec  a task per scan partition: validated, sampled rows
//!             VecfusionScanExec (vector, row address)
//!       VecfusionScanExec (vector, row address; partitions = whole fragments)
//! ```
//!
//! `OPTIMIZE VECTOR INDEX` reuses the encode stage ([`plan_encode`]), with the index's model
//! as its first input (`IndexModelExec`) instead of a training task.
//!
//! In one process DataFusion runs it as any plan (the partitions of a stage concurrently).
//! On a cluster, Ballista cuts it into stages at the merges: the sample tasks and the
//! encode tasks spread over the executors, training runs once on one executor (with that
//! executor's accelerator), and the encode tasks read its one row — which names the model
//! file — instead of training again. What crosses between stages is rows ([`rows`]): the
//! sampled rows and a tally per sample task, the trained model's summary, each segment's
//! summary. Files are written by the tasks that make them and referenced only by the one
//! commit, so a failed or retried task leaves only unreferenced files and the previous
//! version intact.

pub mod commit_exec;
pub mod encode_exec;
pub mod model_exec;
pub(crate) mod rows;
pub mod sample_exec;
pub mod train_exec;

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;

pub use commit_exec::{IndexCommitExec, result_schema};
pub use encode_exec::IndexEncodeExec;
pub use model_exec::IndexModelExec;
pub use sample_exec::IndexSampleExec;
pub use train_exec::IndexTrainExec;

use super::blocks::{BuildPlan, BuildSpec, ModelSummary};
use crate::dataset::Dataset;
use crate::kmeans::{Accelerator, Backend, backend_for};
use crate::provider::VecfusionScanExec;

/// What every stage of one build is told: the index to build, the dataset version it is
/// built over, and the dimension of the column (at `column`).
#[derive(Debug, Clone)]
pub struct BuildTarget {
    pub spec: BuildSpec,
    pub dataset: Dataset,
    pub dim: usize,
}

impl BuildTarget {
    /// What the blocks of this build agree on (the sampling threshold follows from the
    /// version's live rows).
    fn plan(&self) -> BuildPlan {
        BuildPlan {
            spec: self.spec.clone(),
            dim: self.dim,
            rows: self.dataset.count_rows(),
        }
    }

    /// The backend of the accelerator the build asks for, opened now, in the process that
    /// runs the stage (a device is opened when a build runs, not when it is planned).
    fn backend(&self) -> Result<Arc<dyn Backend>> {
        let options = &self.spec.options;
        let accelerator = Accelerator::select(options.accelerator)?;
        let gpu_budget = options
            .gpu_memory_budget_mb
            .map(|mb| mb.saturating_mul(1 << 20));
        Ok(Arc::from(backend_for(&accelerator, gpu_budget)))
    }
}

/// The stage plan of a build of `target` over the column at `column` of its dataset.
pub async fn plan_build(
    session: &dyn Session,
    target: BuildTarget,
    column: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let dataset = target.dataset.clone();
    let sampled =
        VecfusionScanExec::row_addresses(session, dataset.clone(), Some(vec![column]), vec![])
            .await?;
    let sample = Arc::new(IndexSampleExec::new(target.clone(), Arc::new(sampled)));
    let train = Arc::new(IndexTrainExec::new(
        target.clone(),
        Arc::new(CoalescePartitionsExec::new(sample)),
    ));
    let rows = VecfusionScanExec::fragment_groups(session, dataset, column, None).await?;
    let encode = Arc::new(IndexEncodeExec::new(target.clone(), train, Arc::new(rows)));
    Ok(Arc::new(IndexCommitExec::new(
        target,
        Arc::new(CoalescePartitionsExec::new(encode)),
    )))
}

/// The encode stage alone: the rows of `fragments` encoded with the existing `model`, a
/// segment per group of whole fragments (what `OPTIMIZE VECTOR INDEX` commits).
pub async fn plan_encode(
    session: &dyn Session,
    target: BuildTarget,
    column: usize,
    model: ModelSummary,
    fragments: Vec<u32>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let rows: u64 = fragments
        .iter()
        .filter_map(|id| target.dataset.fragment(*id))
        .map(|f| f.live_rows())
        .sum();
    let scan = VecfusionScanExec::fragment_groups(
        session,
        target.dataset.clone(),
        column,
        Some(fragments),
    )
    .await?;
    let model = Arc::new(IndexModelExec::new(target.clone(), model, rows));
    Ok(Arc::new(IndexEncodeExec::new(
        target,
        model,
        Arc::new(scan),
    )))
}

#[cfg(test)]
mod tests;
