//! Distance kernels over `f32` slices.
//!
//! Public functions are deliberately not `#[inline]`: an inlined copy would be compiled with the
//! *caller's* optimisation level and instruction set, and the point of this crate is that these
//! loops are always compiled at `opt-level = 3`, for the widest instruction set the CPU has
//! (see [`crate::path`]).
//!
//! Each kernel keeps `LANES` independent accumulators so that LLVM can turn the loop into
//! packed instructions without reassociating floating point sums itself (which it may not
//! do under IEEE semantics). The accumulators are summed at the end, so results can differ
//! from a naive left-to-right sum in the last bits, never more, and never between paths.

use crate::path::kernel;

const LANES: usize = 16;

#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    let mut s = 0.0f32;
    for v in acc {
        s += v;
    }
    s
}

#[inline(always)]
pub(crate) fn l2_squared_body(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s = reduce(acc);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = x - y;
        s += d * d;
    }
    s
}

#[inline(always)]
pub(crate) fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = reduce(acc);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

kernel! {
    /// Squared Euclidean distance `Σ (aᵢ − bᵢ)²`. `a` and `b` must have equal length.
    pub fn l2_squared / l2_squared_on(a: &[f32], b: &[f32]) -> f32 = l2_squared_body;
}

kernel! {
    /// Inner product `Σ aᵢ·bᵢ`.
    pub fn dot / dot_on(a: &[f32], b: &[f32]) -> f32 = dot_body;
}

/// Squared norm `Σ aᵢ²`.
pub fn norm_squared(a: &[f32]) -> f32 {
    dot(a, a)
}

#[inline(always)]
fn cosine_distance_body(a: &[f32], b: &[f32]) -> f32 {
    let (ab, aa, bb) = dot3(a, b);
    1.0 - ab / (aa.sqrt() * bb.sqrt())
}

kernel! {
    /// Cosine distance `1 − a·b / (‖a‖‖b‖)`; `NaN` when either vector is all zeros (the angle
    /// is undefined), like scipy's `cosine`.
    pub fn cosine_distance / cosine_distance_on(a: &[f32], b: &[f32]) -> f32
        = cosine_distance_body;
}

#[inline(always)]
fn cosine_distance_with_norm_body(a: &[f32], b: &[f32], b_norm: f32) -> f32 {
    let (ab, aa) = dot2(a, b);
    1.0 - ab / (aa.sqrt() * b_norm)
}

kernel! {
    /// Cosine distance with the query's norm computed once by the caller (`b_norm = ‖b‖`).
    pub fn cosine_distance_with_norm / cosine_distance_with_norm_on(
        a: &[f32], b: &[f32], b_norm: f32
    ) -> f32 = cosine_distance_with_norm_body;
}

/// `(a·b, a·a)` in one pass.
#[inline(always)]
fn dot2(a: &[f32], b: &[f32]) -> (f32, f32) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut ab = [0.0f32; LANES];
    let mut aa = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            ab[i] += x[i] * y[i];
            aa[i] += x[i] * x[i];
        }
    }
    let (mut sab, mut saa) = (reduce(ab), reduce(aa));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sab += x * y;
        saa += x * x;
    }
    (sab, saa)
}

/// `(a·b, a·a, b·b)` in one pass.
#[inline(always)]
fn dot3(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut ab = [0.0f32; LANES];
    let mut aa = [0.0f32; LANES];
    let mut bb = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            ab[i] += x[i] * y[i];
            aa[i] += x[i] * x[i];
            bb[i] += y[i] * y[i];
        }
    }
    let (mut sab, mut saa, mut sbb) = (reduce(ab), reduce(aa), reduce(bb));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    (sab, saa, sbb)
}

#[inline(always)]
pub(crate) fn add_assign_body(acc: &mut [f32], v: &[f32]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a += x;
    }
}

kernel! {
    /// `acc += v`, element-wise (centroid sums in Lloyd's update step).
    pub fn add_assign / add_assign_on(acc: &mut [f32], v: &[f32]) = add_assign_body;
}

#[inline(always)]
fn sub_assign_body(acc: &mut [f32], v: &[f32]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a -= x;
    }
}

kernel! {
    /// `acc -= v`, element-wise (residuals `x − centroid`).
    pub fn sub_assign / sub_assign_on(acc: &mut [f32], v: &[f32]) = sub_assign_body;
}

#[inline(always)]
fn all_finite_body(values: &[f32]) -> bool {
    // Branch-free over the slice so it vectorises; NaN and ∞ both have an all-ones exponent.
    values.iter().fold(true, |ok, v| ok & v.is_finite())
}

kernel! {
    /// Whether every value is finite (no NaN, no ±∞).
    pub fn all_finite / all_finite_on(values: &[f32]) -> bool = all_finite_body;
}

/// The position of the first NaN or ±∞ in `values`, if any: the vectorised [`all_finite`]
/// first, the scalar search only when it failed (checking queries and training rows is on
/// every search's and build's path; finding the culprit is for the error message).
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    if all_finite(values) {
        return None;
    }
    values.iter().position(|v| !v.is_finite())
}

