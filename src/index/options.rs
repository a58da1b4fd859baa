//! `CREATE VECTOR INDEX ... WITH (...)`: every option, its type, its default, and errors that
//! say what is allowed.

use datafusion::common::{plan_datafusion_err, plan_err};
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use crate::kmeans::AcceleratorRequest;
use crate::kmeans::pq::sub_vector_choices;
use crate::metric::Metric;
use crate::quantizer::IndexKind;
use crate::sql::statement::OptionValue;

/// Build options after validation. `None` means "derive from the data" (resolved by
/// [`IndexOptions::resolve`] once the row count and dimension are known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexOptions {
    pub kind: IndexKind,
    pub num_partitions: Option<usize>,
    pub num_sub_vectors: Option<usize>,
    pub num_bits: u32,
    pub metric: Metric,
    pub accelerator: AcceleratorRequest,
    /// Training rows per centroid (IVF sample = num_partitions × sample_rate).
    pub sample_rate: usize,
    /// Lloyd iterations for the IVF centroids.
    pub max_iterations: usize,
    /// How the IVF centroids are trained. Absent in manifests written before it (flat).
    #[serde(default)]
    pub ivf_kmeans: IvfKMeans,
    /// Lloyd iterations for the PQ codebooks.
    pub pq_max_iterations: usize,
    /// Stop early when the relative objective change falls below this.
    pub tolerance: f64,
    pub seed: u64,
    pub replace: bool,
    /// Memory for partition lists before they spill to temporary files.
    pub memory_budget_mb: usize,
    /// Caps the GPU memory KMeans plans for (default: a share of what the device has free;
    /// see `kmeans::candle_backend::memory_budget`). Absent in manifests written before it.
    #[serde(default)]
    pub gpu_memory_budget_mb: Option<usize>,
}

/// How the IVF centroids are trained (option `ivf_kmeans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IvfKMeans {
    /// Lloyd over all `num_partitions` centroids: the best fit, `n·k·d` per iteration (as
    /// Faiss trains).
    #[default]
    Flat,
    /// Two levels of about `√k` centroids each (`kmeans::train_hierarchical`): about
    /// `2·n·√k·d` per iteration, for many partitions (as Lance trains above 256).
    Hierarchical,
}

impl IvfKMeans {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "flat" => Some(Self::Flat),
            "hierarchical" => Some(Self::Hierarchical),
            _ => None,
        }
    }
}

/// Largest `num_partitions` accepted (Faiss's guidance for 100M+ vectors is 65,536 lists).
pub const MAX_PARTITIONS: usize = 65_536;
/// Largest `sample_rate` (training rows per partition) accepted.
pub const MAX_SAMPLE_RATE: usize = 65_536;
/// Largest `max_iterations` / `pq_max_iterations` accepted (Lloyd converges in tens).
pub const MAX_ITERATIONS: usize = 1_000;
/// Largest `memory_budget_mb` accepted (1 TiB).
pub const MAX_MEMORY_BUDGET_MB: usize = 1 << 20;

/// (name, what it takes, kinds it applies to; empty = all)
const OPTIONS: &[(&str, &str, &[IndexKind])] = &[
    ("num_partitions", "an integer from 1 to 65536", &[]),
    (
        "num_sub_vectors",
        "a positive integer dividing the dimension",
        &[IndexKind::IvfPq],
    ),
    ("num_bits", "4 or 8", &[IndexKind::IvfPq]),
    ("metric", "'l2', 'cosine' or 'dot'", &[]),
    (
        "accelerator",
        "'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'",
        &[],
    ),
    ("sample_rate", "an integer from 1 to 65536", &[]),
    ("max_iterations", "an integer from 1 to 1000", &[]),
    ("ivf_kmeans", "'flat' or 'hierarchical'", &[]),
    (
        "pq_max_iterations",
        "an integer from 1 to 1000",
        &[IndexKind::IvfPq],
    ),
    ("tolerance", "a non-negative number", &[]),
    ("seed", "a non-negative integer", &[]),
    ("replace", "true or false", &[]),
    ("memory_budget_mb", "an integer from 1 to 1048576", &[]),
    ("gpu_memory_budget_mb", "an integer from 1 to 1048576", &[]),
];

fn wrong(name: &str, value: &OptionValue) -> DataFusionError {
    let takes = OPTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |o| o.1);
    plan_datafusion_err!("option '{name}' must be {takes}, got {value}")
}

fn positive(name: &str, value: &OptionValue) -> Result<usize> {
    at_most(name, value, usize::MAX)
}

/// An integer from 1 to `max`.
fn at_most(name: &str, value: &OptionValue, max: usize) -> Result<usize> {
    match value {
        OptionValue::Number(n) => n.parse::<usize>().ok().filter(|v| (1..=max).contains(v)),
        _ => None,
    }
    .ok_or_else(|| wrong(name, value))
}

