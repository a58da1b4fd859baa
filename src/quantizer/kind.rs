//! The kinds of vector index vecfusion builds and searches, as SQL and the manifest name them.

use datafusion::common::plan_err;
use datafusion::error::Result;
use serde::{Deserialize, Serialize};

/// The index kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IndexKind {
    /// IVF with the full vectors in each partition (exact distances inside probed lists).
    #[serde(rename = "IVF_FLAT")]
    IvfFlat,
    /// IVF with 8-bit scalar-quantized vectors (per-dimension trimmed bounds, see `scalar`).
    #[serde(rename = "IVF_SQ")]
    IvfSq,
    /// IVF with product-quantized residuals.
    #[serde(rename = "IVF_PQ")]
    IvfPq,
}

impl IndexKind {
    pub const NAMES: &'static str = "IVF_FLAT, IVF_SQ, IVF_PQ";

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "IVF_FLAT" => Ok(Self::IvfFlat),
            "IVF_SQ" => Ok(Self::IvfSq),
            "IVF_PQ" => Ok(Self::IvfPq),
            other => plan_err!(
                "unknown vector index kind '{other}'; expected one of {}",
                Self::NAMES
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::IvfFlat => "IVF_FLAT",
            Self::IvfSq => "IVF_SQ",
            Self::IvfPq => "IVF_PQ",
        }
    }
}

impl std::fmt::Display for IndexKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
