//! 4-bit product-quantization scans with the tables in registers ("fast scan").
//!
//! A 4-bit code indexes a table of 16 entries: quantized to bytes, one table fits a 128-bit
//! register lane, and a byte shuffle (`pshufb`) looks up 16 codes at once. The scan therefore
//! reads codes in blocks of [`BLOCK_ROWS`] rows laid out for it (see [`pack_blocks`]) and sums
//! byte tables ([`quantize_tables`]) into 16-bit integers; the caller turns the sums back into
//! distances with the scale and bias the quantization returned. Integer sums make every path
//! bit-identical to the portable one.
//!
//! The stored codes stay row-major (one code per byte, as every other scan reads them); a
//! partition is packed into blocks once, when a search first reads it.

use crate::path::KernelPath;

/// Rows per block: 16 byte lanes, two codes per byte.
pub const BLOCK_ROWS: usize = 32;

/// Sub-spaces of a block are padded to a multiple of this (the sub-spaces one 512-bit load
/// holds); padded sub-spaces have code 0 and an all-zero table.
pub const SUBSPACE_GROUP: usize = 4;

/// The most sub-spaces a scan sums without overflowing its 16-bit sums (`255 · m ≤ 65,535`).
pub const MAX_SUBSPACES: usize = 256;

/// Bytes of one quantized table.
const TABLE: usize = 16;

/// Sub-spaces as stored in a block and as tables are laid out: `m` rounded up to
/// [`SUBSPACE_GROUP`].
pub fn padded_subspaces(m: usize) -> usize {
    m.div_ceil(SUBSPACE_GROUP) * SUBSPACE_GROUP
}

/// Bytes the blocks of `rows` rows of `m` codes take; `None` if that overflows.
pub fn packed_len(rows: usize, m: usize) -> Option<usize> {
    rows.div_ceil(BLOCK_ROWS)
        .checked_mul(padded_subspaces(m))?
        .checked_mul(TABLE)
}

/// Lays out `codes` (row-major, `m` 4-bit codes per row, one per byte; higher bits are
/// ignored) as scan blocks: per block of [`BLOCK_ROWS`] rows, per sub-space, 16 bytes whose
/// byte `j` holds row `j`'s code in its low nibble and row `j + 16`'s in its high one. Rows
/// missing from the last block get code 0; their sums are computed and not read.
pub fn pack_blocks(codes: &[u8], m: usize) -> Vec<u8> {
    let Some(rows) = codes.len().checked_div(m) else {
        return vec![];
    };
    let mp = padded_subspaces(m);
    // At most 2 bytes per code plus one block's padding rows, and `codes` is in memory: the
    // size cannot overflow.
    let mut out = vec![0u8; packed_len(rows, m).unwrap_or(0)];
    for (r, row) in codes.chunks_exact(m).enumerate() {
        let (block, i) = (r / BLOCK_ROWS, r % BLOCK_ROWS);
        let (byte, shift) = (i % 16, if i < 16 { 0 } else { 4 });
        let base = block * mp * TABLE;
        for (s, c) in row.iter().enumerate() {
            out[base + s * TABLE + byte] |= (c & 0x0F) << shift;
        }
    }
    out
}

/// Quantizes a query's tables (`m × 16` floats) into `out` (`padded_subspaces(m) × 16`
/// bytes). Each table is shifted by its minimum and all share one step, so a sum of entries
/// maps back to a distance as `bias + scale · sum`; returns `(scale, bias)`. The error of one
/// distance is at most `m · scale / 2`. Entries are rounded to the nearest step (ties to
/// even) and clamped to 0–255 (a NaN gives 0).
pub fn quantize_tables(lut: &[f32], m: usize, out: &mut [u8]) -> (f32, f32) {
    quantize_tables_on(KernelPath::best(), lut, m, out)
}

/// [`quantize_tables`] on one [`KernelPath`] (a path the CPU lacks runs the portable code).
/// It runs once per probed partition, so it must cost little beside the scan: the wide paths
/// take one table per vector (LLVM vectorises the portable loops across tables instead, with
/// gathers and byte-by-byte stores, at several times the cost).
pub fn quantize_tables_on(path: KernelPath, lut: &[f32], m: usize, out: &mut [u8]) -> (f32, f32) {
    out.fill(0);
    let tables = &lut.as_chunks::<TABLE>().0[..m.min(MAX_SUBSPACES)];
    let out = &mut out.as_chunks_mut::<TABLE>().0[..tables.len()];
    #[cfg(target_arch = "x86_64")]
    match path {
        // SAFETY: `available` checked the features each function is compiled with; they
        // read `tables` and write `out`, of equal lengths, whole.
        KernelPath::Avx512 if path.available() => {
            return unsafe { x86::quantize_avx512(tables, out) };
        }
        // SAFETY: as above.
        KernelPath::Avx2 if path.available() => {
            return unsafe { x86::quantize_avx2(tables, out) };
        }
        _ => {}
    }
    let _ = path;
    quantize_portable(tables, out)
}