fn text(name: &str, value: &OptionValue) -> Result<String> {
    match value {
        OptionValue::String(s) => Ok(s.clone()),
        _ => Err(wrong(name, value)),
    }
}

impl IndexOptions {
    pub fn defaults(kind: IndexKind) -> Self {
        Self {
            kind,
            num_partitions: None,
            num_sub_vectors: None,
            num_bits: 8,
            metric: Metric::L2,
            accelerator: AcceleratorRequest::Auto,
            sample_rate: 256,
            max_iterations: 20,
            ivf_kmeans: IvfKMeans::Flat,
            pq_max_iterations: 25,
            tolerance: 1e-4,
            seed: 42,
            replace: false,
            memory_budget_mb: 1024,
            gpu_memory_budget_mb: None,
        }
    }

    /// Validates `WITH (...)` options for an index of `kind`.
    pub fn parse(kind: IndexKind, options: &[(String, OptionValue)]) -> Result<Self> {
        let mut out = Self::defaults(kind);
        let mut seen = std::collections::HashSet::new();
        for (name, value) in options {
            let name = name.to_ascii_lowercase();
            let Some((_, _, kinds)) = OPTIONS.iter().find(|(n, _, _)| *n == name) else {
                let allowed: Vec<&str> = OPTIONS
                    .iter()
                    .filter(|(_, _, k)| k.is_empty() || k.contains(&kind))
                    .map(|(n, _, _)| *n)
                    .collect();
                return plan_err!(
                    "unknown option '{name}' for {}; allowed options: {}",
                    kind.name(),
                    allowed.join(", ")
                );
            };
            if !kinds.is_empty() && !kinds.contains(&kind) {
                return plan_err!(
                    "option '{name}' applies to {} only, not to {}",
                    kinds
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    kind.name()
                );
            }
            if !seen.insert(name.clone()) {
                return plan_err!("option '{name}' is given twice");
            }
            match name.as_str() {
                "num_partitions" => {
                    out.num_partitions = Some(at_most(&name, value, MAX_PARTITIONS)?)
                }
                "num_sub_vectors" => out.num_sub_vectors = Some(positive(&name, value)?),
                "num_bits" => {
                    out.num_bits = match positive(&name, value)? {
                        b @ (4 | 8) => b as u32,
                        _ => return Err(wrong(&name, value)),
                    }
                }
                "metric" => out.metric = Metric::parse(&text(&name, value)?)?,
                "accelerator" => out.accelerator = AcceleratorRequest::parse(&text(&name, value)?)?,
                "sample_rate" => out.sample_rate = at_most(&name, value, MAX_SAMPLE_RATE)?,
                "max_iterations" => out.max_iterations = at_most(&name, value, MAX_ITERATIONS)?,
                "ivf_kmeans" => {
                    out.ivf_kmeans =
                        IvfKMeans::parse(&text(&name, value)?).ok_or_else(|| wrong(&name, value))?
                }
                "pq_max_iterations" => {
                    out.pq_max_iterations = at_most(&name, value, MAX_ITERATIONS)?
                }
                "tolerance" => {
                    out.tolerance = match value {
                        OptionValue::Number(n) => {
                            n.parse::<f64>().ok().filter(|t| t.is_finite() && *t >= 0.0)
                        }
                        _ => None,
                    }
                    .ok_or_else(|| wrong(&name, value))?
                }
                "seed" => {
                    out.seed = match value {
                        OptionValue::Number(n) => n.parse::<u64>().ok(),
                        _ => None,
                    }
                    .ok_or_else(|| wrong(&name, value))?
                }
                "replace" => {
                    out.replace = match value {
                        OptionValue::Boolean(b) => *b,
                        _ => return Err(wrong(&name, value)),
                    }
                }
                "memory_budget_mb" => {
                    out.memory_budget_mb = at_most(&name, value, MAX_MEMORY_BUDGET_MB)?
                }
                "gpu_memory_budget_mb" => {
                    out.gpu_memory_budget_mb = Some(at_most(&name, value, MAX_MEMORY_BUDGET_MB)?)
                }
                _ => unreachable!("every option in OPTIONS is handled"),
            }
        }
        Ok(out)
    }

