//! `ALTER TABLE t ADD COLUMN c type [DEFAULT value | AS (expression)]` and
//! `ALTER TABLE t DROP COLUMN c [, ...]` on vecfusion tables (schema evolution, as Lance's
//! `add_columns` / `drop_columns`).
//!
//! ADD COLUMN writes the new column of every fragment as a column file next to it (the
//! existing files are not rewritten) and commits them with the new schema as one version:
//! the version before keeps its columns (time travel), and a statement killed half-way
//! leaves only unreferenced files. A computed column's expression runs in chunks
//! ([`evaluate_in_chunks`]), so progress moves and a cancelled statement stops within one
//! chunk; deleted rows are not computed (they get NULL).

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::Session;
use datafusion::common::{
    DFSchema, ScalarValue, exec_datafusion_err, plan_datafusion_err, plan_err,
};
use datafusion::dataframe::DataFrame;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef, ColumnOption, DataType as SqlDataType, Ident,
};
use object_store::ObjectStoreExt;

use super::VecfusionTable;
use super::column_values::{
    ColumnValue, check_castable, default_value, evaluate_in_chunks, plan_column_expr,
};
use super::refresh::ident_normalization;
use crate::dataset::{ColumnFileMeta, Dataset};
use crate::progress::{ProgressHook, report};

/// Runs `ALTER TABLE` on a vecfusion table.
pub async fn alter_table(ctx: &SessionContext, alter: &AlterTable) -> Result<DataFrame> {
    // Several DROP COLUMNs are one change; an ADD COLUMN comes alone.
    let drops: Vec<&AlterTableOperation> = alter
        .operations
        .iter()
        .filter(|o| matches!(o, AlterTableOperation::DropColumn { .. }))
        .collect();
    let operation = match alter.operations.as_slice() {
        [one] => one,
        [first, ..] if drops.len() == alter.operations.len() => first,
        _ => {
            return plan_err!(
                "ALTER TABLE takes one ADD COLUMN at a time on vecfusion tables (or any number \
                 of DROP COLUMNs); got {} operations",
                alter.operations.len()
            );
        }
    };
    let normalize = ident_normalization(ctx);
    let reference = object_name_to_table_reference(alter.name.clone(), normalize)?;
    let provider = match ctx.table_provider(reference.clone()).await {
        Ok(p) => p,
        Err(_) if alter.if_exists => return ctx.read_empty(),
        Err(e) => return Err(e),
    };
    let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
        return plan_err!(
            "table '{reference}' is not a vecfusion table; ALTER TABLE ADD/DROP COLUMN works on \
             tables created with STORED AS VECFUSION"
        );
    };
    let dataset = table.writable_dataset("alter").await?;
    let started = Instant::now();
    let ident = |i: &Ident| {
        if normalize && i.quote_style.is_none() {
            i.value.to_lowercase()
        } else {
            i.value.clone()
        }
    };
    let outcome = match operation {
        AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            column_position,
            ..
        } => {
            if column_position.is_some() {
                return plan_err!(
                    "ADD COLUMN ... FIRST/AFTER is not supported; new columns are added last"
                );
            }
            let name = ident(&column_def.name);
            if *if_not_exists && dataset.schema().field_with_name(&name).is_ok() {
                return summary(ctx, "ADD COLUMN", &name, 0, &dataset, started);
            }
            add_column(ctx, &dataset, name, column_def).await?
        }
        AlterTableOperation::DropColumn { .. } => {
            let mut names: Vec<String> = vec![];
            for drop in drops {
                let AlterTableOperation::DropColumn {
                    column_names,
                    if_exists,
                    ..
                } = drop
                else {
                    continue;
                };
                for name in column_names.iter().map(ident) {
                    let exists = dataset.schema().field_with_name(&name).is_ok();
                    if (exists || !*if_exists) && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            if names.is_empty() {
                return summary(ctx, "DROP COLUMN", "", 0, &dataset, started);
            }
            check_no_dependents(&ctx.state(), &dataset, &names)?;
            let next = dataset.drop_columns(&names).await?;
            (names.join(", "), 0, next)
        }
        other => {
            return plan_err!(
                "ALTER TABLE ... {other} is not supported on vecfusion tables; they support ADD \
                 COLUMN and DROP COLUMN"
            );
        }
    };
    let (column, rows, next) = outcome;
    // This session sees the new columns from its next statement on.
    ctx.deregister_table(reference.clone())?;
    ctx.register_table(reference, Arc::new(VecfusionTable::new(next.clone())))?;
    let kind = match operation {
        AlterTableOperation::AddColumn { .. } => "ADD COLUMN",
        _ => "DROP COLUMN",
    };
    summary(ctx, kind, &column, rows, &next, started)
}

