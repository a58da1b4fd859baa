//! Scalar quantization bounds: per-dimension minimum and maximum, mergeable from partial
//! samples (so fragments can be scanned in parallel, or on different machines, and combined).

use serde::{Deserialize, Serialize};

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
