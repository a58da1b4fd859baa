//! Running `CREATE VECTOR INDEX`, `OPTIMIZE VECTOR INDEX`, `DROP VECTOR INDEX` and `SHOW
//! VECTOR INDEXES`.

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::plan_err;
use datafusion::dataframe::DataFrame;
use datafusion::error::Result;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::prelude::SessionContext;

use super::blocks::BuildSpec;
use super::compact::compact;
use super::node::CreateVectorIndexNode;
use super::optimize::OptimizeSpec;
use super::optimize_node::OptimizeVectorIndexNode;
use super::options::{IndexOptions, OptimizeOptions, parse_target_rows};
use crate::dataset::{Dataset, Operation, vector_column};
use crate::provider::VecfusionTable;
use crate::quantizer::IndexKind;
use crate::sql::statement::{
    CreateVectorIndex, DropVectorIndex, OptimizeTable, OptimizeVectorIndex, ShowVectorIndexes,
};

/// The dataset of table `name`, which must be a writable vecfusion table.
async fn vecfusion_table(ctx: &SessionContext, name: &str) -> Result<Dataset> {
    let provider = ctx.table_provider(name).await?;
    let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
        return plan_err!(
            "table '{name}' is not a vecfusion table; vector indexes live in datasets created \
             with STORED AS VECFUSION"
        );
    };
    table.writable_dataset("index").await
}

/// Longest index name accepted, in characters.
pub const MAX_INDEX_NAME_CHARS: usize = 128;

/// Index names live only in manifests (index files are named by random ids, see
/// `dataset::files`), so any text is safe on disk; what is refused is what cannot be shown
/// or typed back: empty names, control characters, and names beyond
/// [`MAX_INDEX_NAME_CHARS`].
fn check_index_name(name: &str) -> Result<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_INDEX_NAME_CHARS {
        return plan_err!(
            "vector index names have 1 to {MAX_INDEX_NAME_CHARS} characters, this one has \
             {chars}; choose a shorter name"
        );
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return plan_err!(
            "vector index name {name:?} contains the control character {c:?}; use printable \
             characters"
        );
    }
    Ok(())
}

/// Plans `CREATE VECTOR INDEX` (optionally wrapped in `EXPLAIN [ANALYZE]`).
pub async fn create_plan(
    ctx: &SessionContext,
    stmt: &CreateVectorIndex,
) -> Result<Option<LogicalPlan>> {
    check_index_name(&stmt.name)?;
    let dataset = vecfusion_table(ctx, &stmt.table).await?;
    let (column_index, dim) = vector_column(dataset.schema(), &stmt.column)?;
    let kind = match &stmt.kind {
        Some(k) => IndexKind::parse(k)?,
        None => IndexKind::IvfPq,
    };
    let options = IndexOptions::parse(kind, &stmt.options)?;
    if let Some(existing) = dataset.manifest().index(&stmt.name) {
        if stmt.if_not_exists {
            return Ok(None);
        }
        if !options.replace {
            return plan_err!(
                "vector index '{}' already exists on {} ({} on column {}); use WITH (replace = \
                 true) to rebuild it, IF NOT EXISTS to keep it, or DROP VECTOR INDEX first",
                existing.name,
                stmt.table,
                existing.kind.name(),
                existing.column
            );
        }
    }
    // Check what can be checked before reading any data (the device is opened when the
    // build runs).
    options.resolve(dataset.count_rows(), dim)?;
    let spec = BuildSpec {
        name: stmt.name.clone(),
        column: stmt.column.clone(),
        options,
    };
    let node = CreateVectorIndexNode::try_new(spec, dataset, dim, column_index)?;
    Ok(Some(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    })))
}

/// Plans `OPTIMIZE VECTOR INDEX` (optionally wrapped in `EXPLAIN [ANALYZE]`).
pub async fn optimize_plan(
    ctx: &SessionContext,
    stmt: &OptimizeVectorIndex,
) -> Result<LogicalPlan> {
    let dataset = vecfusion_table(ctx, &stmt.table).await?;
    let Some(index) = dataset.manifest().index(&stmt.name).cloned() else {
        return plan_err!(
            "there is no vector index '{}' on {}; SHOW VECTOR INDEXES lists them",
            stmt.name,
            stmt.table
        );
    };
    let options = OptimizeOptions::parse(&stmt.options)?;
    let (column_index, dim) = vector_column(dataset.schema(), &index.column)?;
    let new_fragments = dataset
        .fragments()
        .iter()
        .filter(|f| f.live_rows() > 0 && !index.covers(f.id))
        .map(|f| f.id)
        .collect();
    let spec = OptimizeSpec {
        index,
        options,
        new_fragments,
    };
    // Check what can be checked before reading any data.
    spec.built_with()?;
    spec.accelerator()?;
    let node = OptimizeVectorIndexNode::try_new(spec, dataset, dim, column_index)?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}