/// The result row: what changed, the rows written, the new version.
fn summary(
    ctx: &SessionContext,
    operation: &str,
    column: &str,
    rows: u64,
    dataset: &Dataset,
    started: Instant,
) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("operation", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("rows_written", DataType::UInt64, false),
        Field::new("fragments", DataType::UInt64, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("seconds_total", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![operation])),
            Arc::new(StringArray::from(vec![column])),
            Arc::new(UInt64Array::from(vec![rows])),
            Arc::new(UInt64Array::from(vec![dataset.fragments().len() as u64])),
            Arc::new(UInt64Array::from(vec![dataset.version()])),
            Arc::new(Float64Array::from(vec![started.elapsed().as_secs_f64()])),
        ],
    )?;
    ctx.read_batch(batch)
}

/// Refuses to drop a column a remaining computed column reads.
fn check_no_dependents(state: &dyn Session, dataset: &Dataset, names: &[String]) -> Result<()> {
    let schema = dataset.schema();
    for field in schema.fields() {
        if names.contains(field.name()) {
            continue;
        }
        let Some(ColumnValue::Computed(sql)) = ColumnValue::of(field) else {
            continue;
        };
        let Ok(planned) = plan_column_expr(state, &sql, schema, field.name()) else {
            continue;
        };
        if let Some(read) = planned
            .logical
            .column_refs()
            .iter()
            .find(|c| names.contains(&c.name))
        {
            return plan_err!(
                "column '{}' is computed AS ({sql}) from column '{}'; drop '{}' first, or both \
                 in one statement",
                field.name(),
                read.name,
                field.name()
            );
        }
    }
    Ok(())
}

/// What fills the new column of each row.
enum Filler {
    Null,
    Constant(ScalarValue),
    /// The expression, planned over `reads` (table column positions) in that order.
    Computed {
        expr: Arc<dyn PhysicalExpr>,
        reads: Vec<usize>,
    },
}

/// The Arrow type of a column type written in SQL, as DataFusion plans it (`FLOAT[384]` is a
/// `FixedSizeList(Float32, 384)`).
fn arrow_type(state: &dyn Session, data_type: &SqlDataType, column: &str) -> Result<DataType> {
    let planned = plan_column_expr(
        state,
        &format!("CAST(NULL AS {data_type})"),
        &Schema::empty(),
        column,
    )
    .map_err(|e| plan_datafusion_err!("unsupported type {data_type} for column '{column}': {e}"))?;
    Ok(planned.data_type)
}

async fn add_column(
    ctx: &SessionContext,
    dataset: &Dataset,
    name: String,
    def: &ColumnDef,
) -> Result<(String, u64, Dataset)> {
    let state = ctx.state();
    let data_type = arrow_type(&state, &def.data_type, &name)?;
    let mut value = None;
    for option in &def.options {
        let defined = match &option.option {
            ColumnOption::Null => continue,
            ColumnOption::Default(e) => ColumnValue::Default(e.to_string()),
            ColumnOption::Generated {
                generation_expr: Some(e),
                ..
            } => ColumnValue::Computed(e.to_string()),
            ColumnOption::NotNull => {
                return plan_err!(
                    "an added column is nullable (rows can have no value for it, deleted rows \
                     never get one); leave out NOT NULL for column '{name}'"
                );
            }
            other => {
                return plan_err!(
                    "column option {other} is not supported by ADD COLUMN; use DEFAULT value \
                     or AS (expression)"
                );
            }
        };
        if value.replace(defined).is_some() {
            return plan_err!("column '{name}' can have one DEFAULT or one AS (expression)");
        }
    }
    let field = Field::new(&name, data_type.clone(), true);
    let field = match &value {
        Some(v) => v.on(field),
        None => field,
    };
    let schema = dataset.schema_with_column(field.clone())?;
    let filler = match &value {
        None => Filler::Null,
        Some(ColumnValue::Default(sql)) => {
            Filler::Constant(default_value(&state, sql, &field, dataset.schema())?)
        }
        Some(ColumnValue::Computed(sql)) => {
            let table = dataset.schema();
            let planned = plan_column_expr(&state, sql, table, &name)?;
            check_castable(&planned.data_type, &data_type, &name, sql)?;
            let mut reads: Vec<usize> = planned
                .logical
                .column_refs()
                .iter()
                .filter_map(|c| table.index_of(&c.name).ok())
                .collect();
            reads.sort_unstable();
            // Planned again over just the columns it reads, which are all that is decoded.
            let projected = table.project(&reads)?;
            let df_schema = DFSchema::try_from(projected)?;
            let logical: Expr = planned.logical;
            let expr = state.create_physical_expr(logical, &df_schema)?;
            Filler::Computed { expr, reads }
        }
    };
    let hook = state.config().get_extension::<ProgressHook>();
    let files = write_column_files(dataset, &field, &filler, hook.as_deref()).await?;
    let rows = dataset.fragments().iter().map(|f| f.physical_rows).sum();
    let next = match dataset.commit_added_columns(schema, files.clone()).await {
        Ok(next) => next,
        Err(e) => {
            remove_files(dataset, files.iter().map(|(_, f)| f.file.as_str())).await;
            return Err(e);
        }
    };
    report(hook.as_deref(), "commit", rows, rows, "rows");
    Ok((name, rows, next))
}

