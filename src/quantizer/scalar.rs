//! IVF_SQ: every dimension quantized to 8 bits between two bounds, values outside clamped.
//!
//! The bounds are trimmed quantiles of the build's sample, not its minimum and maximum: one
//! row of `[1e6, ...]` among ten thousand would otherwise stretch every dimension's range so
//! far that all other rows share one or two codes (recall@10 fell from 1.0 to 0 that way).
//! Trimming [`TRIM_FRACTION`] of the values at each end, at least one when the sample has
//! [`MIN_ROWS_TO_TRIM`] rows, is the usual remedy in the quantization literature (percentile
//! calibration); the clamped outliers are still found, by their clamped codes and, with
//! `refine_factor`, by their exact distance. The sample is the same for a seed however the
//! build is split (samples merge by union), so the bounds are too.

use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::common::exec_err;
use datafusion::error::Result;
use serde::{Deserialize, Serialize};
use vecfusion_kernels::scan::{sq_l2, sq_linear};

use super::{Quantizer, QuantizerParams, QueryTables};
use crate::kmeans::Backend;
use crate::metric::Metric;

/// `2 × dim` f32, minimums then maximums.
pub const SECTION_SQ_BOUNDS: &str = "sq_bounds";

/// Share of each dimension's values left outside the bounds at each end.
pub const TRIM_FRACTION: f64 = 0.001;
/// Samples smaller than this are not trimmed (their extremes are all they know).
pub const MIN_ROWS_TO_TRIM: usize = 100;

/// Per-dimension `[min, max]` quantization bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalarBounds {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl ScalarBounds {
    /// The trimmed bounds of `rows` (row-major, `dim` columns): per dimension, the values of
    /// rank `t` and `n − 1 − t` with `t = max(1, n · TRIM_FRACTION)` (0 below
    /// [`MIN_ROWS_TO_TRIM`] rows).
    pub fn trimmed(rows: &[f32], dim: usize) -> Self {
        use rayon::prelude::*;
        let n = rows.len() / dim.max(1);
        let t = if n < MIN_ROWS_TO_TRIM {
            0
        } else {
            ((n as f64 * TRIM_FRACTION) as usize).max(1)
        };
        let (min, max): (Vec<f32>, Vec<f32>) = (0..dim)
            .into_par_iter()
            .map(|d| {
                if n == 0 {
                    return (0.0, 0.0);
                }
                let mut column: Vec<f32> = rows.iter().skip(d).step_by(dim).copied().collect();
                let lo = *column.select_nth_unstable_by(t, f32::total_cmp).1;
                let hi = *column.select_nth_unstable_by(n - 1 - t, f32::total_cmp).1;
                (lo, hi)
            })
            .unzip();
        Self { min, max }
    }

    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// 8-bit codes: `round((v − min) / (max − min) · 255)`, clamped.
    pub fn encode(&self, rows: &[f32], out: &mut Vec<u8>) {
        let dim = self.dim();
        let scale: Vec<f32> = self
            .min
            .iter()
            .zip(&self.max)
            // A range too wide for f32 (bounds near ±f32::MAX) codes as if it were flat.
            .map(|(lo, hi)| {
                let s = 255.0 / (hi - lo);
                if hi > lo && s.is_finite() && s > 0.0 {
                    s
                } else {
                    0.0
                }
            })
            .collect();
        for row in rows.chunks_exact(dim) {
            out.extend(
                row.iter()
                    .zip(&self.min)
                    .zip(&scale)
                    .map(|((v, lo), s)| ((v - lo) * s).round().clamp(0.0, 255.0) as u8),
            );
        }
    }

    /// The value a code stands for in dimension `d`.
    pub fn decode_value(&self, d: usize, code: u8) -> f32 {
        let (lo, hi) = (self.min[d], self.max[d]);
        lo + (hi - lo) * code as f32 / 255.0
    }
}

/// IVF_SQ codes.
#[derive(Debug)]
pub struct ScalarQuantizer {
    params: QuantizerParams,
    bounds: ScalarBounds,
    /// `min ++ max`, as stored.
    stored: Vec<f32>,
}

/// A query in the affine form of the SQ distance: `bias + Σ_d w[d]·(a[d] − code[d])²` for
/// l2/cosine, `bias + Σ_d w[d]·code[d]` for dot.
struct SqTables {
    a: Vec<f32>,
    w: Vec<f32>,
    bias: f32,
}

impl ScalarQuantizer {
    pub fn new(params: QuantizerParams, bounds: ScalarBounds) -> Self {
        let mut stored = bounds.min.clone();
        stored.extend_from_slice(&bounds.max);
        Self {
            params,
            bounds,
            stored,
        }
    }

