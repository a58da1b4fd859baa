//! DataFusion integration of the dataset: `STORED AS VECFUSION` tables.
//!
//! - [`VecfusionTable`] is the `TableProvider`: scans (projection, filter and limit pushdown,
//!   exact statistics), `INSERT` (one fragment per statement), `DELETE`, `UPDATE`, `TRUNCATE`,
//!   and read-only views of older versions (time travel).
//! - [`VecfusionTableFactory`] turns `CREATE EXTERNAL TABLE ... STORED AS VECFUSION` into a
//!   new or opened dataset.
//! - [`alter_table`] runs `ALTER TABLE ... ADD COLUMN / DROP COLUMN` (column files per
//!   fragment, one commit); `column_values` holds the DEFAULT and computed-column rules that
//!   INSERT and UPDATE follow.
//! - [`refresh_tables`] brings registered tables up to date with column changes before a
//!   statement is planned.
//! - [`TimeTravelPlanner`] plans `t VERSION AS OF n` / `TIMESTAMP AS OF` as a scan of a
//!   read-only view of that version.

mod alter_table;
mod column_values;
mod conform;
mod dml;
mod factory;
mod filters;
mod refresh;
mod scan;
mod sink;
mod table;
mod time_travel;

pub use alter_table::alter_table;
pub use column_values::{COMPUTED_KEY, ColumnValue, DEFAULT_KEY};
pub use conform::{conform_batch, name_not_null_violation};
pub use dml::{DeleteExec, UpdateExec};
pub use factory::VecfusionTableFactory;
pub use refresh::{refresh_table, refresh_tables};
pub use scan::{ROW_ADDRESS_COLUMN, ScanRequest, VecfusionScanExec};
pub use sink::VecfusionSink;
pub use table::{VecfusionTable, VersionTarget};
pub use time_travel::TimeTravelPlanner;
