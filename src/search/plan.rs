//! Physical planning of [`AnnSearchNode`]: an `AnnSearchExec` when the version being read has
//! an index of the right metric on the column, otherwise the exact scan the node replaced.

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;

use super::engine::{AllowedRows, SearchParams, metric_of};
use super::exec::{AnnQuery, AnnSearchExec};
use super::options::VecfusionOptions;
use super::rule::AnnSearchNode;
use crate::dataset::{Dataset, split_row_address};
use crate::metric::Metric;
use crate::provider::{ScanRequest, VecfusionScanExec, VecfusionTable};
use crate::udf::DistanceFunction;

/// The search parameters of the session.
pub fn session_params(session: &dyn Session, k: usize) -> SearchParams {
    let o = session
        .config_options()
        .extensions
        .get::<VecfusionOptions>()
        .cloned()
        .unwrap_or_default();
    SearchParams {
        k,
        nprobes: o.nprobes.max(1),
        refine_factor: o.refine_factor.max(1),
        use_index: o.use_index,
    }
}

/// A scan yielding the addresses of the rows `filters` allow (the prefilter), if any.
pub async fn prefilter_scan(
    session: &dyn Session,
    dataset: &Dataset,
    filters: Vec<datafusion::logical_expr::Expr>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let request = ScanRequest {
        projection: Some(vec![]),
        filters,
        limit: None,
        with_row_address: true,
    };
    let target = session.config().target_partitions();
    Ok(Some(Arc::new(
        VecfusionScanExec::try_new(session, dataset.clone(), request, target).await?,
    )))
}

/// Runs a prefilter scan and collects the addresses it yields, per fragment.
pub async fn collect_allowed(
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
) -> Result<AllowedRows> {
    let mut allowed = AllowedRows::new();
    let mut rows = execute_stream(plan, context)?;
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        let addrs = batch
            .column(batch.num_columns() - 1)
            .as_primitive::<UInt64Type>();
        for a in addrs.values() {
            let (frag, offset) = split_row_address(*a);
            allowed.entry(frag).or_default().insert(offset);
        }
    }
    Ok(allowed)
}

/// The distance function that answers searches on `column` when none is named: that of the
/// column's most recent index (`l2_distance` when it has none).
pub fn default_function(dataset: &Dataset, column: &str) -> DistanceFunction {
    let metric = dataset
        .manifest()
        .indexes
        .iter()
        .rev()
        .find(|i| i.column == column)
        .and_then(|i| Metric::parse(&i.metric).ok())
        .unwrap_or(Metric::L2);
    match metric {
        Metric::L2 => DistanceFunction::L2,
        Metric::Cosine => DistanceFunction::Cosine,
        Metric::Dot => DistanceFunction::InnerProduct,
    }
}

pub async fn plan_ann(
    node: &AnnSearchNode,
    exact: Arc<dyn ExecutionPlan>,
    session: &dyn Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    let params = session_params(session, node.k);
    let Some(scan) = node.table_scan() else {
        return Ok(exact);
    };
    let provider = source_as_provider(&scan.source)?;
    let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
        return Ok(exact);
    };
    if !params.use_index {
        return Ok(exact);
    }
    let dataset = table.dataset().await?;
    let metric = metric_of(node.function);
    let has_index = dataset
        .manifest()
        .indexes
        .iter()
        .any(|i| i.column == node.column && i.metric == metric.name());
    if !has_index {
        return Ok(exact);
    }
    let column = dataset.schema().index_of(&node.column)?;
    let projection = scan
        .projection
        .clone()
        .unwrap_or_else(|| (0..dataset.schema().fields().len()).collect());
    let prefilter = prefilter_scan(session, &dataset, node.filters.clone()).await?;
    let query = AnnQuery {
        column,
        function: node.function,
        query: node.query.clone(),
        params,
    };
    Ok(Arc::new(AnnSearchExec::new(
        dataset, query, projection, false, prefilter,
    )?))
}
