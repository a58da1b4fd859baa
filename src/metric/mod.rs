//! Distance metrics shared by KMeans training, indexes and queries, and the SQL distance
//! functions that map onto them.

mod distance_function;

pub use distance_function::DistanceFunction;

use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use serde::{Deserialize, Serialize};
use vecfusion_kernels::distance::first_non_finite;

/// How closeness between vectors is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Euclidean distance (squared L2 internally; the order is the same).
    L2,
    /// `1 − cos(a, b)`: vectors are normalised, then compared by L2 on the unit sphere.
    Cosine,
    /// Inner product, larger is closer.
    Dot,
}

impl Metric {
    pub const NAMES: &'static str = "'l2', 'cosine', 'dot'";

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "cosine" => Ok(Metric::Cosine),
            "dot" | "inner_product" | "ip" => Ok(Metric::Dot),
            other => plan_err!("unknown metric '{other}'; expected one of {}", Self::NAMES),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Scales every row of `data` (row-major, `dim` columns) to unit length; zero rows stay zero.
pub fn normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let norm = vecfusion_kernels::distance::norm_squared(row).sqrt();
        if norm > 0.0 {
            vecfusion_kernels::distance::scale(row, 1.0 / norm);
        }
    }
}

/// Fails unless every element of the query vector(s) `values` is a finite number. A NaN or
/// infinite query has no nearest rows (every distance is NaN or infinite), so the exact plan
/// and the index would each return an arbitrary answer; both refuse it with this error.
pub fn check_finite_query(values: &[f32], dim: usize) -> Result<()> {
    match first_non_finite(values) {
        None => Ok(()),
        Some(i) => exec_err!(
            "the query vector{} has a non-finite element ({} at position {}); every element \
             must be a finite number",
            if values.len() > dim {
                format!(" {}", i / dim.max(1))
            } else {
                String::new()
            },
            values[i],
            i % dim.max(1)
        ),
    }
}
