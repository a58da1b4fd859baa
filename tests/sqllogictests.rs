//! Runs `tests/sqllogictests/*.slt` against a real vecfusion session.
//!
//! Each file gets a fresh session and a fresh temporary directory; `__TMP__` in a statement is
//! replaced by that directory (and the directory by `__TMP__` in results), so files create
//! real datasets on disk. Query results are
//! compared as text: NULL as `NULL`, floats as DataFusion displays them (round in SQL for
//! stable output). Run one file with `cargo test --test sqllogictests -- <name filter>`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use vecfusion::{VecfusionContext, new_session_context};

struct VecfusionDb {
    ctx: SessionContext,
    tmp: PathBuf,
}

#[async_trait]
impl AsyncDB for VecfusionDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let tmp = self.tmp.display().to_string();
        let sql = sql.replace("__TMP__", &tmp);
        let df = self.ctx.vf_sql(&sql).await?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let options = FormatOptions::default().with_null("NULL");
        let mut rows: Vec<Vec<String>> = vec![];
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref() as &dyn Array, &options))
                .collect::<Result<Vec<_>, _>>()?;
            for r in 0..batch.num_rows() {
                // Plans print dataset locations: the temporary directory reads `__TMP__`,
                // as the statements spell it.
                let cells: Vec<String> = formatters
                    .iter()
                    .map(|f| f.value(r).to_string().replace(&tmp, "__TMP__"))
                    .collect();
                match cells.as_slice() {
                    // EXPLAIN: the plan type, then one numbered row per plan line, indentation
                    // shown as dashes (DataFusion's own sqllogictest layout).
                    [kind, plan] if plan.contains('\n') || kind.ends_with("_plan") => {
                        rows.push(vec![kind.clone()]);
                        for (i, line) in plan.lines().enumerate() {
                            let body = line.trim_start();
                            let indent = "-".repeat(line.len() - body.len());
                            rows.push(vec![format!("{:02}){indent}{body}", i + 1)]);
                        }
                    }
                    _ => rows.push(
                        cells
                            .into_iter()
                            .map(|s| if s.is_empty() { "(empty)".into() } else { s })
                            .collect(),
                    ),
                }
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; schema.fields().len()],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "vecfusion"
    }
}

fn slt_files(filter: Option<&str>) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sqllogictests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sqllogictests exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| filter.is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    files.sort();
    files
}

#[tokio::main]
async fn main() {
    // `cargo test` passes libtest flags; the first non-flag argument filters files.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut failures = vec![];
    for file in slt_files(filter.as_deref()) {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let tmp_path = tmp.path().to_path_buf();
        let mut runner = sqllogictest::Runner::new(move || {
            let tmp = tmp_path.clone();
            async move {
                Ok(VecfusionDb {
                    ctx: new_session_context(),
                    tmp,
                })
            }
        });
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        match runner.run_file_async(&file).await {
            Ok(()) => println!("ok   {name}"),
            Err(e) => {
                println!("FAIL {name}\n{e}");
                failures.push(name);
            }
        }
    }
    if !failures.is_empty() {
        eprintln!(
            "{} sqllogictest file(s) failed: {}",
            failures.len(),
            failures.join(", ")
        );
        std::process::exit(1);
    }
}