    /// Fills the data-dependent defaults and checks the options against the data.
    pub fn resolve(&self, usable_rows: u64, dim: usize) -> Result<ResolvedOptions> {
        let per_partition = match self.kind {
            IndexKind::IvfFlat => 4096,
            IndexKind::IvfSq | IndexKind::IvfPq => 8192,
        };
        let partitions = self
            .num_partitions
            .unwrap_or_else(|| ((usable_rows / per_partition) as usize).clamp(1, 4096));
        let skipped = if self.metric == Metric::Cosine {
            "rows with NULL, non-finite, too large (squared length beyond f32) or all-zero \
             vectors are skipped: cosine has no direction for a zero vector"
        } else {
            "rows with NULL, non-finite or too large (squared length beyond f32) vectors are \
             skipped"
        };
        if usable_rows < partitions as u64 {
            return plan_err!(
                "num_partitions = {partitions} needs at least {partitions} usable rows, but the \
                 column has {usable_rows} ({skipped}); use fewer partitions"
            );
        }
        let sub_vectors = match self.kind {
            IndexKind::IvfPq => {
                let m = self
                    .num_sub_vectors
                    .unwrap_or_else(|| default_sub_vectors(dim));
                if !dim.is_multiple_of(m) {
                    return plan_err!(
                        "num_sub_vectors = {m} does not divide the dimension {dim} \
                         (dim % num_sub_vectors = {}); choose one of {}",
                        dim % m,
                        sub_vector_choices(dim)
                    );
                }
                if usable_rows < 1 << self.num_bits {
                    return plan_err!(
                        "IVF_PQ with num_bits = {} needs at least {} usable rows to train its \
                         codebooks, the column has {usable_rows} ({skipped})",
                        self.num_bits,
                        1 << self.num_bits
                    );
                }
                m
            }
            _ => 0,
        };
        Ok(ResolvedOptions {
            options: self.clone(),
            dim,
            num_partitions: partitions,
            num_sub_vectors: sub_vectors,
        })
    }
}

/// `OPTIMIZE VECTOR INDEX ... WITH (...)`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OptimizeOptions {
    /// Merge this many of the smallest segments (the new one included) into one.
    pub merge_segments: Option<usize>,
    /// Train a new model on the current rows and re-encode every row.
    pub retrain: bool,
    /// Overrides the accelerator the index was built with.
    pub accelerator: Option<AcceleratorRequest>,
    /// Overrides the index's memory budget for partition lists.
    pub memory_budget_mb: Option<usize>,
    /// Overrides the index's cap on GPU memory.
    pub gpu_memory_budget_mb: Option<usize>,
}

const OPTIMIZE_OPTIONS: &[(&str, &str)] = &[
    ("merge_segments", "an integer of at least 2"),
    ("retrain", "true or false"),
    ("accelerator", "'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"),
    ("memory_budget_mb", "an integer from 1 to 1048576"),
    ("gpu_memory_budget_mb", "an integer from 1 to 1048576"),
];

impl OptimizeOptions {
    pub fn parse(options: &[(String, OptionValue)]) -> Result<Self> {
        let mut out = Self::default();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in options {
            let name = name.to_ascii_lowercase();
            let Some((_, takes)) = OPTIMIZE_OPTIONS.iter().find(|(n, _)| *n == name) else {
                let allowed: Vec<&str> = OPTIMIZE_OPTIONS.iter().map(|(n, _)| *n).collect();
                return plan_err!(
                    "unknown option '{name}' for OPTIMIZE VECTOR INDEX; allowed options: {}",
                    allowed.join(", ")
                );
            };
            if !seen.insert(name.clone()) {
                return plan_err!("option '{name}' is given twice");
            }
            let bad = || plan_datafusion_err!("option '{name}' must be {takes}, got {value}");
            match name.as_str() {
                "merge_segments" => {
                    out.merge_segments = Some(
                        positive(&name, value)
                            .ok()
                            .filter(|n| *n >= 2)
                            .ok_or_else(bad)?,
                    )
                }
                "retrain" => {
                    out.retrain = match value {
                        OptionValue::Boolean(b) => *b,
                        _ => return Err(bad()),
                    }
                }
                "accelerator" => {
                    out.accelerator = Some(AcceleratorRequest::parse(&text(&name, value)?)?)
                }
                "memory_budget_mb" => {
                    out.memory_budget_mb = Some(at_most(&name, value, MAX_MEMORY_BUDGET_MB)?)
                }
                "gpu_memory_budget_mb" => {
                    out.gpu_memory_budget_mb = Some(at_most(&name, value, MAX_MEMORY_BUDGET_MB)?)
                }
                _ => unreachable!("every option in OPTIMIZE_OPTIONS is handled"),
            }
        }
        if out.retrain && out.merge_segments.is_some() {
            return plan_err!(
                "retrain = true re-encodes every row into one segment; merge_segments does not \
                 apply with it"
            );
        }
        Ok(out)
    }
}

