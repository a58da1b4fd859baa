//! vecfusion's session settings for vector search — `SET vecfusion.nprobes = 20`,
//! `vecfusion.refine_factor`, `vecfusion.use_index` — and the parameters a search runs with.

use datafusion::catalog::Session;
use datafusion::common::config::ConfigExtension;
use datafusion::common::{extensions_options, plan_err};
use datafusion::error::Result;

extensions_options! {
    /// Settings of vector search, under the `vecfusion.` prefix.
    pub struct SearchSettings {
        /// IVF partitions probed per query (more: better recall, slower). Probing widens
        /// automatically when a filter leaves fewer than k matching rows in the probed ones.
        pub nprobes: usize, default = 20
        /// Candidates kept per requested row and re-ranked by exact distance (1: the k best
        /// approximate candidates are returned, exactly ordered).
        pub refine_factor: usize, default = 1
        /// Whether `ORDER BY <distance> LIMIT k` and `vector_search` may use a vector index
        /// (false: always the exact plan, the ground truth).
        pub use_index: bool, default = true
    }
}

impl ConfigExtension for SearchSettings {
    const PREFIX: &'static str = "vecfusion";
}

impl SearchSettings {
    /// The settings of `session` (the defaults when vecfusion's are not installed).
    pub fn of(session: &dyn Session) -> Self {
        session
            .config_options()
            .extensions
            .get::<SearchSettings>()
            .cloned()
            .unwrap_or_default()
    }
}

/// Checks `SET <variable> = <value>` for vecfusion's settings before DataFusion applies it, so
/// that a bad value is refused with what the setting takes (DataFusion's own message is
/// "Error parsing '-1' as usize"). Other variables pass through untouched.
pub fn check_setting(variable: &str, value: &str) -> Result<()> {
    let Some(name) = variable.strip_prefix("vecfusion.") else {
        return Ok(());
    };
    let defaults = SearchSettings::default();
    let (takes, ok) = match name {
        "nprobes" => (
            format!(
                "an integer of at least 1 (IVF partitions probed per query; default {})",
                defaults.nprobes
            ),
            value.parse::<usize>().is_ok_and(|v| v >= 1),
        ),
        "refine_factor" => (
            format!(
                "an integer of at least 1 (candidates re-ranked per result row; default {})",
                defaults.refine_factor
            ),
            value.parse::<usize>().is_ok_and(|v| v >= 1),
        ),
        "use_index" => (
            "true or false".to_string(),
            matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
        ),
        _ => {
            return plan_err!(
                "unknown setting '{variable}'; vecfusion's settings are vecfusion.nprobes, \
                 vecfusion.refine_factor and vecfusion.use_index"
            );
        }
    };
    if !ok {
        return plan_err!("SET {variable}: '{value}' is not valid; it takes {takes}");
    }
    Ok(())
}

/// How one top-k search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SearchParams {
    pub k: usize,
    /// Partitions probed at least (more while fewer than k allowed rows were found).
    pub nprobes: usize,
    /// Approximate candidates kept per result row for exact re-ranking.
    pub refine_factor: usize,
}
