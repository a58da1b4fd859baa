//! A table whose one batch is computed when it is scanned: what table functions that report
//! on a dataset (its history, a cleanup) return.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;

type Compute = dyn Fn() -> BoxFuture<'static, Result<RecordBatch>> + Send + Sync;

pub struct ComputedTable {
    name: &'static str,
    schema: SchemaRef,
    compute: Box<Compute>,
}

impl ComputedTable {
    pub fn new(
        name: &'static str,
        schema: SchemaRef,
        compute: impl Fn() -> BoxFuture<'static, Result<RecordBatch>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            schema,
            compute: Box::new(compute),
        }
    }

    /// The rows, computed now.
    pub async fn compute(&self) -> Result<RecordBatch> {
        (self.compute)().await
    }
}

impl fmt::Debug for ComputedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComputedTable({})", self.name)
    }
}

#[async_trait]
impl TableProvider for ComputedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.compute().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
