//! IVF_SQ: every dimension quantized to 8 bits between that dimension's minimum and maximum
//! over the indexed rows. The bounds merge from partial samples (fragments scanned in
//! parallel, or on different machines, combine by min/max).

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

/// Per-dimension `[min, max]` of the vectors seen so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalarBounds {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl ScalarBounds {
    /// Bounds of nothing yet (`+inf` / `-inf`).
    pub fn empty(dim: usize) -> Self {
        Self {
            min: vec![f32::INFINITY; dim],
            max: vec![f32::NEG_INFINITY; dim],
        }
    }

    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Widens the bounds to cover `rows` (row-major, `dim` columns).
    pub fn update(&mut self, rows: &[f32]) {
        let dim = self.dim();
        for row in rows.chunks_exact(dim) {
            for ((lo, hi), v) in self.min.iter_mut().zip(self.max.iter_mut()).zip(row) {
                *lo = lo.min(*v);
                *hi = hi.max(*v);
            }
        }
    }

    /// Combines bounds computed on disjoint parts of the data.
    pub fn merge(&mut self, other: &ScalarBounds) {
        for (a, b) in self.min.iter_mut().zip(&other.min) {
            *a = a.min(*b);
        }
        for (a, b) in self.max.iter_mut().zip(&other.max) {
            *a = a.max(*b);
        }
    }

    /// 8-bit codes: `round((v − min) / (max − min) · 255)`, clamped.
    pub fn encode(&self, rows: &[f32], out: &mut Vec<u8>) {
        let dim = self.dim();
        let scale: Vec<f32> = self
            .min
            .iter()
            .zip(&self.max)
            .map(|(lo, hi)| if hi > lo { 255.0 / (hi - lo) } else { 0.0 })
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
        if both.len() != 2 * params.dim {
            return exec_err!(
                "the SQ bounds hold {} values, expected {} for {} dimensions",
                both.len(),
                2 * params.dim,
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
    fn bounds_merge_to_the_bounds_of_the_whole_and_codes_round_trip() {
        let data: Vec<f32> = (0..5 * 70)
            .map(|i| ((i * 37) % 101) as f32 * 0.3 - 9.0)
            .collect();
        let mut whole = ScalarBounds::empty(5);
        whole.update(&data);
        let (a, b) = data.split_at(5 * 40);
        let mut left = ScalarBounds::empty(5);
        left.update(a);
        let mut right = ScalarBounds::empty(5);
        right.update(b);
        left.merge(&right);
        assert_eq!(left, whole);
        let mut codes = vec![];
        whole.encode(&data, &mut codes);
        for (i, c) in codes.iter().enumerate() {
            let back = whole.decode_value(i % 5, *c);
            let step = (whole.max[i % 5] - whole.min[i % 5]) / 255.0;
            assert!((back - data[i]).abs() <= step * 0.5 + 1e-4);
        }
    }
}
