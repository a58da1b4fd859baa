//! `VecfusionScanExec`: reads the fragments of one dataset version.
//!
//! Fragments are split into runs of record batches spread over DataFusion's target
//! partitions. Each partition decodes its batches (zero-copy from mapped files), drops deleted
//! rows with the fragment's deletion vector, applies the pushed-down filters exactly, and stops
//! early at a pushed-down limit. The same exec, asked for row addresses, is the input of
//! `DELETE`, `UPDATE` and index builds.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, RecordBatchOptions, UInt64Array};
use datafusion::arrow::compute::kernels::boolean::and;
use datafusion::arrow::compute::{filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Statistics, exec_datafusion_err, internal_err, plan_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
    StatisticsArgs,
};
use roaring::RoaringBitmap;

use super::filters::to_physical_exprs;
use crate::dataset::deletion::keep_mask;
use crate::dataset::{Dataset, FragmentReader, row_address};
use crate::plan_properties::streaming_source;

/// Name of the row-address column a scan appends when asked (`UInt64`,
/// `fragment_id << 32 | offset`).
pub const ROW_ADDRESS_COLUMN: &str = "_rowaddr";

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Table columns to return, in this order (all when `None`).
    pub projection: Option<Vec<usize>>,
    /// Conjunctive filters over table columns, applied exactly.
    pub filters: Vec<Expr>,
    pub limit: Option<usize>,
    /// Append the [`ROW_ADDRESS_COLUMN`].
    pub with_row_address: bool,
    /// Read only these fragments (by id; all when `None`).
    pub fragments: Option<Vec<u32>>,
    /// Keep each fragment in one partition (partitions are groups of whole fragments), for
    /// readers whose output is per fragment: an index build's encode tasks each write the
    /// segment of the fragments they read.
    pub whole_fragments: bool,
}

/// A run of record batches of one fragment.
#[derive(Debug, Clone, PartialEq)]
struct ScanTask {
    fragment: usize,
    batches: Range<usize>,
}

/// Everything a partition stream needs, shared by all partitions.
#[derive(Debug)]
struct ScanShared {
    dataset: Dataset,
    deletions: Vec<Arc<RoaringBitmap>>,
    /// Table columns decoded from the files: the projection plus the filters' columns.
    read_columns: Vec<usize>,
    /// For each output table column, its position among `read_columns`.
    output_positions: Vec<usize>,
    /// Filters planned against the decoded (read) schema.
    filters: Vec<Arc<dyn PhysicalExpr>>,
    with_row_address: bool,
    schema: SchemaRef,
}

