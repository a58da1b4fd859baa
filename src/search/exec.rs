//! `AnnSearchExec`: runs a [`PreparedSearch`] — a top-k distance query over one dataset
//! version, through its vector index when one fits — and yields the rows it finds, fetched by
//! address.
//!
//! Its optional child is the search's *prefilter*: a scan of the table with the query's
//! `WHERE` predicates that yields the addresses of the allowed rows, evaluated before the
//! top-k. Metrics (`EXPLAIN ANALYZE`) say how much of the index the search touched.
//!
//! A query's plan is this operator alone where it can be: a limit above it becomes its
//! `fetch` and a projection of its columns its [`SearchOutput`] (DataFusion's limit and
//! projection pushdown), and without a prefilter it takes part in Tokio's cooperative
//! scheduling itself. Each operator left above it is planned, started and polled on every
//! query, and a search of tens of microseconds cannot afford them.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::SchedulingType;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream,
};

use super::prefilter::allowed_count;
use super::request::{DISTANCE_COLUMN, PreparedSearch, QUERY_INDEX_COLUMN, SearchOutput};
use crate::plan_properties::{single_final_sorted, whole_inputs};

#[derive(Debug)]
pub struct AnnSearchExec {
    search: PreparedSearch,
    output: SearchOutput,
    /// At most this many rows are yielded (the first ones, in the search's order).
    fetch: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AnnSearchExec {
    pub fn new(search: PreparedSearch, output: SearchOutput) -> Self {
        let schema = output.schema(search.dataset().schema());
        let mut properties = single_final_sorted(schema.clone(), output_ordering(&search, &output));
        // Its one batch passes through Tokio's budget (`execute`). With a prefilter, the scan
        // below keeps its own cooperation, which DataFusion adds only under a plan that
        // does not cooperate itself.
        if search.prefilter().is_none() {
            properties = Arc::new(
                Arc::unwrap_or_clone(properties).with_scheduling_type(SchedulingType::Cooperative),
            );
        }
        Self {
            properties,
            schema,
            search,
            output,
            fetch: None,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The same plan yielding at most `fetch` rows.
    pub fn with_fetch_of(mut self, fetch: Option<usize>) -> Self {
        self.fetch = fetch;
        self
    }

    /// The search this plan runs.
    pub fn search(&self) -> &PreparedSearch {
        &self.search
    }

    /// What it returns per row.
    pub fn output(&self) -> &SearchOutput {
        &self.output
    }

    /// The same plan searching for other query vectors (fresh metrics).
    pub fn with_queries(&self, queries: Vec<f32>) -> Result<Self> {
        let search = self.search.with_queries(queries)?;
        if search.num_queries() != self.search.num_queries() {
            return Ok(Self::new(search, self.output.clone()).with_fetch_of(self.fetch));
        }
        // As many queries of the same dimension: the same schema and order. The same
        // properties object, too, so that the operators above, rebuilt over this one, keep
        // theirs (DataFusion compares them by address) instead of deriving them again.
        Ok(Self {
            search,
            output: self.output.clone(),
            fetch: self.fetch,
            schema: self.schema.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// The order of the rows a search yields: each query's closest first, queries in turn. The
/// distance column is sorted as the `ORDER BY` the search serves sorts it (`inner_product`
/// descending, every other function ascending), so the sort above the search is satisfied
/// and DataFusion replaces it with a limit. Without the distance column, or with several
/// queries and no query index, nothing is said.
fn output_ordering(search: &PreparedSearch, output: &SearchOutput) -> Vec<PhysicalSortExpr> {
    if !output.with_distance || (search.num_queries() != 1 && !output.with_query_index) {
        return vec![];
    }
    let columns = search.dataset().schema().fields().len();
    let table_columns = output.projection.as_ref().map_or(columns, Vec::len);
    let sorted = |name: &str, index: usize, descending: bool| {
        PhysicalSortExpr::new(
            Arc::new(Column::new(name, index)),
            // As `ORDER BY` writes them by default: ASC NULLS LAST, DESC NULLS FIRST.
            SortOptions {
                descending,
                nulls_first: descending,
            },
        )
    };
    let mut ordering = vec![];
    if output.with_query_index {
        ordering.push(sorted(QUERY_INDEX_COLUMN, 0, false));
    }
    let distance = usize::from(output.with_query_index) + table_columns;
    let descending = !search.function().ascending_is_closest();
    ordering.push(sorted(DISTANCE_COLUMN, distance, descending));
    ordering
}

impl DisplayAs for AnnSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.search;
        let p = s.params();
        let column = s.dataset().schema().field(s.column()).name();
        write!(
            f,
            "AnnSearchExec: {}({column}, [{} values]) k={} index={} nprobes={} refine_factor={} \
             prefilter={}",
            s.function().name(),
            s.dim(),
            p.k,
            s.index().as_deref().unwrap_or("none (exact search)"),
            p.nprobes,
            p.refine_factor,
            if s.prefilter().is_some() { "yes" } else { "no" }
        )?;
        match self.fetch {
            Some(fetch) => write!(f, " fetch={fetch}"),
            None => Ok(()),
        }
    }
}

impl ExecutionPlan for AnnSearchExec {
    fn name(&self) -> &str {
        "AnnSearchExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        whole_inputs(self.children().len())
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.search.prefilter().into_iter().collect()
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.children().len() {
            return internal_err!("AnnSearchExec: wrong number of children");
        }
        let search = self.search.with_prefilter(children.into_iter().next());
        Ok(Arc::new(
            Self::new(search, self.output.clone()).with_fetch_of(self.fetch),
        ))
    }
    fn fetch(&self) -> Option<usize> {
        self.fetch
    }
    fn with_fetch(&self, fetch: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let fetch = match (self.fetch, fetch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Arc::new(
            Self::new(self.search.clone(), self.output.clone()).with_fetch_of(fetch),
        ))
    }
    /// A projection of the search's own columns (in any order, the query index first if
    /// it has one) becomes its output: the rows are fetched with those columns alone.
    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let columns = projection
            .expr()
            .iter()
            .map(|p| match p.expr.downcast_ref::<Column>() {
                Some(c) if c.name() == p.alias => Some(c.index()),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>();
        let table_columns = self.search.dataset().schema().fields().len();
        Ok(columns
            .and_then(|c| self.output.select(&c, table_columns))
            .map(|output| {
                Arc::new(Self::new(self.search.clone(), output).with_fetch_of(self.fetch)) as _
            }))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (search, output, fetch) = (self.search.clone(), self.output.clone(), self.fetch);
        let counter = |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, 0);
        let baseline = BaselineMetrics::new(&self.metrics, 0);
        let (partitions_probed, rows_scored, rows_exact, prefilter_rows) = (
            counter("partitions_probed"),
            counter("rows_scored"),
            counter("rows_exact"),
            counter("prefilter_rows"),
        );
        let fut = async move {
            let allowed = search.allowed_rows(context).await?;
            if let Some(a) = &allowed {
                prefilter_rows.add(allowed_count(a) as usize);
            }
            let timer = baseline.elapsed_compute().timer();
            let outcomes = search.search(allowed.map(Arc::new)).await?;
            for o in &outcomes {
                partitions_probed.add(o.stats.partitions_probed);
                rows_scored.add(o.stats.rows_scored);
                rows_exact.add(o.stats.rows_exact);
            }
            let mut batch = search.rows(&outcomes, &output).await?;
            if let Some(fetch) = fetch.filter(|f| *f < batch.num_rows()) {
                batch = batch.slice(0, fetch);
            }
            timer.done();
            baseline.record_output(batch.num_rows());
            Ok(batch)
        };
        let stream = RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(Box::pin(fut)),
        );
        Ok(match self.properties.scheduling_type {
            SchedulingType::Cooperative => Box::pin(cooperative(stream)),
            SchedulingType::NonCooperative => Box::pin(stream),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float32Type, Int64Type};
    use datafusion::physical_plan::execution_plan::{
        ChildrenPropertiesMode, ReplaceChildrenOptions,
    };
    use datafusion::physical_plan::{ExecutionPlan, collect};
    use datafusion::prelude::{SessionContext, col, lit};

    use super::AnnSearchExec;
    use crate::dataset::Dataset;
    use crate::search::{PreparedSearch, SearchOutput, SearchRequest};
    use crate::test_support::{create_table, latest, session_after};

    async fn indexed_table(dir: &std::path::Path) -> (SessionContext, Dataset) {
        let ctx = session_after(&[
            create_table(dir, "id BIGINT, embedding FLOAT[8]"),
            "INSERT INTO t SELECT * FROM random_vectors(3000, 8)".into(),
            "CREATE VECTOR INDEX i ON t (embedding) USING IVF_FLAT WITH (num_partitions = 6)"
                .into(),
        ])
        .await;
        (ctx, latest(dir).await)
    }

    fn metric(plan: &AnnSearchExec, name: &str) -> usize {
        plan.metrics()
            .unwrap()
            .sum_by_name(name)
            .map_or(0, |v| v.as_usize())
    }

    #[tokio::test]
    async fn the_stream_yields_k_rows_closest_first_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, dataset) = indexed_table(dir.path()).await;
        let request = SearchRequest {
            nprobes: Some(6),
            ..SearchRequest::new(vec![0.5; 8], 7)
        };
        let search = PreparedSearch::new(&ctx.state(), dataset, request)
            .await
            .unwrap();
        assert_eq!(search.index().as_deref(), Some("i (IVF_FLAT)"));
        let plan = Arc::new(AnnSearchExec::new(search, SearchOutput::all_columns()));
        assert!(plan.children().is_empty());
        let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 7);
        assert_eq!(batch.schema().field(2).name(), "_distance");
        let d = batch.column(2).as_primitive::<Float32Type>().values();
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
        // Every partition probed: every row was scored from the index's lists.
        assert_eq!(metric(&plan, "partitions_probed"), 6);
        assert_eq!(metric(&plan, "rows_scored"), 3000);
    }

    #[tokio::test]
    async fn the_prefilter_child_decides_which_rows_may_be_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, dataset) = indexed_table(dir.path()).await;
        let request = SearchRequest {
            filters: vec![col("id").lt(lit(2000i64))],
            ..SearchRequest::new(vec![0.5; 8], 5)
        };
        let search = PreparedSearch::new(&ctx.state(), dataset, request)
            .await
            .unwrap();
        let plan: Arc<dyn ExecutionPlan> = Arc::new(AnnSearchExec::new(
            search,
            SearchOutput {
                projection: Some(vec![0]),
                with_distance: false,
                with_query_index: false,
            },
        ));
        assert_eq!(plan.children().len(), 1);
        // Rebuilt over the same child, as optimizer passes do.
        let child = plan.children()[0].clone();
        let recompute = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
        let plan = plan.replace_children(vec![child], recompute).unwrap();
        let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        let ids = batches[0].column(0).as_primitive::<Int64Type>().values();
        assert_eq!(ids.len(), 5);
        assert!(ids.iter().all(|id| *id < 2000), "{ids:?}");
        let m = plan.metrics().unwrap();
        assert_eq!(m.sum_by_name("prefilter_rows").unwrap().as_usize(), 2000);
        assert!(plan.replace_children(vec![], recompute).is_err());
    }
}