/// Writes the column file of every fragment; on an error, removes those written.
async fn write_column_files(
    dataset: &Dataset,
    field: &Field,
    filler: &Filler,
    hook: Option<&ProgressHook>,
) -> Result<Vec<(u32, ColumnFileMeta)>> {
    let total: u64 = dataset.fragments().iter().map(|f| f.physical_rows).sum();
    let mut done = 0u64;
    let mut files = vec![];
    for fragment in dataset.fragments() {
        let written =
            write_column_file(dataset, fragment, field, filler, hook, &mut done, total).await;
        match written {
            Ok(file) => files.push((fragment.id, file)),
            Err(e) => {
                remove_files(dataset, files.iter().map(|(_, f)| f.file.as_str())).await;
                return Err(e);
            }
        }
    }
    Ok(files)
}

async fn write_column_file(
    dataset: &Dataset,
    fragment: &crate::dataset::FragmentMeta,
    field: &Field,
    filler: &Filler,
    hook: Option<&ProgressHook>,
    done: &mut u64,
    total: u64,
) -> Result<ColumnFileMeta> {
    let column_schema = Arc::new(Schema::new(vec![field.clone()]));
    let mut writer = dataset.column_file_writer(fragment, column_schema.clone())?;
    let result: Result<()> = async {
        let reader = dataset.fragment_reader(fragment).await?;
        let deletions = dataset.deletions(fragment).await?;
        for i in 0..reader.num_batches() {
            let start = reader.batch_start(i);
            let values = match filler {
                Filler::Null => {
                    let rows = reader.read_batch(i, Some(&[]))?.num_rows();
                    ScalarValue::try_from(field.data_type())?.to_array_of_size(rows)?
                }
                Filler::Constant(v) => {
                    let rows = reader.read_batch(i, Some(&[]))?.num_rows();
                    v.to_array_of_size(rows)?
                }
                Filler::Computed { expr, reads } => {
                    let batch = reader.read_batch(i, Some(reads))?;
                    let live: Vec<bool> = (0..batch.num_rows())
                        .map(|r| u32::try_from(start + r).map_or(true, |o| !deletions.contains(o)))
                        .collect();
                    compute(expr, &batch, &live, field, |rows| {
                        *done += rows as u64;
                        report(hook, "add_column", *done, total, "rows");
                    })
                    .await?
                }
            };
            if !matches!(filler, Filler::Computed { .. }) {
                *done += values.len() as u64;
                report(hook, "add_column", *done, total, "rows");
            }
            writer
                .write(RecordBatch::try_new(column_schema.clone(), vec![values])?)
                .await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        writer.abort().await;
        return Err(e);
    }
    let Some(file) = writer.finish().await? else {
        return Err(exec_datafusion_err!(
            "fragment {} has no rows to add a column to",
            fragment.id
        ));
    };
    file.into_column_file(fragment, vec![field.name().clone()])
}

/// The expression's values for the live rows of `batch` (NULL for deleted ones), computed
/// in chunks of [`CHUNK_ROWS`] on a blocking thread and cast to `field`'s type; `progress`
/// hears the rows of each chunk.
async fn compute(
    expr: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
    live: &[bool],
    field: &Field,
    mut progress: impl FnMut(usize),
) -> Result<ArrayRef> {
    let all_live = live.iter().all(|l| *l);
    let rows = if all_live {
        batch.clone()
    } else {
        filter_record_batch(batch, &live.to_vec().into())?
    };
    let values = evaluate_in_chunks(expr, &rows, field, &mut progress).await?;
    progress(batch.num_rows() - rows.num_rows());
    if all_live {
        return Ok(values);
    }
    // Back to one value per physical row: live rows in order, NULL for deleted ones.
    let mut next = 0u32;
    let positions: UInt32Array = live
        .iter()
        .map(|l| {
            l.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    Ok(take(values.as_ref(), &positions, None)?)
}

/// Best-effort removal of files no version refers to (cleanup would find them otherwise).
async fn remove_files<'a>(dataset: &Dataset, files: impl Iterator<Item = &'a str>) {
    let location = dataset.location();
    for file in files {
        let _ = location.store.delete(&location.path(file)).await;
    }
}
