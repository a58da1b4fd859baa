//! Nearest-centroid search as one fused "GEMM + argmin" pass.
//!
//! For rows `x_i` and centroids `c_j` the nearest centroid under L2 minimises
//! `‖x_i − c_j‖² = ‖x_i‖² − 2·x_i·c_j + ‖c_j‖²`; the row norm does not change the argmin, so the
//! kernel minimises the *score* `bias_j − x_i·c_j` with `bias_j = ‖c_j‖²/2` (and `bias_j = 0`
//! for maximum inner product). The squared distance is `‖x_i‖² + 2·score`.
//!
//! Why not a matmul followed by an argmin: the `n × k` product is written to memory and read
//! back, which on a CPU costs about as much as the multiplication itself. Here the dot
//! products of a 6-row × 16-centroid tile live in 12 AVX registers for the whole length of the
//! vectors (a BLIS-style register tile), and are folded into a running per-lane minimum as
//! soon as they are complete; nothing `n × k`-sized ever exists.
//!
//! Layout: centroids are packed into panels of [`NR`] = 16, dimension-major inside a panel
//! (`panel[d * 16 + lane]`), so the inner loop reads one contiguous 64-byte line per
//! dimension. Rows are processed in blocks of [`MC`] and centroids in blocks that fit in L2,
//! so both operands are reused from cache. Rows may be strided (`stride ≥ dim`), which lets
//! product quantization run the same kernel on sub-vectors in place.

use crate::path::KernelPath;

/// Centroids per panel (two 8-lane vectors).
pub const NR: usize = 16;
/// Rows per register tile.
const MR: usize = 6;
/// Rows per cache block (a multiple of `MR`).
pub const MC: usize = 48;
/// Bytes of centroid panels processed per cache block.
const CENTROID_BLOCK_BYTES: usize = 192 * 1024;

