//! Planning `table VERSION AS OF n` and `table TIMESTAMP AS OF '...'`.
//!
//! DataFusion's SQL planner ignores a table version it parses; this `RelationPlanner` sees the
//! table factor first, and for a vecfusion table plans a scan of a read-only view pinned at that
//! version. Other tables with a version clause get an error rather than silently current data.

use std::sync::Arc;

use datafusion::common::{DFSchema, ScalarValue, plan_err};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{TableFactor, TableVersion};

use super::{VecfusionTable, VersionTarget};

#[derive(Debug, Default)]
pub struct TimeTravelPlanner;

impl RelationPlanner for TimeTravelPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        ctx: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            version: Some(version),
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let target = match version {
            TableVersion::VersionAsOf(e) => {
                let expr = ctx.sql_to_expr(e.clone(), &DFSchema::empty())?;
                VersionTarget::Version(version_number(&expr)?)
            }
            TableVersion::TimestampAsOf(e) => {
                let expr = ctx.sql_to_expr(e.clone(), &DFSchema::empty())?;
                VersionTarget::Timestamp(timestamp_ms(&expr)?)
            }
            other => {
                return plan_err!(
                    "unsupported table version clause '{other}'; use VERSION AS OF <n> or \
                     TIMESTAMP AS OF '<time>'"
                );
            }
        };
        let reference = ctx.object_name_to_table_reference(name.clone())?;
        let source = ctx.context_provider().get_table_source(reference.clone())?;
        let provider = source_as_provider(&source)?;
        let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
            return plan_err!(
                "table '{reference}' is not a vecfusion table; VERSION AS OF / TIMESTAMP AS OF \
                 need STORED AS VECFUSION"
            );
        };
        let pinned = Arc::new(table.at(target));
        let plan =
            LogicalPlanBuilder::scan(reference, provider_as_source(pinned), None)?.build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// The version number a `VERSION AS OF` expression names.
pub(super) fn version_number(expr: &Expr) -> Result<u64> {
    if let Expr::Literal(v, _) = expr {
        let n = match v {
            ScalarValue::Int64(Some(n)) => Some(*n),
            ScalarValue::Int32(Some(n)) => Some(*n as i64),
            ScalarValue::UInt64(Some(n)) => i64::try_from(*n).ok(),
            _ => None,
        };
        if let Some(n) = n.filter(|n| *n >= 1) {
            return Ok(n as u64);
        }
    }
    plan_err!("VERSION AS OF needs a version number (1, 2, ...), got {expr}")
}

/// The time a `TIMESTAMP AS OF` expression names, in ms since the epoch.
pub(super) fn timestamp_ms(expr: &Expr) -> Result<i64> {
    let parsed = match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => parse_time(s),
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(n), _), _) => Some(n / 1_000_000),
        Expr::Literal(ScalarValue::TimestampMicrosecond(Some(n), _), _) => Some(n / 1_000),
        Expr::Literal(ScalarValue::TimestampMillisecond(Some(n), _), _) => Some(*n),
        Expr::Literal(ScalarValue::TimestampSecond(Some(n), _), _) => Some(n * 1_000),
        _ => None,
    };
    match parsed {
        Some(ms) => Ok(ms),
        None => plan_err!(
            "TIMESTAMP AS OF needs a time such as '2026-11-23 21:00:00' (UTC) or an RFC 3339 \
             timestamp, got {expr}"
        ),
    }
}

/// RFC 3339, or `YYYY-MM-DD[ HH:MM:SS[.fff]]` taken as UTC.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn parses_the_accepted_time_spellings() {
        let day = parse_time("2026-11-23").unwrap();
        assert_eq!(parse_time("2026-11-23 00:00:00").unwrap(), day);
        assert_eq!(parse_time("2026-11-23T00:00:00Z").unwrap(), day);
        assert_eq!(parse_time("2026-11-23T01:00:00+01:00").unwrap(), day);
        assert!(parse_time("yesterday").is_none());
    }
}