/// `OPTIMIZE TABLE ... WITH (target_rows_per_fragment = n)`: the rows a compacted fragment
/// holds at most.
pub fn parse_target_rows(options: &[(String, OptionValue)]) -> Result<u64> {
    let mut target = 1u64 << 20;
    for (name, value) in options {
        match name.to_ascii_lowercase().as_str() {
            "target_rows_per_fragment" => {
                target = match value {
                    OptionValue::Number(n) => n.parse::<u64>().ok().filter(|v| *v > 0),
                    _ => None,
                }
                .ok_or_else(|| {
                    plan_datafusion_err!(
                        "option 'target_rows_per_fragment' must be a positive integer, got {value}"
                    )
                })?
            }
            other => {
                return plan_err!(
                    "unknown option '{other}' for OPTIMIZE TABLE; allowed options: \
                     target_rows_per_fragment"
                );
            }
        }
    }
    Ok(target)
}

/// Sub-vectors of about 8 dimensions each (16 for 128-D), the usual quality/size balance.
fn default_sub_vectors(dim: usize) -> usize {
    (1..=dim)
        .filter(|m| dim.is_multiple_of(*m))
        .min_by_key(|m| (((dim / m) as i64 - 8).abs(), std::cmp::Reverse(*m)))
        .unwrap_or(1)
}

/// Options with every data-dependent value decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedOptions {
    pub options: IndexOptions,
    pub dim: usize,
    pub num_partitions: usize,
    /// 0 unless IVF_PQ.
    pub num_sub_vectors: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &str) -> OptionValue {
        OptionValue::Number(v.into())
    }

    #[test]
    fn unknown_wrong_type_and_misplaced_options_are_explained() {
        let err = IndexOptions::parse(IndexKind::IvfFlat, &[("colour".into(), n("1"))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown option 'colour'") && err.contains("num_partitions"),
            "{err}"
        );
        assert!(!err.contains("num_sub_vectors"), "{err}");
        let err = IndexOptions::parse(
            IndexKind::IvfPq,
            &[("num_partitions".into(), OptionValue::String("x".into()))],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("must be an integer from 1 to 65536, got 'x'"),
            "{err}"
        );
        let err = IndexOptions::parse(IndexKind::IvfSq, &[("num_sub_vectors".into(), n("4"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("applies to IVF_PQ only"), "{err}");
        let err = IndexOptions::parse(
            IndexKind::IvfPq,
            &[("accelerator".into(), OptionValue::String("tpu".into()))],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown accelerator 'tpu'"), "{err}");
    }

    #[test]
    fn the_gpu_memory_cap_is_checked_and_optional_in_manifests() {
        let o = IndexOptions::parse(
            IndexKind::IvfPq,
            &[("gpu_memory_budget_mb".into(), n("512"))],
        )
        .unwrap();
        assert_eq!(o.gpu_memory_budget_mb, Some(512));
        assert_eq!(
            IndexOptions::defaults(IndexKind::IvfPq).gpu_memory_budget_mb,
            None
        );
        for bad in ["0", "-1", "1048577"] {
            let err = IndexOptions::parse(
                IndexKind::IvfFlat,
                &[("gpu_memory_budget_mb".into(), n(bad))],
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("'gpu_memory_budget_mb' must be an integer from 1 to 1048576"),
                "{err}"
            );
        }
        // Options stored before the option existed still read, without a cap.
        let mut stored = serde_json::to_value(IndexOptions::defaults(IndexKind::IvfSq)).unwrap();
        stored
            .as_object_mut()
            .unwrap()
            .remove("gpu_memory_budget_mb");
        let read: IndexOptions = serde_json::from_value(stored).unwrap();
        assert_eq!(read, IndexOptions::defaults(IndexKind::IvfSq));
        let o = OptimizeOptions::parse(&[("gpu_memory_budget_mb".into(), n("64"))]).unwrap();
        assert_eq!(o.gpu_memory_budget_mb, Some(64));
    }

    #[test]
    fn data_dependent_defaults_and_checks() {
        let o = IndexOptions::parse(IndexKind::IvfPq, &[]).unwrap();
        let r = o.resolve(1_000_000, 128).unwrap();
        assert_eq!((r.num_partitions, r.num_sub_vectors), (122, 16));
        assert_eq!(o.resolve(1000, 768).unwrap().num_sub_vectors, 96);
        let o =
            IndexOptions::parse(IndexKind::IvfPq, &[("num_sub_vectors".into(), n("5"))]).unwrap();
        let err = o.resolve(10_000, 128).unwrap_err().to_string();
        assert!(err.contains("does not divide the dimension 128"), "{err}");
        let o =
            IndexOptions::parse(IndexKind::IvfFlat, &[("num_partitions".into(), n("64"))]).unwrap();
        let err = o.resolve(10, 8).unwrap_err().to_string();
        assert!(err.contains("needs at least 64 usable rows"), "{err}");
    }
}
