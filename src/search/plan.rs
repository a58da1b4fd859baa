//! Physical planning of [`AnnSearchNode`]: an `AnnSearchExec` when the version being read has
//! an index of the right metric on the column, otherwise the exact scan the node replaced.

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::PhysicalPlanner;

use super::engine::{SearchParams, metric_of};
use super::exec::{AnnQuery, AnnSearchExec};
use super::options::VecfusionOptions;
use super::rule::AnnSearchNode;
use crate::dataset::Dataset;
use crate::provider::{ScanRequest, VecfusionScanExec, VecfusionTable};

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

pub async fn plan_ann(
    node: &AnnSearchNode,
    planner: &dyn PhysicalPlanner,
    session: &dyn Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    let params = session_params(session, node.k);
    let exact = || planner.create_physical_plan(&node.scan, session);
    let Some(scan) = node.table_scan() else {
        return exact().await;
    };
    let provider = source_as_provider(&scan.source)?;
    let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
        return exact().await;
    };
    if !params.use_index {
        return exact().await;
    }
    let dataset = table.dataset().await?;
    let metric = metric_of(node.function);
    let has_index = dataset
        .manifest()
        .indexes
        .iter()
        .any(|i| i.column == node.column && i.metric == metric.name());
    if !has_index {
        return exact().await;
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