#[inline(always)]
fn scale_body(values: &mut [f32], factor: f32) {
    values.iter_mut().for_each(|v| *v *= factor);
}

kernel! {
    /// Multiplies every value by `factor`.
    pub fn scale / scale_on(values: &mut [f32], factor: f32) = scale_body;
}

#[inline(always)]
fn l2_squared_batch_body(rows: &[f32], dim: usize, query: &[f32], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(dim).zip(out.iter_mut()) {
        *o = l2_squared_body(row, query);
    }
}

kernel! {
    /// Fills `out[i]` with the squared L2 distance between row `i` of `rows` (row-major, `dim`
    /// columns) and `query`.
    pub fn l2_squared_batch / l2_squared_batch_on(
        rows: &[f32], dim: usize, query: &[f32], out: &mut [f32]
    ) = l2_squared_batch_body;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::path::KernelPath;

    fn naive_l2(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
    }

    /// A small deterministic sequence with both signs, in [−1, 1] (the kernels' tests' data).
    pub(crate) fn vecs(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn every_path_matches_naive_sums_for_every_length() {
        for path in KernelPath::supported() {
            for n in [0, 1, 3, 15, 16, 17, 31, 128, 129, 784, 1536] {
                let a = vecs(n, 1);
                let b = vecs(n, 2);
                let want = naive_l2(&a, &b);
                let got = l2_squared_on(path, &a, &b);
                assert!(
                    (got as f64 - want).abs() <= 1e-4 * want.max(1.0),
                    "{path:?} n={n}"
                );
                let d: f64 = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (*x as f64) * (*y as f64))
                    .sum();
                let got = dot_on(path, &a, &b);
                assert!(
                    (got as f64 - d).abs() <= 1e-4 * d.abs().max(1.0),
                    "{path:?} n={n}"
                );
            }
        }
    }

    #[test]
    fn every_path_computes_the_same_bits() {
        let portable = KernelPath::Portable;
        for path in KernelPath::supported() {
            for n in [1, 8, 17, 128, 769] {
                let (a, b) = (vecs(n, 7), vecs(n, 8));
                assert_eq!(l2_squared_on(path, &a, &b), l2_squared_on(portable, &a, &b));
                assert_eq!(dot_on(path, &a, &b), dot_on(portable, &a, &b));
                assert_eq!(
                    cosine_distance_on(path, &a, &b),
                    cosine_distance_on(portable, &a, &b)
                );
                assert_eq!(
                    cosine_distance_with_norm_on(path, &a, &b, 2.5),
                    cosine_distance_with_norm_on(portable, &a, &b, 2.5)
                );
                let rows = vecs(5 * n, 9);
                let (mut got, mut want) = (vec![0.0; 5], vec![0.0; 5]);
                l2_squared_batch_on(path, &rows, n, &a, &mut got);
                l2_squared_batch_on(portable, &rows, n, &a, &mut want);
                assert_eq!(got, want);
                let (mut x, mut y) = (a.clone(), a.clone());
                add_assign_on(path, &mut x, &b);
                add_assign_on(portable, &mut y, &b);
                assert_eq!(x, y, "{path:?}");
                sub_assign_on(path, &mut x, &rows[..n]);
                sub_assign_on(portable, &mut y, &rows[..n]);
                scale_on(path, &mut x, 0.3);
                scale_on(portable, &mut y, 0.3);
                assert_eq!(x, y, "{path:?}");
                let mut bad = a.clone();
                assert!(all_finite_on(path, &bad));
                assert_eq!(first_non_finite(&bad), None);
                bad[n / 2] = f32::NAN;
                assert!(!all_finite_on(path, &bad), "{path:?}");
                assert_eq!(first_non_finite(&bad), Some(n / 2));
                bad[n / 2] = f32::NEG_INFINITY;
                assert!(!all_finite_on(path, &bad), "{path:?}");
            }
        }
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal_vectors() {
        let a = [1.0, 0.0, 0.0];
        let b = [2.0, 0.0, 0.0];
        let c = [0.0, 3.0, 0.0];
        assert!(cosine_distance(&a, &b).abs() < 1e-6);
        assert!((cosine_distance(&a, &c) - 1.0).abs() < 1e-6);
        assert!((cosine_distance_with_norm(&a, &c, 3.0) - 1.0).abs() < 1e-6);
        assert!(cosine_distance(&a, &[0.0, 0.0, 0.0]).is_nan());
    }

    #[test]
    fn batch_matches_single() {
        let rows = vecs(4 * 33, 3);
        let q = vecs(33, 4);
        let mut out = vec![0.0; 4];
        l2_squared_batch(&rows, 33, &q, &mut out);
        for i in 0..4 {
            assert_eq!(out[i], l2_squared(&rows[i * 33..(i + 1) * 33], &q));
        }
    }
}