    pub fn load(
        params: QuantizerParams,
        section: &dyn Fn(&str) -> Result<ScalarBuffer<f32>>,
    ) -> Result<Self> {
        let both = section(SECTION_SQ_BOUNDS)?;
        if params.dim.checked_mul(2) != Some(both.len()) {
            return exec_err!(
                "the SQ bounds hold {} values, expected a minimum and a maximum for each of {} dimensions",
                both.len(),
                params.dim
            );
        }
        let (min, max) = both.split_at(params.dim);
        Ok(Self::new(
            params,
            ScalarBounds {
                min: min.to_vec(),
                max: max.to_vec(),
            },
        ))
    }
}

impl Quantizer for ScalarQuantizer {
    fn params(&self) -> &QuantizerParams {
        &self.params
    }

    fn code_size(&self) -> usize {
        self.params.dim
    }

    fn sections(&self) -> Vec<(&'static str, &[f32])> {
        vec![(SECTION_SQ_BOUNDS, &self.stored)]
    }

    fn encode(&self, _backend: &dyn Backend, rows: &[f32], _partitions: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(rows.len());
        self.bounds.encode(rows, &mut out);
        Ok(out)
    }

    fn prepare(&self, query: &[f32]) -> QueryTables {
        let (lo, hi) = (&self.bounds.min, &self.bounds.max);
        let mut t = SqTables {
            a: vec![],
            w: vec![],
            bias: 0.0,
        };
        for d in 0..self.params.dim {
            let step = (hi[d] - lo[d]) / 255.0;
            if self.params.metric == Metric::Dot {
                t.bias -= query[d] * lo[d];
                t.w.push(-query[d] * step);
            } else if step > 0.0 {
                t.a.push((query[d] - lo[d]) / step);
                t.w.push(step * step);
            } else {
                t.bias += (query[d] - lo[d]).powi(2);
                t.a.push(0.0);
                t.w.push(0.0);
            }
        }
        QueryTables::new(t)
    }

    fn scan(
        &self,
        _partition: usize,
        _coarse: f32,
        _query: &[f32],
        tables: &QueryTables,
        codes: &Buffer,
        scores: &mut [f32],
        _scratch: &mut Vec<f32>,
    ) {
        let t: &SqTables = tables.get();
        match self.params.metric {
            Metric::Dot => sq_linear(codes.as_slice(), &t.w, t.bias, scores),
            Metric::L2 | Metric::Cosine => sq_l2(codes.as_slice(), &t.a, &t.w, t.bias, scores),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_samples_keep_their_extremes_and_codes_round_trip() {
        let data: Vec<f32> = (0..5 * 70)
            .map(|i| ((i * 37) % 101) as f32 * 0.3 - 9.0)
            .collect();
        let whole = ScalarBounds::trimmed(&data, 5);
        for d in 0..5 {
            let column = data.iter().skip(d).step_by(5);
            assert_eq!(
                whole.min[d],
                column.clone().copied().fold(f32::INFINITY, f32::min)
            );
            assert_eq!(
                whole.max[d],
                column.copied().fold(f32::NEG_INFINITY, f32::max)
            );
        }
        let mut codes = vec![];
        whole.encode(&data, &mut codes);
        for (i, c) in codes.iter().enumerate() {
            let back = whole.decode_value(i % 5, *c);
            let step = (whole.max[i % 5] - whole.min[i % 5]) / 255.0;
            assert!((back - data[i]).abs() <= step * 0.5 + 1e-4);
        }
    }

    #[test]
    fn one_outlier_row_does_not_stretch_the_bounds() {
        // 10,000 rows in [0, 1) and one row of 1e6: the outlier is trimmed, not the range.
        let dim = 4;
        let mut data: Vec<f32> = (0..10_000 * dim)
            .map(|i| ((i * 7919) % 10_007) as f32 / 10_007.0)
            .collect();
        data.extend(std::iter::repeat_n(1e6, dim));
        let bounds = ScalarBounds::trimmed(&data, dim);
        for d in 0..dim {
            assert!(
                bounds.max[d] < 1.0 && bounds.max[d] > 0.98,
                "{:?}",
                bounds.max
            );
            assert!(
                bounds.min[d] >= 0.0 && bounds.min[d] < 0.02,
                "{:?}",
                bounds.min
            );
        }
        // The outlier is clamped to the top code; ordinary rows keep 8-bit resolution.
        let mut codes = vec![];
        bounds.encode(&data[data.len() - dim..], &mut codes);
        assert_eq!(codes, vec![255; dim]);
        // Bounds near f32::MAX do not overflow the scale.
        let extreme = ScalarBounds {
            min: vec![-3e38],
            max: vec![3e38],
        };
        let mut codes = vec![];
        extreme.encode(&[0.0, 3e38], &mut codes);
        assert_eq!(codes.len(), 2);
    }
}