/// Centroids prepared for repeated nearest-centroid searches.
#[derive(Debug, Clone)]
pub struct PackedCentroids {
    dim: usize,
    k: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedCentroids {
    /// Packs `centroids` (row-major, `k × dim`) with one bias per centroid.
    pub fn new(centroids: &[f32], dim: usize, bias: impl Fn(&[f32]) -> f32) -> Self {
        assert!(
            dim > 0 && centroids.len().is_multiple_of(dim),
            "centroids must be k × dim"
        );
        let k = centroids.len() / dim;
        // An even number of panels, so the AVX-512 kernel can always take them in pairs (a
        // padding panel has bias +inf and never wins).
        let n_panels = k.div_ceil(NR).next_multiple_of(2);
        let mut panels = vec![0.0f32; n_panels * dim * NR];
        let mut biases = vec![f32::INFINITY; n_panels * NR];
        for (j, c) in centroids.chunks_exact(dim).enumerate() {
            let (p, lane) = (j / NR, j % NR);
            let base = p * dim * NR;
            for (d, v) in c.iter().enumerate() {
                panels[base + d * NR + lane] = *v;
            }
            biases[j] = bias(c);
        }
        Self {
            dim,
            k,
            panels,
            bias: biases,
        }
    }

    /// For nearest-by-L2: `bias = ‖c‖² / 2`.
    pub fn for_l2(centroids: &[f32], dim: usize) -> Self {
        Self::new(centroids, dim, |c| 0.5 * crate::distance::norm_squared(c))
    }

    /// For largest inner product: `bias = 0`.
    pub fn for_inner_product(centroids: &[f32], dim: usize) -> Self {
        Self::new(centroids, dim, |_| 0.0)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn k(&self) -> usize {
        self.k
    }

    fn n_panels(&self) -> usize {
        self.bias.len() / NR
    }

    fn panels_per_block(&self) -> usize {
        (CENTROID_BLOCK_BYTES / (self.dim * NR * 4)).max(1)
    }

    /// Centroid `j` (unpacked), for tests and tools.
    pub fn centroid(&self, j: usize) -> Vec<f32> {
        let (p, lane) = (j / NR, j % NR);
        (0..self.dim)
            .map(|d| self.panels[p * self.dim * NR + d * NR + lane])
            .collect()
    }
}

/// For each of `rows` rows — row `i` is `x[offset + i * stride ..][..dim]` — writes the index
/// of the centroid with the smallest score `bias_j − x_i·c_j` and that score. Ties go to the
/// smaller index. Single-threaded: callers split rows across threads.
pub fn nearest(
    x: &[f32],
    offset: usize,
    stride: usize,
    rows: usize,
    packed: &PackedCentroids,
    out_idx: &mut [u32],
    out_score: &mut [f32],
) {
    let dim = packed.dim;
    assert!(stride >= dim, "stride must be at least dim");
    assert!(
        rows == 0 || offset + (rows - 1) * stride + dim <= x.len(),
        "rows out of bounds"
    );
    assert!(out_idx.len() >= rows && out_score.len() >= rows);
    if rows == 0 || packed.k == 0 {
        return;
    }
    let path = KernelPath::best();
    for b in (0..rows).step_by(MC) {
        let n = MC.min(rows - b);
        let off = offset + b * stride;
        let (idx, score) = (&mut out_idx[b..b + n], &mut out_score[b..b + n]);
        block(path, x, off, stride, n, packed, idx, score);
    }
}

/// One block of at most `MC` rows on `path`, one of [`KernelPath::supported`] (a path the
/// CPU lacks falls back to the portable code).
#[allow(clippy::too_many_arguments)]
#[inline]
fn block(
    path: KernelPath,
    x: &[f32],
    off: usize,
    stride: usize,
    n: usize,
    packed: &PackedCentroids,
    idx: &mut [u32],
    score: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if path == KernelPath::Avx512 && path.available() {
            // SAFETY: the CPU supports AVX-512F (checked above); the caller checked that every
            // row read lies inside `x`. Small sub-vectors (PQ) use 4-row tiles so the running
            // minimum stays in registers; long vectors use 6-row tiles.
            unsafe {
                if packed.dim <= 32 {
                    x86::block_avx512::<4>(x, off, stride, n, packed, idx, score)
                } else {
                    x86::block_avx512::<6>(x, off, stride, n, packed, idx, score)
                }
            };
            return;
        }
        if path == KernelPath::Avx2 && path.available() {
            // SAFETY: the CPU supports AVX2 and FMA (checked above); bounds as above.
            unsafe { x86::block_avx2(x, off, stride, n, packed, idx, score) };
            return;
        }
    }
    let _ = path;
    block_generic(x, off, stride, n, packed, idx, score);
}

/// The distance a score stands for: `‖x‖² + 2·score` (squared L2, clamped at 0) when
/// `squared_l2`, else the score itself (the negated inner product).
#[inline]
fn distance(row: &[f32], score: f32, squared_l2: bool) -> f32 {
    if squared_l2 {
        (crate::distance::dot_body(row, row) + 2.0 * score).max(0.0)
    } else {
        score
    }
}

/// [`nearest`] for `rows` rows, then Lloyd's accumulation: adds each row to `sums` of its
/// centroid (`k × dim`), counts it, and returns the sum of the rows' distances. `idx` and
/// `score` are scratch space of at least `rows` entries.
#[allow(clippy::too_many_arguments)]
pub fn nearest_accumulate(
    x: &[f32],
    offset: usize,
    stride: usize,
    rows: usize,
    packed: &PackedCentroids,
    squared_l2: bool,
    sums: &mut [f32],
    counts: &mut [u64],
    idx: &mut [u32],
    score: &mut [f32],
) -> f64 {
    let dim = packed.dim;
    nearest(x, offset, stride, rows, packed, idx, score);
    let mut objective = 0.0f64;
    for r in 0..rows {
        let row = &x[offset + r * stride..offset + r * stride + dim];
        let j = idx[r] as usize;
        counts[j] += 1;
        objective += distance(row, score[r], squared_l2) as f64;
        // The loop body inlined, not the dispatched kernel: this runs once per row and
        // sub-space (PQ training), where choosing a path per call would cost more than it
        // saves on a few dimensions.
        crate::distance::add_assign_body(&mut sums[j * dim..(j + 1) * dim], row);
    }
    objective
}

/// [`nearest`] writing the index and distance of row `r` to `out_idx[r * out_stride]` and
/// `out_dist[r * out_stride]` (so `m` sub-spaces can fill one row-major `n × m` result).
#[allow(clippy::too_many_arguments)]
pub fn nearest_distances(
    x: &[f32],
    offset: usize,
    stride: usize,
    rows: usize,
    packed: &PackedCentroids,
    squared_l2: bool,
    out_idx: &mut [u32],
    out_dist: &mut [f32],
    out_stride: usize,
    idx: &mut [u32],
    score: &mut [f32],
) {
    let dim = packed.dim;
    nearest(x, offset, stride, rows, packed, idx, score);
    for r in 0..rows {
        let row = &x[offset + r * stride..offset + r * stride + dim];
        out_idx[r * out_stride] = idx[r];
        out_dist[r * out_stride] = distance(row, score[r], squared_l2);
    }
}

/// Portable version of one row block (also the reference the SIMD path is tested against).
fn block_generic(
    x: &[f32],
    offset: usize,
    stride: usize,
    rows: usize,
    packed: &PackedCentroids,
    out_idx: &mut [u32],
    out_score: &mut [f32],
) {
    let dim = packed.dim;
    let mut c = vec![0.0f32; dim];
    let mut best = vec![(f32::INFINITY, 0u32); rows];
    for j in 0..packed.k {
        let (p, lane) = (j / NR, j % NR);
        for (d, v) in c.iter_mut().enumerate() {
            *v = packed.panels[p * dim * NR + d * NR + lane];
        }
        for (i, b) in best.iter_mut().enumerate() {
            let row = &x[offset + i * stride..offset + i * stride + dim];
            let s = packed.bias[j] - crate::distance::dot(row, &c);
            if s < b.0 {
                *b = (s, j as u32);
            }
        }
    }
    for (i, (s, j)) in best.into_iter().enumerate() {
        out_idx[i] = j;
        out_score[i] = s;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MC, MR, NR, PackedCentroids};
    use std::arch::x86_64::*;

    /// Folds one 8-lane score vector into the running lane-wise minimum.
    macro_rules! fold {
        ($bv:expr, $bi:expr, $v:expr, $idx:expr) => {{
            let v = $v;
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(v, $bv);
            $bv = _mm256_blendv_ps($bv, v, lt);
            $bi = _mm256_castps_si256(_mm256_blendv_ps(
                _mm256_castsi256_ps($bi),
                _mm256_castsi256_ps($idx),
                lt,
            ));
        }};
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(
        x: &[f32],
        offset: usize,
        stride: usize,
        rows: usize,
        packed: &PackedCentroids,
        out_idx: &mut [u32],
        out_score: &mut [f32],
    ) {
        // SAFETY: the caller guarantees AVX2+FMA and that every row read is in bounds.
        unsafe {
            debug_assert!(rows <= MC);
            let dim = packed.dim;
            let tiles = rows.div_ceil(MR);
            let inf = _mm256_set1_ps(f32::INFINITY);
            let mut best_v = [[inf; 2 * MR]; MC / MR];
            let mut best_i = [[_mm256_setzero_si256(); 2 * MR]; MC / MR];
            let lane_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let lane_hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
            let n_panels = packed.n_panels();
            let per_block = packed.panels_per_block();
            let base = x.as_ptr().add(offset);
            let panels = packed.panels.as_ptr();
            let bias = packed.bias.as_ptr();

            let mut cb = 0;
            while cb < n_panels {
                let cb_end = (cb + per_block).min(n_panels);
                for t in 0..tiles {
                    // Rows past the end repeat the last row; their results are not stored.
                    let row = |r: usize| base.add((t * MR + r).min(rows - 1) * stride);
                    let (x0, x1, x2, x3, x4, x5) = (row(0), row(1), row(2), row(3), row(4), row(5));
                    let mut bv = best_v[t];
                    let mut bi = best_i[t];
                    for p in cb..cb_end {
                        let panel = panels.add(p * dim * NR);
                        let mut a00 = _mm256_setzero_ps();
                        let mut a01 = _mm256_setzero_ps();
                        let mut a10 = _mm256_setzero_ps();
                        let mut a11 = _mm256_setzero_ps();
                        let mut a20 = _mm256_setzero_ps();
                        let mut a21 = _mm256_setzero_ps();
                        let mut a30 = _mm256_setzero_ps();
                        let mut a31 = _mm256_setzero_ps();
                        let mut a40 = _mm256_setzero_ps();
                        let mut a41 = _mm256_setzero_ps();
                        let mut a50 = _mm256_setzero_ps();
                        let mut a51 = _mm256_setzero_ps();
                        for d in 0..dim {
                            let c0 = _mm256_loadu_ps(panel.add(d * NR));
                            let c1 = _mm256_loadu_ps(panel.add(d * NR + 8));
                            let v = _mm256_broadcast_ss(&*x0.add(d));
                            a00 = _mm256_fmadd_ps(v, c0, a00);
                            a01 = _mm256_fmadd_ps(v, c1, a01);
                            let v = _mm256_broadcast_ss(&*x1.add(d));
                            a10 = _mm256_fmadd_ps(v, c0, a10);
                            a11 = _mm256_fmadd_ps(v, c1, a11);
                            let v = _mm256_broadcast_ss(&*x2.add(d));
                            a20 = _mm256_fmadd_ps(v, c0, a20);
                            a21 = _mm256_fmadd_ps(v, c1, a21);
                            let v = _mm256_broadcast_ss(&*x3.add(d));
                            a30 = _mm256_fmadd_ps(v, c0, a30);
                            a31 = _mm256_fmadd_ps(v, c1, a31);
                            let v = _mm256_broadcast_ss(&*x4.add(d));
                            a40 = _mm256_fmadd_ps(v, c0, a40);
                            a41 = _mm256_fmadd_ps(v, c1, a41);
                            let v = _mm256_broadcast_ss(&*x5.add(d));
                            a50 = _mm256_fmadd_ps(v, c0, a50);
                            a51 = _mm256_fmadd_ps(v, c1, a51);
                        }
                        let b0 = _mm256_loadu_ps(bias.add(p * NR));
                        let b1 = _mm256_loadu_ps(bias.add(p * NR + 8));
                        let start = _mm256_set1_epi32((p * NR) as i32);
                        let i0 = _mm256_add_epi32(start, lane_lo);
                        let i1 = _mm256_add_epi32(start, lane_hi);
                        fold!(bv[0], bi[0], _mm256_sub_ps(b0, a00), i0);
                        fold!(bv[1], bi[1], _mm256_sub_ps(b1, a01), i1);
                        fold!(bv[2], bi[2], _mm256_sub_ps(b0, a10), i0);
                        fold!(bv[3], bi[3], _mm256_sub_ps(b1, a11), i1);
                        fold!(bv[4], bi[4], _mm256_sub_ps(b0, a20), i0);
                        fold!(bv[5], bi[5], _mm256_sub_ps(b1, a21), i1);
                        fold!(bv[6], bi[6], _mm256_sub_ps(b0, a30), i0);
                        fold!(bv[7], bi[7], _mm256_sub_ps(b1, a31), i1);
                        fold!(bv[8], bi[8], _mm256_sub_ps(b0, a40), i0);
                        fold!(bv[9], bi[9], _mm256_sub_ps(b1, a41), i1);
                        fold!(bv[10], bi[10], _mm256_sub_ps(b0, a50), i0);
                        fold!(bv[11], bi[11], _mm256_sub_ps(b1, a51), i1);
                    }
                    best_v[t] = bv;
                    best_i[t] = bi;
                }
                cb = cb_end;
            }

            // Reduce the 16 lanes of each row to one (score, index); ties to the smaller index.
            let mut vals = [0.0f32; NR];
            let mut idxs = [0i32; NR];
            for r in 0..rows {
                let (t, i) = (r / MR, r % MR);
                _mm256_storeu_ps(vals.as_mut_ptr(), best_v[t][2 * i]);
                _mm256_storeu_ps(vals.as_mut_ptr().add(8), best_v[t][2 * i + 1]);
                _mm256_storeu_si256(idxs.as_mut_ptr() as *mut __m256i, best_i[t][2 * i]);
                _mm256_storeu_si256(
                    idxs.as_mut_ptr().add(8) as *mut __m256i,
                    best_i[t][2 * i + 1],
                );
                let (mut s, mut j) = (f32::INFINITY, u32::MAX);
                for l in 0..NR {
                    let (v, ix) = (vals[l], idxs[l] as u32);
                    if v < s || (v == s && ix < j) {
                        s = v;
                        j = ix;
                    }
                }
                out_idx[r] = if j == u32::MAX { 0 } else { j };
                out_score[r] = s;
            }
        }
    }

    /// Runs one tile of `MR` rows over centroid panels `[from, to)` (in pairs), folding into
    /// the running best `bv`/`bi` (per row: lanes 0..16 and 16..32).
    #[inline(always)]
    unsafe fn tile_avx512<const MR: usize>(
        xs: &[*const f32; MR],
        packed: &PackedCentroids,
        from: usize,
        to: usize,
        bv: &mut [[__m512; 2]; MR],
        bi: &mut [[__m512i; 2]; MR],
    ) {
        unsafe {
            let dim = packed.dim;
            let panels = packed.panels.as_ptr();
            let bias = packed.bias.as_ptr();
            let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let mut p = from;
            while p < to {
                let p0 = panels.add(p * dim * NR);
                let p1 = panels.add((p + 1) * dim * NR);
                let mut acc = [[_mm512_setzero_ps(); 2]; MR];
                for d in 0..dim {
                    let c0 = _mm512_loadu_ps(p0.add(d * NR));
                    let c1 = _mm512_loadu_ps(p1.add(d * NR));
                    for r in 0..MR {
                        let v = _mm512_set1_ps(*xs[r].add(d));
                        acc[r][0] = _mm512_fmadd_ps(v, c0, acc[r][0]);
                        acc[r][1] = _mm512_fmadd_ps(v, c1, acc[r][1]);
                    }
                }
                let b = [
                    _mm512_loadu_ps(bias.add(p * NR)),
                    _mm512_loadu_ps(bias.add(p * NR + NR)),
                ];
                let ids = [
                    _mm512_add_epi32(_mm512_set1_epi32((p * NR) as i32), lanes),
                    _mm512_add_epi32(_mm512_set1_epi32((p * NR + NR) as i32), lanes),
                ];
                for r in 0..MR {
                    for h in 0..2 {
                        let v = _mm512_sub_ps(b[h], acc[r][h]);
                        let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, bv[r][h]);
                        bv[r][h] = _mm512_mask_mov_ps(bv[r][h], lt, v);
                        bi[r][h] = _mm512_mask_mov_epi32(bi[r][h], lt, ids[h]);
                    }
                }
                p += 2;
            }
        }
    }

    /// Reduces one row's 32 lanes to (index, score); ties to the smaller index.
    #[inline(always)]
    unsafe fn reduce_avx512(bv: &[__m512; 2], bi: &[__m512i; 2], k: usize) -> (u32, f32) {
        unsafe {
            let s = _mm512_reduce_min_ps(_mm512_min_ps(bv[0], bv[1]));
            let sv = _mm512_set1_ps(s);
            let none = _mm512_set1_epi32(-1);
            let i0 =
                _mm512_mask_mov_epi32(none, _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(bv[0], sv), bi[0]);
            let i1 =
                _mm512_mask_mov_epi32(none, _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(bv[1], sv), bi[1]);
            let j = _mm512_reduce_min_epu32(_mm512_min_epu32(i0, i1));
            // No finite score at all (NaN input): report centroid 0, like the portable path.
            (if (j as usize) < k { j } else { 0 }, s)
        }
    }

    /// AVX-512 version: tiles of `MR` rows × 32 centroids (two 16-centroid panels, one
    /// 16-lane register each), mask registers for the running minimum. When all centroids
    /// fit in one cache block (always for PQ codebooks) the running minimum never leaves
    /// registers; otherwise it is kept per tile across centroid blocks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_avx512<const MR: usize>(
        x: &[f32],
        offset: usize,
        stride: usize,
        rows: usize,
        packed: &PackedCentroids,
        out_idx: &mut [u32],
        out_score: &mut [f32],
    ) {
        const MAX_TILES: usize = MC / 4;
        debug_assert!(rows <= MC && MR >= 4);
        // SAFETY: the caller guarantees AVX-512F and that every row read is in bounds.
        unsafe {
            let tiles = rows.div_ceil(MR);
            let n_panels = packed.n_panels();
            let per_block = packed.panels_per_block().next_multiple_of(2);
            let base = x.as_ptr().add(offset);
            let row_ptrs = |t: usize| {
                let mut xs = [base; MR];
                for (r, p) in xs.iter_mut().enumerate() {
                    *p = base.add((t * MR + r).min(rows - 1) * stride);
                }
                xs
            };
            let inf = _mm512_set1_ps(f32::INFINITY);
            let zero = _mm512_setzero_si512();
            let mut store = |t: usize, bv: &[[__m512; 2]; MR], bi: &[[__m512i; 2]; MR]| {
                for r in 0..MR {
                    let row = t * MR + r;
                    if row < rows {
                        let (j, s) = reduce_avx512(&bv[r], &bi[r], packed.k);
                        out_idx[row] = j;
                        out_score[row] = s;
                    }
                }
            };
            if n_panels <= per_block {
                for t in 0..tiles {
                    let mut bv = [[inf; 2]; MR];
                    let mut bi = [[zero; 2]; MR];
                    tile_avx512::<MR>(&row_ptrs(t), packed, 0, n_panels, &mut bv, &mut bi);
                    store(t, &bv, &bi);
                }
                return;
            }
            let mut best_v = [[[inf; 2]; MR]; MAX_TILES];
            let mut best_i = [[[zero; 2]; MR]; MAX_TILES];
            let mut cb = 0;
            while cb < n_panels {
                let cb_end = (cb + per_block).min(n_panels);
                for t in 0..tiles {
                    tile_avx512::<MR>(
                        &row_ptrs(t),
                        packed,
                        cb,
                        cb_end,
                        &mut best_v[t],
                        &mut best_i[t],
                    );
                }
                cb = cb_end;
            }
            for t in 0..tiles {
                store(t, &best_v[t], &best_i[t]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn brute(x: &[f32], dim: usize, c: &[f32]) -> Vec<(u32, f32)> {
        x.chunks(dim)
            .map(|r| {
                let mut best = (0u32, f32::INFINITY);
                for (j, cj) in c.chunks(dim).enumerate() {
                    let d = crate::distance::l2_squared(r, cj);
                    if d < best.1 {
                        best = (j as u32, d);
                    }
                }
                best
            })
            .collect()
    }

    #[test]
    fn every_supported_path_matches_brute_force_for_awkward_shapes() {
        for path in KernelPath::supported() {
            for (n, k, dim) in [
                (1, 1, 1),
                (7, 3, 5),
                (100, 17, 33),
                (97, 40, 128),
                (50, 300, 8),
                (60, 70, 24),
            ] {
                check_against_brute_force(path, n, k, dim);
            }
        }
    }

    fn check_against_brute_force(path: KernelPath, n: usize, k: usize, dim: usize) {
        {
            let x = data(n * dim, 1);
            let c = data(k * dim, 2);
            let packed = PackedCentroids::for_l2(&c, dim);
            let (mut idx, mut score) = (vec![0; n], vec![0.0; n]);
            for b in (0..n).step_by(MC) {
                let m = MC.min(n - b);
                let (i, s) = (&mut idx[b..b + m], &mut score[b..b + m]);
                block(path, &x, b * dim, dim, m, &packed, i, s);
            }
            let want = brute(&x, dim, &c);
            for i in 0..n {
                let row = &x[i * dim..(i + 1) * dim];
                let got_d = crate::distance::norm_squared(row) + 2.0 * score[i];
                assert!(
                    (got_d - want[i].1).abs() < 1e-3 * (1.0 + want[i].1),
                    "{path:?} n={n} k={k} d={dim}"
                );
                if idx[i] != want[i].0 {
                    // Only a near-tie may pick a different centroid.
                    let other =
                        crate::distance::l2_squared(row, &c[idx[i] as usize * dim..][..dim]);
                    assert!(
                        (other - want[i].1).abs() < 1e-4,
                        "{path:?} row {i}: {} vs {}",
                        idx[i],
                        want[i].0
                    );
                }
            }
        }
    }

    #[test]
    fn strided_sub_vectors_and_inner_product() {
        // Rows of 12 values; search on the sub-vector [4, 8) of each row.
        let (n, k) = (30, 5);
        let x = data(n * 12, 5);
        let c = data(k * 4, 6);
        let packed = PackedCentroids::for_inner_product(&c, 4);
        let (mut idx, mut score) = (vec![0; n], vec![0.0; n]);
        nearest(&x, 4, 12, n, &packed, &mut idx, &mut score);
        for i in 0..n {
            let sub = &x[i * 12 + 4..i * 12 + 8];
            let best = (0..k)
                .map(|j| crate::distance::dot(sub, &c[j * 4..(j + 1) * 4]))
                .fold(f32::MIN, f32::max);
            assert!((-score[i] - best).abs() < 1e-5);
        }
    }
}
