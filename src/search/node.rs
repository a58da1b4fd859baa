//! `AnnSearch`: the logical node [`super::rule::AnnRewrite`] puts in place of a table scan,
//! and its physical planning — an `AnnSearchExec` when the version being read has an index of
//! the right metric on the column, otherwise the exact scan the node replaced.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::{DFSchemaRef, internal_datafusion_err};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::ExecutionPlan;

use super::exec::AnnSearchExec;
use super::request::{PreparedSearch, SearchOutput, SearchRequest};
use crate::metric::DistanceFunction;
use crate::provider::VecfusionTable;

/// A top-k distance search standing in for a table scan.
#[derive(Debug, Clone)]
pub struct AnnSearchNode {
    /// The scan it replaces (planned as is when no index fits).
    pub scan: LogicalPlan,
    pub column: String,
    pub function: DistanceFunction,
    pub query: Vec<f32>,
    pub k: usize,
    /// Predicates over the table applied before the top-k.
    pub filters: Vec<Expr>,
}

impl AnnSearchNode {
    /// The query's bit patterns: how two nodes compare their (float) query vectors, without
    /// formatting them (optimizer passes compare and hash plans many times per statement).
    fn query_bits(&self) -> impl Iterator<Item = u32> + '_ {
        self.query.iter().map(|v| v.to_bits())
    }

    pub fn table_scan(&self) -> Option<&TableScan> {
        match &self.scan {
            LogicalPlan::TableScan(t) => Some(t),
            _ => None,
        }
    }

    /// The physical plan: the search through the index when the version read has one that
    /// answers this distance on this column, else `exact` (the replaced scan, planned).
    pub async fn plan(
        &self,
        exact: Arc<dyn ExecutionPlan>,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(scan) = self.table_scan() else {
            return Ok(exact);
        };
        let provider = source_as_provider(&scan.source)?;
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            return Ok(exact);
        };
        let dataset = table.dataset().await?;
        let request = SearchRequest {
            filters: self.filters.clone(),
            ..SearchRequest::new(self.query.clone(), self.k)
                .column(self.column.clone())
                .function(self.function)
        };
        let search = PreparedSearch::new(session, dataset, request).await?;
        if search.index().is_none() {
            return Ok(exact);
        }
        let output = SearchOutput {
            projection: Some(
                scan.projection
                    .clone()
                    .unwrap_or_else(|| (0..search.dataset().schema().fields().len()).collect()),
            ),
            with_distance: false,
            with_query_index: false,
        };
        Ok(Arc::new(AnnSearchExec::new(search, output)))
    }
}

impl PartialEq for AnnSearchNode {
    fn eq(&self, other: &Self) -> bool {
        self.column == other.column
            && self.function == other.function
            && self.k == other.k
            && self.query_bits().eq(other.query_bits())
            && self.filters == other.filters
            && self.scan == other.scan
    }
}

impl Eq for AnnSearchNode {}

impl Hash for AnnSearchNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.column.hash(state);
        self.function.hash(state);
        self.k.hash(state);
        self.query_bits().for_each(|b| b.hash(state));
        self.filters.hash(state);
    }
}

impl PartialOrd for AnnSearchNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let ordering = (&self.column, self.function, self.k)
            .cmp(&(&other.column, other.function, other.k))
            .then_with(|| self.query_bits().cmp(other.query_bits()));
        match ordering {
            Ordering::Equal => self.filters.partial_cmp(&other.filters),
            unequal => Some(unequal),
        }
    }
}

impl UserDefinedLogicalNodeCore for AnnSearchNode {
    fn name(&self) -> &str {
        "AnnSearch"
    }
    /// The replaced scan is the node's input, so DataFusion plans (and optimises) it as
    /// part of the whole plan: when no index fits, the physical plan is exactly the one the
    /// query would have had without the rule.
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.scan]
    }
    fn schema(&self) -> &DFSchemaRef {
        self.scan.schema()
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "AnnSearch: {}({}, [{} values]) k={}",
            self.function.name(),
            self.column,
            self.query.len(),
            self.k
        )?;
        if !self.filters.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(f, " prefilter=[{}]", filters.join(", "))?;
        }
        Ok(())
    }
    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let scan = inputs
            .pop()
            .ok_or_else(|| internal_datafusion_err!("AnnSearch needs its scan"))?;
        Ok(Self {
            scan,
            ..self.clone()
        })
    }
}
