//! The physical extension codec: vecfusion's execution plans, as a cluster's scheduler
//! sends them to executors. Each crosses as what it was made from and is made again on the
//! executor with its module's constructor; its children are encoded by DataFusion and
//! arrive decoded as `inputs`.

use std::sync::Arc;

use datafusion::common::{internal_datafusion_err, not_impl_err, plan_err};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::Result;
use datafusion::execution::{SessionState, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use super::blocking::block_on;
use super::dataset_ref::DatasetRef;
use super::exprs::{
    physical_from_bytes, physical_to_bytes, scan_filters_from_bytes, scan_filters_to_bytes,
};
use super::{decode, encode};
use crate::dataset::Dataset;
use crate::index::blocks::{BuildSpec, ModelSummary};
use crate::index::optimize::OptimizeSpec;
use crate::index::optimize_exec::OptimizeVectorIndexExec;
use crate::index::stages::{
    BuildTarget, IndexCommitExec, IndexEncodeExec, IndexModelExec, IndexSampleExec, IndexTrainExec,
};
use crate::metric::DistanceFunction;
use crate::provider::{DeleteExec, ScanRequest, UpdateExec, VecfusionScanExec, VecfusionSink};
use crate::search::{AnnSearchExec, PreparedSearch, SearchOutput, SearchParams};
use crate::session::session_state_builder;
use crate::udf::RandomVectorsSpec;
use crate::udf::random_vectors::RandomVectorsExec;

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum PhysicalPayload {
    Scan {
        dataset: DatasetRef,
        projection: Option<Vec<usize>>,
        filters: Vec<u8>,
        limit: Option<usize>,
        with_row_address: bool,
        fragments: Option<Vec<u32>>,
        whole_fragments: bool,
        /// The scan's partition count; the executor splits the version's batches the same
        /// way for the same count.
        partitions: usize,
    },
    AnnSearch {
        dataset: DatasetRef,
        column: usize,
        function: String,
        index: Option<usize>,
        params: SearchParams,
        queries: Vec<f32>,
        output: SearchOutput,
        /// The limit folded into the search (`ExecutionPlan::fetch`).
        fetch: Option<usize>,
    },
    /// A stage of `CREATE VECTOR INDEX` (its inputs are the plans before it).
    IndexStage {
        stage: IndexStage,
        spec: BuildSpec,
        dataset: DatasetRef,
        dim: usize,
    },
    /// The model of an existing index as the encode stage reads it (`OPTIMIZE`).
    IndexModel {
        spec: BuildSpec,
        dataset: DatasetRef,
        dim: usize,
        model: ModelSummary,
        rows: u64,
    },
    OptimizeIndex {
        spec: OptimizeSpec,
        dataset: DatasetRef,
        dim: usize,
    },
    RandomVectors {
        spec: RandomVectorsSpec,
        projection: Option<Vec<usize>>,
        partitions: usize,
    },
    /// `INSERT INTO` (a `DataSinkExec` writing to a vecfusion table).
    Insert {
        dataset: DatasetRef,
    },
    Delete {
        dataset: DatasetRef,
    },
    Update {
        dataset: DatasetRef,
        /// (table column, new value as a protobuf physical expression over the table)
        assignments: Vec<(usize, Vec<u8>)>,
    },
}

/// Which stage of an index build an `IndexStage` payload is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) enum IndexStage {
    Sample,
    Train,
    Encode,
    Commit,
}

/// Encodes vecfusion's execution plans and refuses every other plan, so that it composes
/// with other codecs (`ComposedPhysicalExtensionCodec`, as the cluster binaries do).
#[derive(Debug, Clone, Default)]
pub struct VecfusionPhysicalCodec;

/// A session on an executor for making nodes again: the task's settings, runtime (object
/// stores) and functions, with vecfusion's planners.
fn session_of(ctx: &TaskContext) -> SessionState {
    session_state_builder(ctx.session_config().clone())
        .with_runtime_env(ctx.runtime_env())
        .with_scalar_functions(ctx.scalar_functions().values().cloned().collect())
        .with_aggregate_functions(ctx.aggregate_functions().values().cloned().collect())
        .with_window_functions(ctx.window_functions().values().cloned().collect())
        .build()
}

/// Refuses column positions the table does not have (the positions crossed a network).
fn check_columns(what: &str, columns: Option<&[usize]>, dataset: &Dataset) -> Result<()> {
    let n = dataset.schema().fields().len();
    match columns.into_iter().flatten().find(|&&c| c >= n) {
        Some(c) => plan_err!(
            "{what} reads column {c} of {}, which has {n}",
            dataset.uri()
        ),
        None => Ok(()),
    }
}