#[derive(Debug)]
pub struct VecfusionScanExec {
    shared: Arc<ScanShared>,
    request: ScanRequest,
    partitions: Vec<Vec<ScanTask>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl VecfusionScanExec {
    /// A scan of `projection` (every column when `None`) with the row-address column
    /// appended, keeping the rows `filters` allow, over the session's target partitions: the
    /// input of `DELETE`/`UPDATE`, of index builds and of search prefilters.
    pub async fn row_addresses(
        session: &dyn Session,
        dataset: Dataset,
        projection: Option<Vec<usize>>,
        filters: Vec<Expr>,
    ) -> Result<Self> {
        let request = ScanRequest {
            projection,
            filters,
            with_row_address: true,
            ..Default::default()
        };
        let target = session.config().target_partitions();
        Self::try_new(session, dataset, request, target).await
    }

    /// A scan of the column at `column` with row addresses, of `fragments` (ids; all when
    /// `None`), each partition a group of whole fragments (at most the session's target
    /// partitions): what the encode tasks of an index build read.
    pub async fn fragment_groups(
        session: &dyn Session,
        dataset: Dataset,
        column: usize,
        fragments: Option<Vec<u32>>,
    ) -> Result<Self> {
        let request = ScanRequest {
            projection: Some(vec![column]),
            with_row_address: true,
            whole_fragments: true,
            fragments,
            ..Default::default()
        };
        let target = session.config().target_partitions();
        Self::try_new(session, dataset, request, target).await
    }

    pub async fn try_new(
        state: &dyn Session,
        dataset: Dataset,
        request: ScanRequest,
        target_partitions: usize,
    ) -> Result<Self> {
        let table_schema = dataset.schema().clone();
        let projection: Vec<usize> = request
            .projection
            .clone()
            .unwrap_or_else(|| (0..table_schema.fields().len()).collect());
        let mut read: BTreeSet<usize> = projection.iter().copied().collect();
        for f in &request.filters {
            for c in f.column_refs() {
                read.insert(table_schema.index_of(&c.name)?);
            }
        }
        let read_columns: Vec<usize> = read.into_iter().collect();
        let read_schema = Arc::new(table_schema.project(&read_columns)?);
        let output_positions = projection
            .iter()
            .map(|c| {
                read_columns
                    .iter()
                    .position(|r| r == c)
                    .expect("projected column is read")
            })
            .collect();
        let filters = to_physical_exprs(state, &read_schema, &request.filters)?;

        let mut fields: Vec<Field> = projection
            .iter()
            .map(|i| table_schema.field(*i).clone())
            .collect();
        if request.with_row_address {
            fields.push(Field::new(ROW_ADDRESS_COLUMN, DataType::UInt64, false));
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            table_schema.metadata().clone(),
        ));

        let mut deletions = Vec::with_capacity(dataset.fragments().len());
        for frag in dataset.fragments() {
            deletions.push(dataset.deletions(frag).await?);
        }
        let partitions = plan_tasks(&dataset, &deletions, &request, target_partitions);
        let properties = streaming_source(schema.clone(), partitions.len());
        Ok(Self {
            shared: Arc::new(ScanShared {
                dataset,
                deletions,
                read_columns,
                output_positions,
                filters,
                with_row_address: request.with_row_address,
                schema,
            }),
            request,
            partitions,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    pub fn dataset(&self) -> &Dataset {
        &self.shared.dataset
    }

    /// What this scan reads (with [`Self::dataset`] and its partition count, all that is
    /// needed to make the same scan again: `codec` ships scans so).
    pub fn request(&self) -> &ScanRequest {
        &self.request
    }

    /// Live (not deleted) rows the given tasks cover.
    fn live_rows(&self, tasks: &[ScanTask]) -> usize {
        tasks
            .iter()
            .map(|t| live_rows_in(&self.shared.dataset, &self.shared.deletions, t))
            .sum()
    }
}

fn live_rows_in(dataset: &Dataset, deletions: &[Arc<RoaringBitmap>], task: &ScanTask) -> usize {
    let frag = &dataset.fragments()[task.fragment];
    let rpb = frag.rows_per_batch as u64;
    let start = task.batches.start as u64 * rpb;
    let end = (task.batches.end as u64 * rpb).min(frag.physical_rows);
    let deleted = deletions[task.fragment].range_cardinality(start as u32..end as u32);
    (end - start - deleted) as usize
}

/// Splits the fragments' batches into at most `target` partitions of about equal size. With
/// a limit and no filters, only the leading batches that hold `limit` live rows are read.
fn plan_tasks(
    dataset: &Dataset,
    deletions: &[Arc<RoaringBitmap>],
    request: &ScanRequest,
    target: usize,
) -> Vec<Vec<ScanTask>> {
    let mut runs: Vec<ScanTask> = dataset
        .fragments()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.live_rows() > 0)
        .filter(|(_, f)| {
            request
                .fragments
                .as_ref()
                .is_none_or(|ids| ids.contains(&f.id))
        })
        .map(|(i, f)| ScanTask {
            fragment: i,
            batches: 0..f.num_batches(),
        })
        .collect();
    if let (Some(limit), true) = (request.limit, request.filters.is_empty()) {
        let mut kept = vec![];
        let mut rows = 0;
        'outer: for run in runs {
            for b in run.batches.clone() {
                let one = ScanTask {
                    fragment: run.fragment,
                    batches: b..b + 1,
                };
                rows += live_rows_in(dataset, deletions, &one);
                kept.push(one);
                if rows >= limit {
                    break 'outer;
                }
            }
        }
        return vec![kept];
    }
    if request.whole_fragments {
        return group_fragments(runs, target);
    }
    let total: usize = runs.iter().map(|r| r.batches.len()).sum();
    let parts = target.max(1).min(total.max(1));
    let per_part = total.div_ceil(parts).max(1);
    let mut out: Vec<Vec<ScanTask>> = vec![vec![]];
    let mut in_current = 0;
    runs.reverse();
    while let Some(mut run) = runs.pop() {
        if in_current == per_part && out.len() < parts {
            out.push(vec![]);
            in_current = 0;
        }
        let take = (per_part - in_current).min(run.batches.len()).max(1);
        let head = ScanTask {
            fragment: run.fragment,
            batches: run.batches.start..run.batches.start + take,
        };
        run.batches.start += take;
        in_current += take;
        out.last_mut().expect("one partition").push(head);
        if !run.batches.is_empty() {
            runs.push(run);
        }
    }
    out
}

/// Whole fragments into at most `target` partitions of about equal batches: the largest
/// first, each to the partition with the fewest batches so far (ties to the lowest index, so
/// every process groups a version the same way).
fn group_fragments(mut runs: Vec<ScanTask>, target: usize) -> Vec<Vec<ScanTask>> {
    let parts = target.max(1).min(runs.len().max(1));
    let mut out: Vec<(usize, Vec<ScanTask>)> = vec![(0, vec![]); parts];
    runs.sort_by_key(|r| (std::cmp::Reverse(r.batches.len()), r.fragment));
    for run in runs {
        let (batches, tasks) = out
            .iter_mut()
            .min_by_key(|(batches, _)| *batches)
            .expect("at least one partition");
        *batches += run.batches.len();
        tasks.push(run);
    }
    out.into_iter()
        .map(|(_, mut tasks)| {
            tasks.sort_by_key(|t| t.fragment);
            tasks
        })
        .collect()
}

impl DisplayAs for VecfusionScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let ds = &self.shared.dataset;
        let names: Vec<&str> = self
            .shared
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let fragments = match &self.request.fragments {
            Some(ids) => ids.len(),
            None => ds.fragments().len(),
        };
        write!(
            f,
            "VecfusionScanExec: dataset={} version={} fragments={fragments} projection=[{}]",
            ds.uri(),
            ds.version(),
            names.join(", ")
        )?;
        if !self.request.filters.is_empty() {
            let filters: Vec<String> = self.request.filters.iter().map(|e| e.to_string()).collect();
            write!(f, " filters=[{}]", filters.join(", "))?;
        }
        if let Some(limit) = self.request.limit {
            write!(f, " limit={limit}")?;
        }
        if self.request.whole_fragments {
            write!(f, " partitions=whole_fragments")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for VecfusionScanExec {
    fn name(&self) -> &str {
        "VecfusionScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for e in &self.shared.filters {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            internal_err!("VecfusionScanExec has no children")
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let tasks = self.partitions.get(partition).ok_or_else(|| {
            exec_datafusion_err!("VecfusionScanExec has no partition {partition}")
        })?;
        let state = PartitionState {
            shared: self.shared.clone(),
            tasks: tasks.iter().cloned().collect(),
            current: None,
            remaining: self.request.limit,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            rows_scanned: MetricBuilder::new(&self.metrics).counter("rows_scanned", partition),
            batches_read: MetricBuilder::new(&self.metrics).counter("batches_read", partition),
        };
        let stream = futures::stream::try_unfold(state, |mut s| async move {
            Ok(s.next_batch().await?.map(|b| (b, s)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.shared.schema.clone(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let rows = match args.partition() {
            Some(p) => self.partitions.get(p).map_or(0, |t| self.live_rows(t)),
            None => self.partitions.iter().map(|t| self.live_rows(t)).sum(),
        };
        let rows = self.request.limit.map_or(rows, |l| rows.min(l));
        let precision = if self.request.filters.is_empty() {
            Precision::Exact(rows)
        } else {
            Precision::Inexact(rows)
        };
        Ok(Arc::new(
            Statistics::new_unknown(&self.shared.schema).with_num_rows(precision),
        ))
    }
}

struct CurrentRun {
    reader: Arc<FragmentReader>,
    fragment: usize,
    batches: Range<usize>,
}

struct PartitionState {
    shared: Arc<ScanShared>,
    tasks: VecDeque<ScanTask>,
    current: Option<CurrentRun>,
    remaining: Option<usize>,
    baseline: BaselineMetrics,
    rows_scanned: Count,
    batches_read: Count,
}

impl PartitionState {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.remaining == Some(0) {
                return Ok(None);
            }
            let run = match &mut self.current {
                Some(run) if !run.batches.is_empty() => run,
                _ => {
                    let Some(task) = self.tasks.pop_front() else {
                        return Ok(None);
                    };
                    let ds = &self.shared.dataset;
                    let reader = ds.fragment_reader(&ds.fragments()[task.fragment]).await?;
                    self.current = Some(CurrentRun {
                        reader,
                        fragment: task.fragment,
                        batches: task.batches,
                    });
                    continue;
                }
            };
            let batch_idx = run.batches.start;
            run.batches.start += 1;
            let (reader, fragment) = (run.reader.clone(), run.fragment);
            let timer = self.baseline.elapsed_compute().timer();
            let out = self.decode(&reader, fragment, batch_idx)?;
            timer.done();
            let Some(mut out) = out else { continue };
            if let Some(remaining) = &mut self.remaining {
                if out.num_rows() > *remaining {
                    out = out.slice(0, *remaining);
                }
                *remaining -= out.num_rows();
            }
            self.baseline.record_output(out.num_rows());
            return Ok(Some(out));
        }
    }

    /// One record batch with deleted rows and filtered-out rows removed; `None` if empty.
    fn decode(
        &self,
        reader: &FragmentReader,
        fragment: usize,
        batch_idx: usize,
    ) -> Result<Option<RecordBatch>> {
        let shared = &self.shared;
        let batch = reader.read_batch(batch_idx, Some(&shared.read_columns))?;
        let rows = batch.num_rows();
        self.rows_scanned.add(rows);
        self.batches_read.add(1);
        let start = reader.batch_start(batch_idx);
        let mut mask = keep_mask(&shared.deletions[fragment], start as u32, rows as u32);
        for filter in &shared.filters {
            let value = filter.evaluate(&batch)?.into_array(rows)?;
            let value = value
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| {
                    plan_datafusion_err!("filter {filter} does not evaluate to a boolean")
                })?;
            let value = if value.null_count() > 0 {
                prep_null_mask_filter(value)
            } else {
                value.clone()
            };
            mask = Some(match mask {
                Some(m) => and(&m, &value)?,
                None => value,
            });
        }
        if let Some(m) = &mask
            && m.true_count() == 0
        {
            return Ok(None);
        }
        let mut columns: Vec<_> = shared
            .output_positions
            .iter()
            .map(|p| batch.column(*p).clone())
            .collect();
        if shared.with_row_address {
            let id = shared.dataset.fragments()[fragment].id;
            let addrs: UInt64Array = (start..start + rows)
                .map(|o| row_address(id, o as u32))
                .collect();
            columns.push(Arc::new(addrs));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let out = RecordBatch::try_new_with_options(shared.schema.clone(), columns, &options)?;
        Ok(Some(match mask {
            // arrow's filter needs a column to count rows by
            Some(m) if out.num_columns() == 0 => RecordBatch::try_new_with_options(
                shared.schema.clone(),
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(m.true_count())),
            )?,
            Some(m) => filter_record_batch(&out, &m)?,
            None => out,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
    use datafusion::physical_plan::{ExecutionPlan, collect};
    use datafusion::prelude::{SessionContext, col, lit};

    use super::{ScanRequest, VecfusionScanExec};
    use crate::dataset::{Dataset, split_row_address};
    use crate::test_support::{create_table, latest, session_after};

    /// Two fragments of 20,000 rows (ids 0..20,000 twice), with ids < 100 deleted.
    async fn dataset(dir: &std::path::Path) -> (SessionContext, Dataset) {
        let ctx = session_after(&[
            create_table(dir, "id BIGINT, embedding FLOAT[2]"),
            "INSERT INTO t SELECT * FROM random_vectors(20000, 2)".into(),
            "INSERT INTO t SELECT * FROM random_vectors(20000, 2)".into(),
            "DELETE FROM t WHERE id < 100".into(),
        ])
        .await;
        (ctx, latest(dir).await)
    }

    fn ids(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn partitions_cover_every_live_row_once_with_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, dataset) = dataset(dir.path()).await;
        let request = ScanRequest {
            projection: Some(vec![0]),
            with_row_address: true,
            ..Default::default()
        };
        let scan = VecfusionScanExec::try_new(&ctx.state(), dataset, request, 3)
            .await
            .unwrap();
        let partitions = scan.properties().partitioning.partition_count();
        assert_eq!(partitions, 3);
        let mut addresses = vec![];
        let mut seen = vec![];
        for p in 0..partitions {
            let stream = scan.execute(p, ctx.task_ctx()).unwrap();
            let batches = datafusion::physical_plan::common::collect(stream)
                .await
                .unwrap();
            seen.extend(ids(&batches));
            for b in &batches {
                assert_eq!(b.schema().field(1).name(), "_rowaddr");
                addresses.extend(b.column(1).as_primitive::<UInt64Type>().values().to_vec());
            }
        }
        assert_eq!(seen.len(), 2 * 19_900);
        assert!(seen.iter().all(|id| *id >= 100));
        // An address names the row's fragment and offset: id = offset in both fragments.
        for (id, addr) in seen.iter().zip(&addresses) {
            assert_eq!(split_row_address(*addr).1 as i64, *id);
        }
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), seen.len());
    }

    #[tokio::test]
    async fn whole_fragment_partitions_keep_each_fragment_in_one() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, dataset) = dataset(dir.path()).await;
        let request = ScanRequest {
            projection: Some(vec![0]),
            with_row_address: true,
            whole_fragments: true,
            ..Default::default()
        };
        // More partitions asked for than there are fragments: one per fragment.
        let scan = VecfusionScanExec::try_new(&ctx.state(), dataset, request, 8)
            .await
            .unwrap();
        assert_eq!(scan.properties().partitioning.partition_count(), 2);
        let mut rows = 0;
        for p in 0..2 {
            let stream = scan.execute(p, ctx.task_ctx()).unwrap();
            let batches = datafusion::physical_plan::common::collect(stream)
                .await
                .unwrap();
            let fragments: BTreeSet<u32> = batches
                .iter()
                .flat_map(|b| b.column(1).as_primitive::<UInt64Type>().values().to_vec())
                .map(|a| split_row_address(a).0)
                .collect();
            assert_eq!(fragments.len(), 1, "partition {p} holds {fragments:?}");
            rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        assert_eq!(rows, 2 * 19_900);
    }

    #[tokio::test]
    async fn filters_apply_exactly_and_a_limit_reads_only_leading_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, dataset) = dataset(dir.path()).await;
        let filtered = ScanRequest {
            projection: Some(vec![0]),
            filters: vec![col("id").lt(lit(150i64))],
            ..Default::default()
        };
        let scan = VecfusionScanExec::try_new(&ctx.state(), dataset.clone(), filtered, 2)
            .await
            .unwrap();
        let mut got = ids(&collect(std::sync::Arc::new(scan), ctx.task_ctx())
            .await
            .unwrap());
        got.sort_unstable();
        let want: Vec<i64> = (100..150).flat_map(|i| [i, i]).collect();
        assert_eq!(got, want);

        let limited = ScanRequest {
            projection: Some(vec![0]),
            limit: Some(10),
            ..Default::default()
        };
        let scan = VecfusionScanExec::try_new(&ctx.state(), dataset, limited, 4)
            .await
            .unwrap();
        assert_eq!(scan.properties().partitioning.partition_count(), 1);
        // The first 8,192-row batch holds ten live rows: one task, stopped at the limit.
        assert_eq!(
            scan.partitions,
            vec![vec![super::ScanTask {
                fragment: 0,
                batches: 0..1
            }]]
        );
        let rows = ids(&collect(std::sync::Arc::new(scan), ctx.task_ctx())
            .await
            .unwrap());
        assert_eq!(rows, (100..110).collect::<Vec<i64>>());
    }
}
