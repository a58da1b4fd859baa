//! The *prefilter* of a search: a scan of the table with the query's `WHERE` predicates that
//! yields the addresses of the rows they allow, evaluated before the top-k.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;
use roaring::RoaringBitmap;

use crate::dataset::{Dataset, split_row_address};
use crate::provider::VecfusionScanExec;

/// Rows a filter allows, per fragment.
pub type AllowedRows = HashMap<u32, RoaringBitmap>;

/// The scan yielding the addresses of the rows `filters` allow (`None` without filters).
pub async fn prefilter_scan(
    session: &dyn Session,
    dataset: &Dataset,
    filters: Vec<Expr>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let scan =
        VecfusionScanExec::row_addresses(session, dataset.clone(), Some(vec![]), filters).await?;
    Ok(Some(Arc::new(scan)))
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

/// How many rows `allowed` holds.
pub fn allowed_count(allowed: &AllowedRows) -> u64 {
    allowed.values().map(|b| b.len()).sum()
}