/// `OPTIMIZE TABLE t [WITH (target_rows_per_fragment = n)]`: compaction; one result row.
pub async fn optimize_table(ctx: &SessionContext, stmt: &OptimizeTable) -> Result<DataFrame> {
    let target = parse_target_rows(&stmt.options)?;
    let dataset = vecfusion_table(ctx, &stmt.table).await?;
    let r = compact(&dataset, target).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("fragments_before", DataType::UInt64, false),
        Field::new("fragments_after", DataType::UInt64, false),
        Field::new("rows_rewritten", DataType::UInt64, false),
        Field::new("segments_remapped", DataType::UInt64, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("seconds_total", DataType::Float64, false),
        Field::new("message", DataType::Utf8, false),
    ]));
    let u = |v: u64| Arc::new(UInt64Array::from(vec![v])) as _;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            u(r.fragments_before as u64),
            u(r.fragments_after as u64),
            u(r.rows_rewritten),
            u(r.segments_remapped as u64),
            u(r.version),
            Arc::new(Float64Array::from(vec![r.seconds])),
            Arc::new(StringArray::from(vec![r.message])),
        ],
    )?;
    ctx.read_batch(batch)
}

/// `DROP VECTOR INDEX [IF EXISTS] name ON table`.
pub async fn drop_index(ctx: &SessionContext, stmt: &DropVectorIndex) -> Result<DataFrame> {
    let dataset = vecfusion_table(ctx, &stmt.table).await?;
    if dataset.manifest().index(&stmt.name).is_none() {
        if stmt.if_exists {
            return ctx.read_empty();
        }
        return plan_err!(
            "there is no vector index '{}' on {}; SHOW VECTOR INDEXES lists them",
            stmt.name,
            stmt.table
        );
    }
    dataset
        .commit(&Operation::DropIndex {
            name: stmt.name.clone(),
        })
        .await?;
    ctx.read_empty()
}

/// `SHOW VECTOR INDEXES [FROM table]`: one row per index.
pub async fn show_indexes(ctx: &SessionContext, stmt: &ShowVectorIndexes) -> Result<DataFrame> {
    let names: Vec<String> = match &stmt.table {
        Some(t) => vec![t.clone()],
        None => {
            let state = ctx.state();
            let options = state.config_options();
            let schema = ctx
                .catalog(&options.catalog.default_catalog)
                .and_then(|c| c.schema(&options.catalog.default_schema));
            let mut names = schema.map(|s| s.table_names()).unwrap_or_default();
            names.sort();
            names
        }
    };
    let mut text_rows: Vec<[String; 6]> = vec![];
    let mut nums: Vec<[u64; 5]> = vec![];
    for name in names {
        let provider = ctx.table_provider(name.as_str()).await?;
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            if stmt.table.is_some() {
                return plan_err!("table '{name}' is not a vecfusion table");
            }
            continue;
        };
        let dataset = table.dataset().await?;
        for index in &dataset.manifest().indexes {
            let partitions = index.params["num_partitions"].as_u64().unwrap_or(0);
            let unindexed: u64 = dataset
                .fragments()
                .iter()
                .filter(|f| !index.covers(f.id))
                .map(|f| f.live_rows())
                .sum();
            // Manifests written before the column was renamed call it "device".
            let accelerator = index.details["accelerator"]
                .as_str()
                .or(index.details["device"].as_str())
                .unwrap_or("");
            text_rows.push([
                name.clone(),
                index.name.clone(),
                index.column.clone(),
                index.kind.name().to_string(),
                index.metric.name().to_string(),
                accelerator.to_string(),
            ]);
            nums.push([
                partitions,
                index.segments.len() as u64,
                index.rows_indexed(),
                unindexed,
                index.dataset_version,
            ]);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("index", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("accelerator", DataType::Utf8, false),
        Field::new("partitions", DataType::UInt64, false),
        Field::new("segments", DataType::UInt64, false),
        Field::new("rows_indexed", DataType::UInt64, false),
        Field::new("rows_not_indexed", DataType::UInt64, false),
        Field::new("built_from_version", DataType::UInt64, false),
    ]));
    let text = |i: usize| {
        Arc::new(StringArray::from_iter_values(
            text_rows.iter().map(|r| r[i].clone()),
        )) as _
    };
    let num = |i: usize| Arc::new(UInt64Array::from_iter_values(nums.iter().map(|n| n[i]))) as _;
    let batch = RecordBatch::try_new(schema, (0..6).map(text).chain((0..5).map(num)).collect())?;
    ctx.read_batch(batch)
}