/// The common step of all tables: the widest table's range over 255 (1 when every table is
/// flat, or a range is not finite).
fn step(widest: f32) -> f32 {
    if widest > 0.0 && widest.is_finite() {
        widest / 255.0
    } else {
        1.0
    }
}

/// Per table its minimum (`range` gives a table's minimum and maximum), and
/// `(Σ minima, widest range)`: the same additions, in table order, on every path.
#[inline(always)]
fn ranges(
    tables: &[[f32; TABLE]],
    range: impl Fn(&[f32; TABLE]) -> (f32, f32),
) -> ([f32; MAX_SUBSPACES], f32, f32) {
    let mut lows = [0.0f32; MAX_SUBSPACES];
    let (mut bias, mut widest) = (0.0f32, 0.0f32);
    for (t, low) in tables.iter().zip(&mut lows) {
        let (lo, hi) = range(t);
        (*low, bias) = (lo, bias + lo);
        widest = widest.max(hi - lo);
    }
    (lows, bias, widest)
}

fn quantize_portable(tables: &[[f32; TABLE]], out: &mut [[u8; TABLE]]) -> (f32, f32) {
    let (lows, bias, widest) = ranges(tables, |t| {
        (
            t.iter().copied().fold(f32::INFINITY, f32::min),
            t.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        )
    });
    let scale = step(widest);
    let inverse = 1.0 / scale;
    for ((t, o), lo) in tables.iter().zip(out).zip(lows) {
        for (v, q) in t.iter().zip(o) {
            // Clamped by comparisons (NaN gives 0), then rounded to the nearest integer, ties
            // to even as the wide paths' conversions round, by adding 2^23: the sum's float
            // has exactly that integer in its low mantissa bits.
            let x = (v - lo) * inverse;
            let x = if x >= 0.0 { x } else { 0.0 };
            let x = if x <= 255.0 { x } else { 255.0 };
            *q = (x + 8_388_608.0).to_bits() as u8;
        }
    }
    (scale, bias)
}

/// Sums, for every row of `blocks` (from [`pack_blocks`] with `m` sub-spaces), its entries
/// of `tables` (from [`quantize_tables`]): `out[r]` for row `r`, `out` holding a whole
/// number of blocks ([`BLOCK_ROWS`] per block). `m` must be at most [`MAX_SUBSPACES`].
pub fn scan_blocks(blocks: &[u8], m: usize, tables: &[u8], out: &mut [u16]) {
    scan_blocks_on(KernelPath::best(), blocks, m, tables, out)
}

/// [`scan_blocks`] on one [`KernelPath`] (a path the CPU lacks runs the portable code).
pub fn scan_blocks_on(path: KernelPath, blocks: &[u8], m: usize, tables: &[u8], out: &mut [u16]) {
    let mp = padded_subspaces(m);
    assert!(
        m <= MAX_SUBSPACES,
        "fast scan sums at most {MAX_SUBSPACES} sub-spaces"
    );
    if mp == 0 {
        return out.fill(0);
    }
    let block_bytes = mp * TABLE;
    let n = (blocks.len() / block_bytes).min(out.len() / BLOCK_ROWS);
    let (blocks, tables) = (&blocks[..n * block_bytes], &tables[..block_bytes]);
    let out = &mut out[..n * BLOCK_ROWS];
    #[cfg(target_arch = "x86_64")]
    match path {
        // SAFETY: `available` checked the features each function is compiled with; the
        // slices were cut to whole blocks above, which is all the functions read and write.
        KernelPath::Avx512 if path.available() => {
            return unsafe { x86::scan_avx512(blocks, mp, tables, out) };
        }
        // SAFETY: as above.
        KernelPath::Avx2 if path.available() => {
            return unsafe { x86::scan_avx2(blocks, mp, tables, out) };
        }
        _ => {}
    }
    let _ = path;
    scan_portable(blocks, mp, tables, out)
}

