//! `AnnSearch`: the logical node [`super::rule::AnnRewrite`] puts in place of a table scan,
//! and its physical planning — an `AnnSearchExec` when the version being read has an index of
//! the right metric on the column, otherwise the exact plan: the scan with the distance
//! computed for every row.
//!
//! The node is a leaf whose rows are the scan's columns and [`DISTANCE_COLUMN`], the exact
//! distance the query orders by. Plans above it read that column instead of calling the
//! distance function on the query literal again, so after the rewrite no optimizer pass or
//! physical planning step formats, compares or evaluates the literal; and the scan is planned
//! only when it is the answer (no index), not planned and then thrown away.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::{
    Expr, LogicalPlan, Projection, TableScan, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::PhysicalPlanner;

use super::exec::AnnSearchExec;
use super::request::{DISTANCE_COLUMN, PreparedSearch, SearchOutput, SearchRequest};
use crate::metric::DistanceFunction;
use crate::provider::VecfusionTable;

/// A top-k distance search standing in for a table scan.
#[derive(Debug, Clone)]
pub struct AnnSearchNode {
    /// The scan it replaces: the table, the columns read and the filters pushed into it.
    pub scan: TableScan,
    pub column: String,
    pub function: DistanceFunction,
    pub query: Vec<f32>,
    pub k: usize,
    /// Predicates over the table applied before the top-k.
    pub filters: Vec<Expr>,
    /// `function(column, query)` over the scan's columns: the exact plan's distance.
    distance: Expr,
    /// The scan's columns the node yields (positions in its projected schema): all of them
    /// at first, those the plan above reads once the rule has narrowed the node (the vector
    /// column is often needed only for the distance, which the node computes itself).
    columns: Vec<usize>,
    /// Those columns, then [`DISTANCE_COLUMN`] (qualified by the table).
    schema: DFSchemaRef,
}

impl AnnSearchNode {
    /// The search for the `k` rows of `scan` closest to `query` by `distance`, which is
    /// `function(column, query)` as the query wrote it.
    pub fn try_new(
        scan: TableScan,
        distance: Expr,
        (function, column, query): (DistanceFunction, String, Vec<f32>),
        k: usize,
        filters: Vec<Expr>,
    ) -> Result<Self> {
        let columns = (0..scan.projected_schema.fields().len()).collect();
        let mut node = Self {
            scan,
            column,
            function,
            query,
            k,
            filters,
            distance,
            columns,
            schema: Arc::new(DFSchema::empty()),
        };
        node.schema = node.schema_of(&node.columns)?;
        Ok(node)
    }

    /// `function(column, query)` as the query wrote it.
    pub fn distance(&self) -> &Expr {
        &self.distance
    }

    /// The scan's columns the node yields, by position in the scan's projected schema.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// The same search yielding only `columns` of the scan (and the distance).
    pub fn with_columns(&self, columns: Vec<usize>) -> Result<Self> {
        Ok(Self {
            schema: self.schema_of(&columns)?,
            columns,
            ..self.clone()
        })
    }

    fn schema_of(&self, columns: &[usize]) -> Result<DFSchemaRef> {
        let scan = &self.scan.projected_schema;
        let mut fields: Vec<_> = columns
            .iter()
            .map(|&i| {
                let (qualifier, field) = scan.qualified_field(i);
                (qualifier.cloned(), Arc::clone(field))
            })
            .collect();
        fields.push((
            Some(self.scan.table_name.clone()),
            Arc::new(Field::new(DISTANCE_COLUMN, DataType::Float32, true)),
        ));
        Ok(Arc::new(DFSchema::new_with_metadata(
            fields,
            scan.metadata().clone(),
        )?))
    }

    /// The query vector's bit patterns: how two nodes compare their (float) query vectors,
    /// without formatting them (optimizer passes compare and hash plans many times per
    /// statement).
    fn query_bits(&self) -> impl Iterator<Item = u32> + '_ {
        self.query.iter().map(|v| v.to_bits())
    }

    /// The physical plan: the search through the index when the version read has one that
    /// answers this distance on this column, else the exact plan (see [`Self::exact_plan`]).
    pub async fn plan(
        &self,
        planner: &dyn PhysicalPlanner,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(search) = self.indexed_search(session).await? else {
            return planner
                .create_physical_plan(&self.exact_plan()?, session)
                .await;
        };
        // Positions in the table of the columns yielded.
        let projection = self
            .columns
            .iter()
            .map(|&i| self.scan.projection.as_ref().map_or(i, |p| p[i]))
            .collect();
        let output = SearchOutput {
            projection: Some(projection),
            with_distance: true,
            with_query_index: false,
        };
        Ok(Arc::new(AnnSearchExec::new(search, output)))
    }

    /// The search, resolved against the version being read, if that version has an index
    /// that answers it.
    async fn indexed_search(&self, session: &dyn Session) -> Result<Option<PreparedSearch>> {
        let provider = source_as_provider(&self.scan.source)?;
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            return Ok(None);
        };
        let request = SearchRequest {
            filters: self.filters.clone(),
            ..SearchRequest::new(self.query.clone(), self.k)
                .column(self.column.clone())
                .function(self.function)
        };
        let search = PreparedSearch::new(session, table.dataset().await?, request).await?;
        Ok(search.index().is_some().then_some(search))
    }

    /// What the query computed without the rule: the scan, with the distance of every row as
    /// one more column (the sort above picks the top k).
    fn exact_plan(&self) -> Result<LogicalPlan> {
        let scan_columns = self.scan.projected_schema.columns();
        let mut columns: Vec<Expr> = self
            .columns
            .iter()
            .map(|&i| Expr::Column(scan_columns[i].clone()))
            .collect();
        columns.push(
            self.distance
                .clone()
                .alias_qualified(Some(self.scan.table_name.clone()), DISTANCE_COLUMN),
        );
        let scan = LogicalPlan::TableScan(self.scan.clone());
        Ok(LogicalPlan::Projection(Projection::try_new(
            columns,
            Arc::new(scan),
        )?))
    }
}

impl PartialEq for AnnSearchNode {
    fn eq(&self, other: &Self) -> bool {
        self.column == other.column
            && self.function == other.function
            && self.k == other.k
            && self.query_bits().eq(other.query_bits())
            && self.filters == other.filters
            && self.columns == other.columns
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
        self.columns.hash(state);
    }
}

impl PartialOrd for AnnSearchNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let ordering = (&self.column, self.function, self.k, &self.columns)
            .cmp(&(&other.column, other.function, other.k, &other.columns))
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
    /// A leaf: the scan it replaced is planned by [`AnnSearchNode::plan`] when no index fits.
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "AnnSearch: {}({}, [{} values]) k={} table={} projection=[{}]",
            self.function.name(),
            self.column,
            self.query.len(),
            self.k,
            self.scan.table_name,
            self.columns
                .iter()
                .map(|&i| self.scan.projected_schema.field(i).name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if !self.filters.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(f, " prefilter=[{}]", filters.join(", "))?;
        }
        Ok(())
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}