fn one_input(inputs: &[Arc<dyn ExecutionPlan>], what: &str) -> Result<Arc<dyn ExecutionPlan>> {
    match inputs {
        [input] => Ok(Arc::clone(input)),
        _ => plan_err!("{what} takes one input plan, got {}", inputs.len()),
    }
}

impl PhysicalExtensionCodec for VecfusionPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let runtime = ctx.runtime_env();
        Ok(match decode(buf)? {
            PhysicalPayload::Scan {
                dataset,
                projection,
                filters,
                limit,
                with_row_address,
                fragments,
                whole_fragments,
                partitions,
            } => {
                let request = ScanRequest {
                    projection,
                    filters: scan_filters_from_bytes(&filters, ctx)?,
                    limit,
                    with_row_address,
                    fragments,
                    whole_fragments,
                };
                let dataset = dataset.open(&runtime)?;
                check_columns("a scan", request.projection.as_deref(), &dataset)?;
                let state = session_of(ctx);
                let scan = block_on(VecfusionScanExec::try_new(
                    &state, dataset, request, partitions,
                ))??;
                let made = scan.properties().partitioning.partition_count();
                if made != partitions {
                    return plan_err!(
                        "a scan planned with {partitions} partitions was made again with {made}"
                    );
                }
                Arc::new(scan)
            }
            PhysicalPayload::AnnSearch {
                dataset,
                column,
                function,
                index,
                params,
                queries,
                output,
                fetch,
            } => {
                let Some(function) = DistanceFunction::from_name(&function) else {
                    return plan_err!("unknown distance function '{function}'");
                };
                let prefilter = match inputs {
                    [] => None,
                    [p] => Some(Arc::clone(p)),
                    _ => return plan_err!("a search takes at most one prefilter plan"),
                };
                let dataset = dataset.open(&runtime)?;
                check_columns("a search", output.projection.as_deref(), &dataset)?;
                let search = PreparedSearch::from_parts(
                    dataset,
                    (column, function, index),
                    params,
                    queries,
                    prefilter,
                )?;
                Arc::new(AnnSearchExec::new(search, output).with_fetch_of(fetch))
            }
            PhysicalPayload::IndexStage {
                stage,
                spec,
                dataset,
                dim,
            } => {
                let target = BuildTarget {
                    spec,
                    dataset: dataset.open(&runtime)?,
                    dim,
                };
                match (stage, inputs) {
                    (IndexStage::Sample, [input]) => {
                        Arc::new(IndexSampleExec::new(target, input.clone()))
                    }
                    (IndexStage::Train, [input]) => {
                        Arc::new(IndexTrainExec::new(target, input.clone()))
                    }
                    (IndexStage::Encode, [model, rows]) => {
                        Arc::new(IndexEncodeExec::new(target, model.clone(), rows.clone()))
                    }
                    (IndexStage::Commit, [input]) => {
                        Arc::new(IndexCommitExec::new(target, input.clone()))
                    }
                    (stage, inputs) => {
                        return plan_err!(
                            "the {stage:?} stage of an index build cannot take {} input plans",
                            inputs.len()
                        );
                    }
                }
            }
            PhysicalPayload::IndexModel {
                spec,
                dataset,
                dim,
                model,
                rows,
            } => {
                let target = BuildTarget {
                    spec,
                    dataset: dataset.open(&runtime)?,
                    dim,
                };
                Arc::new(IndexModelExec::new(target, model, rows))
            }
            PhysicalPayload::OptimizeIndex { spec, dataset, dim } => {
                let input = match inputs {
                    [] => None,
                    [i] => Some(Arc::clone(i)),
                    _ => return plan_err!("OPTIMIZE VECTOR INDEX takes at most one input plan"),
                };
                Arc::new(OptimizeVectorIndexExec::new(
                    spec,
                    dataset.open(&runtime)?,
                    dim,
                    input,
                ))
            }
            PhysicalPayload::RandomVectors {
                spec,
                projection,
                partitions,
            } => Arc::new(RandomVectorsExec::new(spec, projection, partitions)?),
            PhysicalPayload::Insert { dataset } => {
                let input = one_input(inputs, "INSERT")?;
                let dataset = dataset.open(&runtime)?;
                let schema = dataset.schema().clone();
                let sink = VecfusionSink::for_table(&session_of(ctx), dataset, schema)?;
                Arc::new(DataSinkExec::new(input, Arc::new(sink), None))
            }
            PhysicalPayload::Delete { dataset } => {
                let input = one_input(inputs, "DELETE")?;
                Arc::new(DeleteExec::new(dataset.open(&runtime)?, input))
            }
            PhysicalPayload::Update {
                dataset,
                assignments,
            } => {
                let input = one_input(inputs, "UPDATE")?;
                let dataset = dataset.open(&runtime)?;
                let schema = dataset.schema().clone();
                let assignments = assignments
                    .iter()
                    .map(|(column, expr)| {
                        if *column >= schema.fields().len() {
                            return plan_err!("UPDATE sets column {column}, which the table lacks");
                        }
                        Ok((*column, physical_from_bytes(expr, ctx, &schema, self)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Arc::new(UpdateExec::from_parts(
                    &session_of(ctx),
                    dataset,
                    input,
                    assignments,
                )?)
            }
        })
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let payload = if let Some(scan) = node.downcast_ref::<VecfusionScanExec>() {
            let r = scan.request();
            PhysicalPayload::Scan {
                dataset: DatasetRef::of(scan.dataset()),
                projection: r.projection.clone(),
                filters: scan_filters_to_bytes(&r.filters)?,
                limit: r.limit,
                with_row_address: r.with_row_address,
                fragments: r.fragments.clone(),
                whole_fragments: r.whole_fragments,
                partitions: scan.properties().partitioning.partition_count(),
            }
        } else if let Some(ann) = node.downcast_ref::<AnnSearchExec>() {
            let s = ann.search();
            PhysicalPayload::AnnSearch {
                dataset: DatasetRef::of(s.dataset()),
                column: s.column(),
                function: s.function().name().to_string(),
                index: s.index_position(),
                params: s.params(),
                queries: s.queries().to_vec(),
                output: ann.output().clone(),
                fetch: ann.fetch(),
            }
        } else if let Some((stage, target)) = index_stage(&node) {
            PhysicalPayload::IndexStage {
                stage,
                spec: target.spec.clone(),
                dataset: DatasetRef::of(&target.dataset),
                dim: target.dim,
            }
        } else if let Some(model) = node.downcast_ref::<IndexModelExec>() {
            let target = model.target();
            PhysicalPayload::IndexModel {
                spec: target.spec.clone(),
                dataset: DatasetRef::of(&target.dataset),
                dim: target.dim,
                model: model.model().clone(),
                rows: model.rows(),
            }
        } else if let Some(optimize) = node.downcast_ref::<OptimizeVectorIndexExec>() {
            PhysicalPayload::OptimizeIndex {
                spec: optimize.spec().clone(),
                dataset: DatasetRef::of(optimize.dataset()),
                dim: optimize.dim(),
            }
        } else if let Some(generator) = node.downcast_ref::<RandomVectorsExec>() {
            PhysicalPayload::RandomVectors {
                spec: *generator.spec(),
                projection: generator.projection().map(<[usize]>::to_vec),
                partitions: generator.properties().partitioning.partition_count(),
            }
        } else if let Some(sink) = node
            .downcast_ref::<DataSinkExec>()
            .and_then(|exec| exec.sink().downcast_ref::<VecfusionSink>())
        {
            PhysicalPayload::Insert {
                dataset: DatasetRef::of(sink.dataset()),
            }
        } else if let Some(delete) = node.downcast_ref::<DeleteExec>() {
            PhysicalPayload::Delete {
                dataset: DatasetRef::of(delete.dataset()),
            }
        } else if let Some(update) = node.downcast_ref::<UpdateExec>() {
            PhysicalPayload::Update {
                dataset: DatasetRef::of(update.dataset()),
                assignments: update
                    .assignments()
                    .iter()
                    .map(|(column, expr)| Ok((*column, physical_to_bytes(expr, self)?)))
                    .collect::<Result<_>>()?,
            }
        } else {
            return not_impl_err!(
                "{} is not one of vecfusion's plans; it cannot be sent to a cluster by \
                 vecfusion's codec",
                node.name()
            );
        };
        encode(&payload, buf).map_err(|e| internal_datafusion_err!("{e}"))
    }
}

/// The stage of an index build `node` is, if it is one.
fn index_stage(node: &Arc<dyn ExecutionPlan>) -> Option<(IndexStage, &BuildTarget)> {
    if let Some(e) = node.downcast_ref::<IndexSampleExec>() {
        Some((IndexStage::Sample, e.target()))
    } else if let Some(e) = node.downcast_ref::<IndexTrainExec>() {
        Some((IndexStage::Train, e.target()))
    } else if let Some(e) = node.downcast_ref::<IndexEncodeExec>() {
        Some((IndexStage::Encode, e.target()))
    } else {
        node.downcast_ref::<IndexCommitExec>()
            .map(|e| (IndexStage::Commit, e.target()))
    }
}