fn scan_portable(blocks: &[u8], mp: usize, tables: &[u8], out: &mut [u16]) {
    for (block, sums) in blocks
        .chunks_exact(mp * TABLE)
        .zip(out.chunks_exact_mut(BLOCK_ROWS))
    {
        sums.fill(0);
        for (codes, table) in block.chunks_exact(TABLE).zip(tables.chunks_exact(TABLE)) {
            for (j, c) in codes.iter().enumerate() {
                sums[j] = sums[j].wrapping_add(table[(c & 0x0F) as usize] as u16);
                sums[j + 16] = sums[j + 16].wrapping_add(table[(c >> 4) as usize] as u16);
            }
        }
    }
}

/// Turns sums back into distances: `out[r] = add + bias + scale · sums[r]` for the first
/// `out.len()` rows.
pub fn dequantize(sums: &[u16], scale: f32, bias: f32, add: f32, out: &mut [f32]) {
    let base = add + bias;
    for (o, s) in out.iter_mut().zip(sums) {
        *o = base + scale * *s as f32;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{BLOCK_ROWS, TABLE, ranges};

    /// Stores the 32 row sums of a block from four 8-lane accumulators: even and odd rows of
    /// the low nibbles (rows 0–15) and of the high nibbles (rows 16–31).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store_block(
        lo_even: __m128i,
        lo_odd: __m128i,
        hi_even: __m128i,
        hi_odd: __m128i,
        out: &mut [u16],
    ) {
        let out = &mut out[..BLOCK_ROWS];
        // SAFETY: `out` holds 32 u16 = four 16-byte stores.
        unsafe {
            let p = out.as_mut_ptr() as *mut __m128i;
            _mm_storeu_si128(p, _mm_unpacklo_epi16(lo_even, lo_odd));
            _mm_storeu_si128(p.add(1), _mm_unpackhi_epi16(lo_even, lo_odd));
            _mm_storeu_si128(p.add(2), _mm_unpacklo_epi16(hi_even, hi_odd));
            _mm_storeu_si128(p.add(3), _mm_unpackhi_epi16(hi_even, hi_odd));
        }
    }

    /// The sum of a 256-bit vector's two 128-bit lanes (as 16-bit integers).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn fold256(v: __m256i) -> __m128i {
        _mm_add_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
    }

    /// The sum of a 512-bit vector's four 128-bit lanes (as 16-bit integers).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    fn fold512(v: __m512i) -> __m128i {
        fold256(_mm256_add_epi16(
            _mm512_castsi512_si256(v),
            _mm512_extracti64x4_epi64::<1>(v),
        ))
    }

    /// One 16-entry table per 512-bit vector: minimum and maximum by reduction, then
    /// `(v − lo) / step` clamped, converted (round to nearest even) and narrowed to bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    pub(super) unsafe fn quantize_avx512(
        tables: &[[f32; TABLE]],
        out: &mut [[u8; TABLE]],
    ) -> (f32, f32) {
        let load = |t: &[f32; TABLE]| {
            // SAFETY: a table is 16 floats, one unaligned 512-bit load.
            unsafe { _mm512_loadu_ps(t.as_ptr()) }
        };
        let (lows, bias, widest) = ranges(tables, |t| {
            let v = load(t);
            (_mm512_reduce_min_ps(v), _mm512_reduce_max_ps(v))
        });
        let scale = super::step(widest);
        let (inverse, zero, top) = (
            _mm512_set1_ps(1.0 / scale),
            _mm512_setzero_ps(),
            _mm512_set1_ps(255.0),
        );
        for ((t, o), lo) in tables.iter().zip(out).zip(lows) {
            let x = _mm512_mul_ps(_mm512_sub_ps(load(t), _mm512_set1_ps(lo)), inverse);
            // `max` returns its second operand for a NaN: 0, as in the portable path.
            let x = _mm512_min_ps(_mm512_max_ps(x, zero), top);
            let bytes = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(x));
            // SAFETY: `o` is 16 bytes.
            unsafe { _mm_storeu_si128(o.as_mut_ptr() as *mut __m128i, bytes) };
        }
        (scale, bias)
    }

    /// [`quantize_avx512`] with a table as two 256-bit vectors.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_avx2(
        tables: &[[f32; TABLE]],
        out: &mut [[u8; TABLE]],
    ) -> (f32, f32) {
        let load = |t: &[f32; TABLE]| {
            // SAFETY: a table is 16 floats, two unaligned 256-bit loads.
            unsafe {
                (
                    _mm256_loadu_ps(t.as_ptr()),
                    _mm256_loadu_ps(t.as_ptr().add(8)),
                )
            }
        };
        let horizontal = |v: __m256, f: fn(__m128, __m128) -> __m128| {
            let v = f(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let v = f(v, _mm_movehl_ps(v, v));
            _mm_cvtss_f32(f(v, _mm_movehdup_ps(v)))
        };
        let (lows, bias, widest) = ranges(tables, |t| {
            let (a, b) = load(t);
            (
                horizontal(_mm256_min_ps(a, b), |x, y| _mm_min_ps(x, y)),
                horizontal(_mm256_max_ps(a, b), |x, y| _mm_max_ps(x, y)),
            )
        });
        let scale = super::step(widest);
        let (inverse, zero, top) = (
            _mm256_set1_ps(1.0 / scale),
            _mm256_setzero_ps(),
            _mm256_set1_ps(255.0),
        );
        for ((t, o), lo) in tables.iter().zip(out).zip(lows) {
            let (a, b) = load(t);
            let lo = _mm256_set1_ps(lo);
            let convert = |v: __m256| {
                let x = _mm256_mul_ps(_mm256_sub_ps(v, lo), inverse);
                _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(x, zero), top))
            };
            // 16 × i32 → 16 × i16 (lanes interleaved by the pack, put back in order) → bytes.
            let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(
                convert(a),
                convert(b),
            ));
            let bytes = _mm_packus_epi16(
                _mm256_castsi256_si128(words),
                _mm256_extracti128_si256::<1>(words),
            );
            // SAFETY: `o` is 16 bytes.
            unsafe { _mm_storeu_si128(o.as_mut_ptr() as *mut __m128i, bytes) };
        }
        (scale, bias)
    }

    /// Two sub-spaces per 256-bit step: lane 0 holds sub-space `s`'s codes and table, lane 1
    /// sub-space `s + 1`'s. Byte lookups are widened into 16-bit sums as even and odd rows
    /// (`x & 0xFF`, `x >> 8` on 16-bit lanes); the two lanes are added at the block's end.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scan_avx2(blocks: &[u8], mp: usize, tables: &[u8], out: &mut [u16]) {
        let block_bytes = mp * TABLE;
        let mask = _mm256_set1_epi8(0x0F);
        let low = _mm256_set1_epi16(0x00FF);
        for (block, sums) in blocks
            .chunks_exact(block_bytes)
            .zip(out.chunks_exact_mut(BLOCK_ROWS))
        {
            let (mut le, mut lo, mut he, mut ho) = (
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
            );
            for (codes, table) in block.chunks_exact(32).zip(tables.chunks_exact(32)) {
                // SAFETY: both chunks are 32 bytes.
                let (c, t) = unsafe {
                    (
                        _mm256_loadu_si256(codes.as_ptr() as *const __m256i),
                        _mm256_loadu_si256(table.as_ptr() as *const __m256i),
                    )
                };
                let rl = _mm256_shuffle_epi8(t, _mm256_and_si256(c, mask));
                let rh = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16::<4>(c), mask));
                le = _mm256_add_epi16(le, _mm256_and_si256(rl, low));
                lo = _mm256_add_epi16(lo, _mm256_srli_epi16::<8>(rl));
                he = _mm256_add_epi16(he, _mm256_and_si256(rh, low));
                ho = _mm256_add_epi16(ho, _mm256_srli_epi16::<8>(rh));
            }
            store_block(fold256(le), fold256(lo), fold256(he), fold256(ho), sums);
        }
    }

    /// [`scan_avx2`] with four sub-spaces per 512-bit step (`vpshufb` on 512 bits is
    /// AVX-512BW); the four lanes are added at the block's end.
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    pub(super) unsafe fn scan_avx512(blocks: &[u8], mp: usize, tables: &[u8], out: &mut [u16]) {
        let block_bytes = mp * TABLE;
        let mask = _mm512_set1_epi8(0x0F);
        let low = _mm512_set1_epi16(0x00FF);
        for (block, sums) in blocks
            .chunks_exact(block_bytes)
            .zip(out.chunks_exact_mut(BLOCK_ROWS))
        {
            let (mut le, mut lo, mut he, mut ho) = (
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
            );
            for (codes, table) in block.chunks_exact(64).zip(tables.chunks_exact(64)) {
                // SAFETY: both chunks are 64 bytes.
                let (c, t) = unsafe {
                    (
                        _mm512_loadu_si512(codes.as_ptr() as *const __m512i),
                        _mm512_loadu_si512(table.as_ptr() as *const __m512i),
                    )
                };
                let rl = _mm512_shuffle_epi8(t, _mm512_and_si512(c, mask));
                let rh = _mm512_shuffle_epi8(t, _mm512_and_si512(_mm512_srli_epi16::<4>(c), mask));
                le = _mm512_add_epi16(le, _mm512_and_si512(rl, low));
                lo = _mm512_add_epi16(lo, _mm512_srli_epi16::<8>(rl));
                he = _mm512_add_epi16(he, _mm512_and_si512(rh, low));
                ho = _mm512_add_epi16(ho, _mm512_srli_epi16::<8>(rh));
            }
            store_block(fold512(le), fold512(lo), fold512(he), fold512(ho), sums);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn every_path_sums_each_rows_table_entries_exactly() {
        assert!(
            pack_blocks(&[1, 2, 3], 0).is_empty(),
            "no sub-spaces, no blocks"
        );
        // Odd sub-space counts (padded), a partial last block, the overflow limit, and code
        // bytes with their high bits set (ignored).
        for (m, rows) in [
            (1, 1),
            (3, 31),
            (8, 32),
            (16, 33),
            (32, 100),
            (48, 64),
            (256, 70),
        ] {
            let codes = codes(rows * m, m as u64);
            let table_bytes: Vec<u8> = codes
                .iter()
                .rev()
                .cycle()
                .take(m * TABLE)
                .copied()
                .collect();
            let mut tables = vec![0u8; padded_subspaces(m) * TABLE];
            tables[..m * TABLE].copy_from_slice(&table_bytes);
            if m == MAX_SUBSPACES {
                tables.fill(255); // the largest sums there are
            }
            let blocks = pack_blocks(&codes, m);
            assert_eq!(Some(blocks.len()), packed_len(rows, m));
            let want: Vec<u16> = codes
                .chunks(m)
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .map(|(s, c)| tables[s * TABLE + (c & 0x0F) as usize] as u32)
                        .sum::<u32>() as u16
                })
                .collect();
            for path in KernelPath::supported() {
                let mut out = vec![7u16; rows.div_ceil(BLOCK_ROWS) * BLOCK_ROWS];
                scan_blocks_on(path, &blocks, m, &tables, &mut out);
                assert_eq!(&out[..rows], &want[..], "{path:?} m={m} rows={rows}");
            }
        }
    }

    #[test]
    fn quantized_tables_are_the_same_on_every_path_and_within_half_a_step_per_subspace() {
        let m = 12;
        let lut: Vec<f32> = codes(m * TABLE, 3)
            .iter()
            .map(|b| *b as f32 * 0.37 - 20.0)
            .collect();
        let mut tables = vec![0u8; padded_subspaces(m) * TABLE];
        let (scale, bias) = quantize_tables_on(KernelPath::Portable, &lut, m, &mut tables);
        assert!(
            tables[m * TABLE..].iter().all(|b| *b == 0),
            "padding stays zero"
        );
        for path in KernelPath::supported() {
            let mut again = vec![9u8; tables.len()];
            let got = quantize_tables_on(path, &lut, m, &mut again);
            assert_eq!((got, &again), ((scale, bias), &tables), "{path:?}");
        }
        let rows = 40;
        let codes = codes(rows * m, 4);
        let mut sums = vec![0u16; 2 * BLOCK_ROWS];
        scan_blocks(&pack_blocks(&codes, m), m, &tables, &mut sums);
        let mut got = vec![0.0f32; rows];
        dequantize(&sums, scale, bias, 1.5, &mut got);
        for (row, g) in codes.chunks(m).zip(&got) {
            let exact: f32 = 1.5
                + row
                    .iter()
                    .enumerate()
                    .map(|(s, c)| lut[s * TABLE + (c & 0x0F) as usize])
                    .sum::<f32>();
            assert!(
                (g - exact).abs() <= m as f32 * scale / 2.0 + 1e-3,
                "{g} vs {exact}"
            );
        }
        // Flat or non-finite tables still quantize to something scannable.
        let (scale, _) = quantize_tables(&[2.0; TABLE], 1, &mut tables[..SUBSPACE_GROUP * TABLE]);
        assert_eq!(scale, 1.0);
    }
}
