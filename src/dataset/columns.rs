//! Schema evolution: columns added to existing fragments as column files, columns dropped.
//!
//! `ALTER TABLE t ADD COLUMN` does not rewrite a fragment: it writes one *column file* per
//! fragment — an Arrow IPC file with the new column, the same row count and the same
//! record-batch layout — and commits them with the new schema as one version
//! ([`Operation::AlterColumns`]). A killed statement leaves only unreferenced files; the
//! version before it keeps its schema and stays readable (time travel shows the old columns).
//! `DROP COLUMN` is a schema change only: the bytes stay in their files until compaction
//! rewrites the fragment, and a column file none of whose columns remain leaves the version.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{internal_err, plan_err};
use datafusion::error::Result;

use super::commit::{ADD_COLUMN, DROP_COLUMN};
use super::fragment::{FragmentWriter, NewFragment};
use super::manifest::{ColumnFileMeta, FragmentMeta};
use super::vector_columns::check_vector_sizes;
use super::{Dataset, Operation};

impl Dataset {
    /// The schema with `field` appended, checked: a new name, a vector size that can be
    /// stored.
    pub fn schema_with_column(&self, field: Field) -> Result<Schema> {
        if self.schema.field_with_name(field.name()).is_ok() {
            return plan_err!(
                "table {} already has a column '{}'",
                self.uri(),
                field.name()
            );
        }
        let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
        fields.push(Arc::new(field));
        let schema = Schema::new_with_metadata(fields, self.schema.metadata().clone());
        check_vector_sizes(&schema)?;
        Ok(schema)
    }

    /// A writer for the column file of `fragment` holding `columns`: record batches of the
    /// fragment's own size, so that batch `i` of every file of the fragment holds the same rows.
    pub fn column_file_writer(
        &self,
        fragment: &FragmentMeta,
        columns: SchemaRef,
    ) -> Result<FragmentWriter> {
        FragmentWriter::with_rows_per_batch(
            &self.location,
            columns,
            fragment.rows_per_batch.max(1) as usize,
        )
    }

    /// Commits the column files written for every fragment of this version (one per
    /// fragment, in any order) with `schema`, as one new version.
    pub async fn commit_added_columns(
        &self,
        schema: Schema,
        files: Vec<(u32, ColumnFileMeta)>,
    ) -> Result<Dataset> {
        self.commit(&Operation::AlterColumns {
            kind: ADD_COLUMN,
            schema,
            column_files: files,
        })
        .await
    }

    /// Removes `names` from the schema, as one new version. Fails for a column that does not
    /// exist, for the last column, and for a column with a vector index.
    pub async fn drop_columns(&self, names: &[String]) -> Result<Dataset> {
        for name in names {
            if self.schema.field_with_name(name).is_err() {
                return plan_err!("table {} has no column '{name}'", self.uri());
            }
        }
        let fields: Vec<_> = self
            .schema
            .fields()
            .iter()
            .filter(|f| !names.contains(f.name()))
            .cloned()
            .collect();
        if fields.is_empty() {
            return plan_err!(
                "cannot drop every column of {}; a table needs at least one",
                self.uri()
            );
        }
        let schema = Schema::new_with_metadata(fields, self.schema.metadata().clone());
        self.commit(&Operation::AlterColumns {
            kind: DROP_COLUMN,
            schema,
            column_files: vec![],
        })
        .await
    }
}

impl NewFragment {
    /// The finished file as the column file of `fragment`, holding `columns`. Fails unless it
    /// has the fragment's rows in the fragment's batch layout.
    pub fn into_column_file(
        self,
        fragment: &FragmentMeta,
        columns: Vec<String>,
    ) -> Result<ColumnFileMeta> {
        if self.physical_rows != fragment.physical_rows
            || self.rows_per_batch != fragment.rows_per_batch
        {
            return internal_err!(
                "the column file for fragment {} has {} rows in batches of {}, the fragment {} \
                 in batches of {}",
                fragment.id,
                self.physical_rows,
                self.rows_per_batch,
                fragment.physical_rows,
                fragment.rows_per_batch
            );
        }
        Ok(ColumnFileMeta {
            file: self.file,
            columns,
            file_bytes: self.file_bytes,
        })
    }
}
