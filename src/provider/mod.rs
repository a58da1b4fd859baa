//! DataFusion integration of the dataset: `STORED AS VECFUSION` tables.
//!
//! - [`VecfusionTable`] is the `TableProvider`: scans (projection, filter and limit pushdown,
//!   exact statistics), `INSERT` (one fragment per statement), `DELETE`, `UPDATE`, `TRUNCATE`,
//!   and read-only views of older versions (time travel).
//! - [`VecfusionTableFactory`] turns `CREATE EXTERNAL TABLE ... STORED AS VECFUSION` into a
//!   new or opened dataset.
//! - [`TimeTravelPlanner`] plans `t VERSION AS OF n` / `TIMESTAMP AS OF` as a scan of a
//!   read-only view of that version.

mod conform;
mod dml;
mod factory;
mod filters;
mod scan;
mod sink;
mod table;
mod time_travel;

pub use conform::{conform_batch, name_not_null_violation};
pub use factory::VecfusionTableFactory;
pub use scan::{ROW_ADDRESS_COLUMN, ScanRequest, VecfusionScanExec};
pub use table::{VecfusionTable, VersionTarget};
pub use time_travel::TimeTravelPlanner;
