//! Approximate-distance scans over the codes of one index partition, and the per-query
//! tables they read.
//!
//! Each scan walks a partition's code block sequentially (row-major codes, as stored in the
//! index file) and writes one distance per row; no allocation, no per-row branching beyond
//! the loops themselves. Every kernel is compiled per instruction set (see [`crate::path`]).

use crate::distance::dot_body;
use crate::path::{KernelPath, kernel};
use std::sync::OnceLock;
use std::time::Instant;

#[inline(always)]
fn pq_adc_body(codes: &[u8], m: usize, ksub: usize, lut: &[f32], bias: f32, out: &mut [f32]) {
    // One table per sub-space as a fixed-size array: a code byte indexes a 256-entry table
    // without a bounds check, and the common sub-vector counts get fully unrolled rows. This
    // is the hot loop of every PQ search.
    match ksub {
        256 => {
            let tables = &lut.as_chunks::<256>().0[..m];
            match m {
                8 => adc::<256, 8, false>(codes, tables, bias, out),
                16 => adc::<256, 16, false>(codes, tables, bias, out),
                32 => adc::<256, 32, false>(codes, tables, bias, out),
                48 => adc::<256, 48, false>(codes, tables, bias, out),
                64 => adc::<256, 64, false>(codes, tables, bias, out),
                _ => adc_any(codes, tables, bias, out),
            }
        }
        // 4-bit codes: searches scan them with `fast_scan`'s byte tables, up to its
        // sub-space limit; float tables serve the sub-vector counts beyond it.
        16 => adc_any(codes, &lut.as_chunks::<16>().0[..m], bias, out),
        _ => {
            let tables: Vec<&[f32]> = lut.chunks_exact(ksub.max(1)).take(m).collect();
            for (row, o) in codes.chunks_exact(m).zip(out.iter_mut()) {
                *o = bias + row_sum(&tables, row, |t, c| t[c as usize]);
            }
        }
    }
}

/// Looks up one code: `K` is a power of two, so masking keeps a damaged code byte of a 4-bit
/// index inside its table instead of panicking.
#[inline(always)]
fn entry<const K: usize>(table: &[f32; K], code: u8) -> f32 {
    table[code as usize & (K - 1)]
}

/// Every row of `M` sub-spaces: by [`row_sum`], or with `WORDS` by [`row_sum_by_words`]
/// (`M` a multiple of eight) — the same sums either way.
#[inline(always)]
fn adc<const K: usize, const M: usize, const WORDS: bool>(
    codes: &[u8],
    tables: &[[f32; K]],
    bias: f32,
    out: &mut [f32],
) {
    let Ok(tables) = <&[[f32; K]; M]>::try_from(tables) else {
        return adc_any(codes, tables, bias, out);
    };
    for (row, o) in codes.as_chunks::<M>().0.iter().zip(out.iter_mut()) {
        *o = bias
            + if WORDS {
                row_sum_by_words(tables, row)
            } else {
                row_sum(tables, row, entry)
            };
    }
}

#[inline(always)]
fn adc_any<const K: usize>(codes: &[u8], tables: &[[f32; K]], bias: f32, out: &mut [f32]) {
    let m = tables.len();
    if m == 0 {
        return out.fill(bias);
    }
    for (row, o) in codes.chunks_exact(m).zip(out.iter_mut()) {
        *o = bias + row_sum(tables, row, entry);
    }
}

/// One row's table entries summed: sub-space `s` into partial sum `s % 4` (four sums break
/// the add dependency chain), then `(a0 + a1) + (a2 + a3)` — the same order for every `m`.
/// The sub-spaces go four at a time so that each partial sum is a fixed register: indexed
/// `acc[s % 4]` in a loop the compiler does not unroll (48 sub-vectors), the sums lived on
/// the stack and every lookup waited for the previous store (2.7 cycles a lookup, against
/// under one when unrolled).
#[inline(always)]
fn row_sum<T>(tables: &[T], row: &[u8], entry: impl Fn(&T, u8) -> f32) -> f32 {
    let [mut a0, mut a1, mut a2, mut a3] = [0.0f32; 4];
    let (quads, rest) = row.as_chunks::<4>();
    let (table_quads, table_rest) = tables.split_at(quads.len() * 4);
    for (c, t) in quads.iter().zip(table_quads.chunks_exact(4)) {
        a0 += entry(&t[0], c[0]);
        a1 += entry(&t[1], c[1]);
        a2 += entry(&t[2], c[2]);
        a3 += entry(&t[3], c[3]);
    }
    let mut acc = [a0, a1, a2, a3];
    for (l, (t, c)) in table_rest.iter().zip(rest).enumerate() {
        acc[l] += entry(t, *c);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// [`row_sum`] of a row of a multiple of eight sub-spaces, in the same order, reading each
/// eight codes as one `u64` taken apart with shifts. As a scalar loop that is slower than a
/// byte load per code; its use is that LLVM vectorises a row loop over it across rows on
/// AVX-512 (see [`pq_adc_across_rows`]), which it does not do for [`row_sum`]'s.
#[inline(always)]
fn row_sum_by_words<const K: usize>(tables: &[[f32; K]], row: &[u8]) -> f32 {
    let mut a = [0.0f32; 4];
    for (c, t) in row.as_chunks::<8>().0.iter().zip(tables.chunks_exact(8)) {
        let word = u64::from_le_bytes(*c);
        for i in 0..8 {
            a[i % 4] += entry(&t[i], (word >> (8 * i)) as u8);
        }
    }
    (a[0] + a[1]) + (a[2] + a[3])
}

/// Product-quantization asymmetric distance:
/// `out[i] = bias + Σ_s lut[s·ksub + codes[i·m + s]]`. `lut` holds, for every sub-space `s`
/// and each of its `ksub` codewords `j`, the query's distance contribution (a table of
/// `m × ksub`: 16 entries per sub-space for 4-bit codes).
pub fn pq_adc(codes: &[u8], m: usize, ksub: usize, lut: &[f32], bias: f32, out: &mut [f32]) {
    pq_adc_on(KernelPath::best(), codes, m, ksub, lut, bias, out)
}

/// [`pq_adc`] on one [`KernelPath`]: [`pq_adc_by_row_on`], except that on AVX-512 the
/// common 8-bit cases go [`pq_adc_across_rows`] where that is the faster of the two on this
/// CPU ([`across_rows_pays`]). Both give the same bits.
pub fn pq_adc_on(
    path: KernelPath,
    codes: &[u8],
    m: usize,
    ksub: usize,
    lut: &[f32],
    bias: f32,
    out: &mut [f32],
) {
    if path == KernelPath::Avx512
        && ksub == 256
        && across_rows_pays()
        && pq_adc_across_rows(codes, m, ksub, lut, bias, out)
    {
        return;
    }
    pq_adc_by_row_on(path, codes, m, ksub, lut, bias, out)
}

kernel! {
    /// [`pq_adc`] one row after another, each row's table entries summed in scalar
    /// registers (any `m` and `ksub`).
    pub fn pq_adc_by_row / pq_adc_by_row_on(
        codes: &[u8], m: usize, ksub: usize, lut: &[f32], bias: f32, out: &mut [f32]
    ) = pq_adc_body;
}

/// [`pq_adc`] for 8-bit codes with eight rows at a time, a row per lane of AVX-512
/// registers: the codes read as words and moved into lanes with permutes, each table entry
/// fetched with a gather (as LLVM compiles [`row_sum_by_words`]'s plain Rust; Rust 1.95);
/// the sums, and so the bits, are [`pq_adc_by_row`]'s. Returns `false`, writing nothing,
/// where it does not apply: no AVX-512, `ksub` other than 256, or `m` other than 8, 16, 32,
/// 48 or 64.
pub fn pq_adc_across_rows(
    codes: &[u8],
    m: usize,
    ksub: usize,
    lut: &[f32],
    bias: f32,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
        fn avx512(codes: &[u8], tables: &[[f32; 256]], bias: f32, out: &mut [f32]) -> bool {
            match tables.len() {
                8 => adc::<256, 8, true>(codes, tables, bias, out),
                16 => adc::<256, 16, true>(codes, tables, bias, out),
                32 => adc::<256, 32, true>(codes, tables, bias, out),
                48 => adc::<256, 48, true>(codes, tables, bias, out),
                64 => adc::<256, 64, true>(codes, tables, bias, out),
                _ => return false,
            }
            true
        }
        if ksub == 256 && KernelPath::Avx512.available() {
            // SAFETY: `available` checked that the CPU has every feature `avx512` is
            // compiled with; its body is safe Rust.
            return unsafe { avx512(codes, &lut.as_chunks::<256>().0[..m], bias, out) };
        }
    }
    let _ = (codes, m, ksub, lut, bias, out);
    false
}

/// Whether [`pq_adc_across_rows`] beats [`pq_adc_by_row_on`] AVX-512 on this CPU: timed once
/// per process on 2,048 rows of 32 sub-vectors (about a millisecond), the faster of five
/// tries each. Gathers are fast on recent Xeons (48 sub-vectors: 10.0 against 12.1 ns a row
/// on a Xeon of family 6, model 207) and differ across microarchitectures, so this CPU's own
/// figures decide; the results are the same bits either way. `false` without AVX-512.
pub fn across_rows_pays() -> bool {
    static PAYS: OnceLock<bool> = OnceLock::new();
    *PAYS.get_or_init(|| {
        if !KernelPath::Avx512.available() {
            return false;
        }
        const M: usize = 32;
        const ROWS: usize = 2048;
        let lut: Vec<f32> = (0..M * 256).map(|i| (i % 97) as f32).collect();
        let codes: Vec<u8> = (0..(M * ROWS) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut out = vec![0.0; ROWS];
        let mut best = [f64::INFINITY; 2];
        for _ in 0..5 {
            for (fastest, across) in best.iter_mut().zip([false, true]) {
                let t = Instant::now();
                for _ in 0..4 {
                    let codes = std::hint::black_box(&codes[..]);
                    if !across || !pq_adc_across_rows(codes, M, 256, &lut, 0.0, &mut out) {
                        pq_adc_by_row_on(KernelPath::Avx512, codes, M, 256, &lut, 0.0, &mut out);
                    }
                }
                std::hint::black_box(&out);
                *fastest = fastest.min(t.elapsed().as_secs_f64());
            }
        }
        best[1] < best[0]
    })
}

/// The codebooks (`m × ksub × ds`, one codeword after another) laid out for
/// [`pq_dot_table`]: per sub-space, panels of [`TABLE_BLOCK`] codewords (the last panel
/// holds what remains), each panel dimension-major — the `d`-th component of its codewords
/// side by side — so building a block of the table reads one contiguous panel with
/// `TABLE_BLOCK`-wide multiply-adds. (A plain dimension-major layout would stride by `ksub`
/// floats: 4 KiB for 1,024 IVF centroids, which maps every row to the same L1 cache set.)
pub fn pq_codebook_panels(codebooks: &[f32], m: usize, ksub: usize) -> Vec<f32> {
    let ds = codebooks.len() / (m * ksub).max(1);
    let mut out = vec![0.0; m * ds * ksub];
    for s in 0..m {
        let base = s * ds * ksub;
        for j in 0..ksub {
            let (block, l) = (j / TABLE_BLOCK, j % TABLE_BLOCK);
            let width = TABLE_BLOCK.min(ksub - block * TABLE_BLOCK);
            let panel = base + block * TABLE_BLOCK * ds;
            for d in 0..ds {
                out[panel + d * width + l] = codebooks[(s * ksub + j) * ds + d];
            }
        }
    }
    out
}

/// Codewords whose table entries are accumulated together in registers by [`pq_dot_table`]
/// (four 16-lane or eight 8-lane vectors).
const TABLE_BLOCK: usize = 64;

#[inline(always)]
fn pq_dot_table_body(
    query: &[f32],
    panels: &[f32],
    m: usize,
    ksub: usize,
    scale: f32,
    add: &[f32],
    out: &mut [f32],
) {
    let ds = query.len() / m.max(1);
    for s in 0..m {
        let q = &query[s * ds..(s + 1) * ds];
        let base = s * ds * ksub;
        let addend = add.get(s * ksub..(s + 1) * ksub);
        let o = &mut out[s * ksub..(s + 1) * ksub];
        // Whole panels: each block's sums stay in registers across the sub-vector.
        let mut j = 0;
        while j + TABLE_BLOCK <= ksub {
            let panel = &panels[base + j * ds..][..ds * TABLE_BLOCK];
            let mut acc = [0.0f32; TABLE_BLOCK];
            for (qd, w) in q.iter().zip(panel.chunks_exact(TABLE_BLOCK)) {
                for l in 0..TABLE_BLOCK {
                    acc[l] += qd * w[l];
                }
            }
            let a = addend.map(|a| &a[j..j + TABLE_BLOCK]);
            scaled_plus(&acc, scale, a, &mut o[j..j + TABLE_BLOCK]);
            j += TABLE_BLOCK;
        }
        let a = addend.map(|a| &a[j..]);
        narrow_panel(
            |d| q[d],
            &panels[base + j * ds..],
            ds,
            scale,
            a,
            &mut o[j..],
        );
    }
}

/// `out = scale · sums + add` (no `add`: zeros): the last step of every block of a table.
#[inline(always)]
fn scaled_plus(sums: &[f32], scale: f32, add: Option<&[f32]>, out: &mut [f32]) {
    match add {
        Some(a) => {
            for ((o, s), a) in out.iter_mut().zip(sums).zip(a) {
                *o = scale * s + a;
            }
        }
        None => {
            for (o, s) in out.iter_mut().zip(sums) {
                *o = scale * s;
            }
        }
    }
}

/// The entries of a sub-space's last panel when it is narrower than [`TABLE_BLOCK`] (all of
/// a 4-bit table): `out.len()` codewords, one at a time, `q(d)` the query's `d`-th component
/// of the sub-space.
#[inline(always)]
fn narrow_panel(
    q: impl Fn(usize) -> f32,
    panel: &[f32],
    ds: usize,
    scale: f32,
    add: Option<&[f32]>,
    out: &mut [f32],
) {
    let width = out.len();
    for l in 0..width {
        let mut acc = 0.0f32;
        for d in 0..ds {
            acc += q(d) * panel[d * width + l];
        }
        out[l] = scale * acc + add.map_or(0.0, |a| a[l]);
    }
}

kernel! {
    /// For every codeword `j` of every sub-space `s`, writes
    /// `out[s·ksub + j] = scale · (q_s · codeword_{s,j}) + add[s·ksub + j]` (`add` may be
    /// empty, meaning zeros), with the codebooks as [`pq_codebook_panels`] lays them out.
    /// The per-query half of an IVF-PQ distance table (`m × ksub`), and the ranking of a
    /// query's IVF partitions (one codebook of `partitions` codewords).
    pub fn pq_dot_table / pq_dot_table_on(
        query: &[f32],
        panels: &[f32],
        m: usize,
        ksub: usize,
        scale: f32,
        add: &[f32],
        out: &mut [f32],
    ) = pq_dot_table_body;
}

/// Queries whose tables [`pq_dot_tables`] builds together: each panel line loaded from
/// memory feeds `TABLE_QUERIES` multiply-adds per codeword instead of one.
pub const TABLE_QUERIES: usize = 4;

#[inline(always)]
fn pq_dot_tables_body(
    queries: &[f32],
    panels: &[f32],
    m: usize,
    ksub: usize,
    scale: f32,
    add: &[f32],
    out: &mut [f32],
) {
    const Q: usize = TABLE_QUERIES;
    // Codewords of a panel whose sums stay in registers for every query at once: 4 × 32 sums
    // fill eight 16-lane registers without spilling.
    const W: usize = 32;
    let dim = queries.len() / Q;
    let ds = dim / m.max(1);
    let table = m * ksub;
    // The queries' components side by side, so the inner loop reads them as one array.
    let lanes: Vec<[f32; Q]> = (0..dim)
        .map(|d| std::array::from_fn(|b| queries[b * dim + d]))
        .collect();
    for s in 0..m {
        let base = s * ds * ksub;
        let q = &lanes[s * ds..(s + 1) * ds];
        let mut j = 0;
        while j + TABLE_BLOCK <= ksub {
            let panel = &panels[base + j * ds..][..ds * TABLE_BLOCK];
            for part in (0..TABLE_BLOCK).step_by(W) {
                let mut acc = [[0.0f32; W]; Q];
                for (qd, line) in q.iter().zip(panel.chunks_exact(TABLE_BLOCK)) {
                    let w: &[f32; W] = line[part..part + W].try_into().unwrap();
                    for b in 0..Q {
                        for l in 0..W {
                            acc[b][l] += qd[b] * w[l];
                        }
                    }
                }
                let first = s * ksub + j + part;
                // Written out rather than through `scaled_plus`: passing the sums by reference
                // kept them in memory for the whole loop above (8× slower, measured).
                for (b, acc) in acc.iter().enumerate() {
                    let o = &mut out[b * table + first..][..W];
                    match add.get(first..first + W) {
                        Some(a) => {
                            for l in 0..W {
                                o[l] = scale * acc[l] + a[l];
                            }
                        }
                        None => {
                            for l in 0..W {
                                o[l] = scale * acc[l];
                            }
                        }
                    }
                }
            }
            j += TABLE_BLOCK;
        }
        let (first, last) = (s * ksub + j, (s + 1) * ksub);
        for b in 0..Q {
            let o = &mut out[b * table + first..b * table + last];
            narrow_panel(
                |d| q[d][b],
                &panels[base + j * ds..],
                ds,
                scale,
                add.get(first..last),
                o,
            );
        }
    }
}

kernel! {
    /// [`pq_dot_tables`] for one group of [`TABLE_QUERIES`] queries. (Only its `_on` form
    /// is called.)
    #[allow(dead_code)]
    fn pq_dot_tables_group / pq_dot_tables_group_on(
        queries: &[f32],
        panels: &[f32],
        m: usize,
        ksub: usize,
        scale: f32,
        add: &[f32],
        out: &mut [f32],
    ) = pq_dot_tables_body;
}

/// [`pq_dot_table`] for many queries (`queries` row-major, of the codebooks' total
/// dimension; `out` one `m × ksub` table per query, one after another), with the same
/// results bit for bit: each sum runs in the same order. A batch of searches prepares its
/// queries this way: ranking IVF partitions and building PQ tables are matrix-vector
/// products that read the whole codebook per query, and here each codebook line read serves
/// [`TABLE_QUERIES`] queries.
pub fn pq_dot_tables(
    queries: &[f32],
    panels: &[f32],
    m: usize,
    ksub: usize,
    scale: f32,
    add: &[f32],
    out: &mut [f32],
) {
    pq_dot_tables_on(
        KernelPath::best(),
        queries,
        panels,
        m,
        ksub,
        scale,
        add,
        out,
    )
}

/// [`pq_dot_tables`] on one [`KernelPath`].
#[allow(clippy::too_many_arguments)]
pub fn pq_dot_tables_on(
    path: KernelPath,
    queries: &[f32],
    panels: &[f32],
    m: usize,
    ksub: usize,
    scale: f32,
    add: &[f32],
    out: &mut [f32],
) {
    let (dim, table) = ((panels.len() / ksub.max(1)).max(1), m * ksub);
    // With 8-lane registers, holding four queries' sums cost more in broadcasts and register
    // traffic than it saved in loads (measured on Zen 4's AVX2 path): there, and for the
    // queries that do not fill a group, they go one at a time.
    let mut grouped = 0;
    if path == KernelPath::Avx512 && path.available() {
        let groups = queries.chunks_exact(dim * TABLE_QUERIES);
        for (q, o) in groups.zip(out.chunks_exact_mut(table * TABLE_QUERIES)) {
            pq_dot_tables_group_on(path, q, panels, m, ksub, scale, add, o);
            grouped += TABLE_QUERIES;
        }
    }
    let rest = queries[grouped * dim..].chunks_exact(dim);
    for (q, o) in rest.zip(out[grouped * table..].chunks_exact_mut(table)) {
        pq_dot_table_on(path, q, panels, m, ksub, scale, add, o);
    }
}

/// Squared norms of every codeword (codebooks `m × ksub × ds`), laid out like a distance table
/// (`m × ksub`).
pub fn pq_codeword_norms(codebooks: &[f32], m: usize, ksub: usize, ds: usize) -> Vec<f32> {
    let mut out = vec![0.0; m * ksub];
    for s in 0..m {
        for j in 0..ksub {
            let w = &codebooks[(s * ksub + j) * ds..(s * ksub + j + 1) * ds];
            out[s * ksub + j] = crate::distance::norm_squared(w);
        }
    }
    out
}

#[inline(always)]
fn add_body(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

kernel! {
    /// `out = a + b`, element-wise.
    pub fn add / add_on(a: &[f32], b: &[f32], out: &mut [f32]) = add_body;
}

/// Independent partial sums per row of the scalar-quantization scans (see
/// [`crate::distance`] for why).
const SQ_LANES: usize = 16;

#[inline(always)]
fn sq_l2_body(codes: &[u8], a: &[f32], w: &[f32], bias: f32, out: &mut [f32]) {
    let dim = a.len();
    let w = &w[..dim];
    for (row, o) in codes.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = [0.0f32; SQ_LANES];
        let (rows, rest) = (row.chunks_exact(SQ_LANES), row.len() / SQ_LANES * SQ_LANES);
        for (i, c) in rows.enumerate() {
            let (a, w) = (
                &a[i * SQ_LANES..][..SQ_LANES],
                &w[i * SQ_LANES..][..SQ_LANES],
            );
            for l in 0..SQ_LANES {
                let d = a[l] - c[l] as f32;
                acc[l] += w[l] * d * d;
            }
        }
        let mut sum = acc.iter().sum::<f32>();
        for d in rest..dim {
            let x = a[d] - row[d] as f32;
            sum += w[d] * x * x;
        }
        *o = bias + sum;
    }
}

kernel! {
    /// Scalar-quantization squared L2: `out[i] = bias + Σ_d w[d] · (a[d] − codes[i·dim + d])²`.
    pub fn sq_l2 / sq_l2_on(codes: &[u8], a: &[f32], w: &[f32], bias: f32, out: &mut [f32])
        = sq_l2_body;
}

#[inline(always)]
fn sq_linear_body(codes: &[u8], w: &[f32], bias: f32, out: &mut [f32]) {
    let dim = w.len();
    for (row, o) in codes.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = [0.0f32; SQ_LANES];
        let (rows, rest) = (row.chunks_exact(SQ_LANES), row.len() / SQ_LANES * SQ_LANES);
        for (i, c) in rows.enumerate() {
            let w = &w[i * SQ_LANES..][..SQ_LANES];
            for l in 0..SQ_LANES {
                acc[l] += w[l] * c[l] as f32;
            }
        }
        let mut sum = acc.iter().sum::<f32>();
        for d in rest..dim {
            sum += w[d] * row[d] as f32;
        }
        *o = bias + sum;
    }
}

kernel! {
    /// Scalar-quantization linear form (inner products):
    /// `out[i] = bias + Σ_d w[d] · codes[i·dim + d]`.
    pub fn sq_linear / sq_linear_on(codes: &[u8], w: &[f32], bias: f32, out: &mut [f32])
        = sq_linear_body;
}

#[inline(always)]
fn neg_dot_batch_body(rows: &[f32], query: &[f32], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(query.len()).zip(out.iter_mut()) {
        *o = -dot_body(row, query);
    }
}

kernel! {
    /// Negated inner products of every row (row-major, `query.len()` columns) with `query`.
    pub fn neg_dot_batch / neg_dot_batch_on(rows: &[f32], query: &[f32], out: &mut [f32])
        = neg_dot_batch_body;
}

/// Sets `buf` to `n` values for a kernel to overwrite. Growing allocates zeroed memory, and
/// shrinking keeps the allocation: both cost nothing per element, unlike `Vec::resize`,
/// whose fill loop would be compiled at the caller's optimisation level.
pub fn resize_scratch(buf: &mut Vec<f32>, n: usize) {
    if buf.capacity() < n {
        *buf = vec![0.0; n];
    } else if buf.len() < n {
        buf.resize(n, 0.0);
    } else {
        buf.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::tests::vecs as values;
    use crate::path::KernelPath;

    fn codes(n: usize, seed: u32, ksub: usize) -> Vec<u8> {
        values(n, seed)
            .iter()
            .map(|v| (((v + 1.0) * 1000.0) as usize % ksub) as u8)
            .collect()
    }

    #[test]
    fn pq_sums_the_looked_up_entries_on_every_path() {
        for path in KernelPath::supported() {
            for (m, ksub) in [
                (5, 256),
                (8, 256),
                (16, 256),
                (32, 256),
                (48, 256),
                (64, 256),
                (16, 16),
                (3, 16),
                (4, 8),
                (7, 8),
            ] {
                let lut = values(m * ksub, 1);
                let codes = codes(37 * m, 2, ksub);
                let mut out = vec![0.0; 37];
                pq_adc_on(path, &codes, m, ksub, &lut, 0.5, &mut out);
                for (row, got) in codes.chunks(m).zip(&out) {
                    let want: f32 = 0.5
                        + row
                            .iter()
                            .enumerate()
                            .map(|(s, c)| lut[s * ksub + *c as usize])
                            .sum::<f32>();
                    assert!((got - want).abs() < 1e-5, "{path:?} m={m} ksub={ksub}");
                }
                let mut portable = vec![0.0; 37];
                pq_adc_on(
                    KernelPath::Portable,
                    &codes,
                    m,
                    ksub,
                    &lut,
                    0.5,
                    &mut portable,
                );
                assert_eq!(out, portable, "{path:?} m={m} ksub={ksub}");
            }
        }
    }

    #[test]
    fn eight_rows_at_a_time_give_the_bits_of_one_row_at_a_time() {
        for m in [8, 16, 32, 48, 64] {
            let lut = values(m * 256, 3);
            // 37 rows: four blocks of eight and a remainder of five.
            let codes = codes(37 * m, 4, 256);
            let (mut across, mut by_row) = (vec![0.0; 37], vec![0.0; 37]);
            pq_adc_by_row_on(KernelPath::Portable, &codes, m, 256, &lut, 0.5, &mut by_row);
            if pq_adc_across_rows(&codes, m, 256, &lut, 0.5, &mut across) {
                assert_eq!(across, by_row, "m={m}");
            } else {
                assert!(!KernelPath::Avx512.available(), "m={m}");
                assert_eq!(across, vec![0.0; 37], "wrote although it did not apply");
            }
        }
        // Outside its cases it declines and leaves the output alone.
        let mut out = vec![0.0; 2];
        assert!(!pq_adc_across_rows(
            &[1; 10],
            5,
            256,
            &values(5 * 256, 1),
            0.5,
            &mut out
        ));
        assert!(!pq_adc_across_rows(
            &[1; 32],
            16,
            16,
            &values(16 * 16, 1),
            0.5,
            &mut out
        ));
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn a_damaged_four_bit_code_stays_inside_its_table() {
        let (m, ksub) = (16, 16);
        let lut: Vec<f32> = (0..m * ksub).map(|i| i as f32).collect();
        let mut codes = vec![0u8; m];
        codes[15] = 0xff;
        let mut out = [0.0];
        pq_adc(&codes, m, ksub, &lut, 0.0, &mut out);
        let want: usize = (0..15).map(|s| s * ksub).sum::<usize>() + 15 * ksub + 15;
        assert_eq!(out[0], want as f32);
    }

    #[test]
    fn pq_tables_are_scaled_dot_products_plus_the_addend_on_every_path() {
        for path in KernelPath::supported() {
            for (m, ksub, ds) in [
                (4, 256, 8),
                (16, 16, 2),
                (3, 7, 5),
                (1, 300, 33),
                (2, 128, 3),
            ] {
                let codebooks = values(m * ksub * ds, 3);
                let query = values(m * ds, 4);
                let add = values(m * ksub, 5);
                let panels = pq_codebook_panels(&codebooks, m, ksub);
                for addend in [&add[..], &[]] {
                    let mut out = vec![0.0; m * ksub];
                    pq_dot_table_on(path, &query, &panels, m, ksub, -2.0, addend, &mut out);
                    for s in 0..m {
                        for j in 0..ksub {
                            let w = &codebooks[(s * ksub + j) * ds..][..ds];
                            let q = &query[s * ds..][..ds];
                            let d: f32 = q.iter().zip(w).map(|(a, b)| a * b).sum();
                            let want = -2.0 * d + addend.get(s * ksub + j).copied().unwrap_or(0.0);
                            let got = out[s * ksub + j];
                            assert!((got - want).abs() < 1e-4, "{path:?} s={s} j={j}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tables_built_together_equal_one_query_tables_bit_for_bit_on_every_path() {
        for path in KernelPath::supported() {
            for (m, ksub, ds) in [(16, 256, 8), (1, 1024, 128), (16, 16, 2), (3, 70, 5)] {
                let codebooks = values(m * ksub * ds, 6);
                // A whole group and two queries more.
                let queries = values((TABLE_QUERIES + 2) * m * ds, 7);
                let add = values(m * ksub, 8);
                let panels = pq_codebook_panels(&codebooks, m, ksub);
                for addend in [&add[..], &[]] {
                    let mut together = vec![0.0; (TABLE_QUERIES + 2) * m * ksub];
                    pq_dot_tables_on(
                        path,
                        &queries,
                        &panels,
                        m,
                        ksub,
                        -2.0,
                        addend,
                        &mut together,
                    );
                    for (q, got) in queries.chunks(m * ds).zip(together.chunks(m * ksub)) {
                        let mut alone = vec![0.0; m * ksub];
                        pq_dot_table_on(path, q, &panels, m, ksub, -2.0, addend, &mut alone);
                        assert_eq!(got, &alone[..], "{path:?} m={m} ksub={ksub} ds={ds}");
                    }
                }
            }
        }
    }

    #[test]
    fn sq_forms_match_their_definitions_on_every_path() {
        for path in KernelPath::supported() {
            for dim in [1, 2, 16, 33, 128] {
                let codes = codes(9 * dim, 6, 256);
                let (a, w) = (values(dim, 7), values(dim, 8));
                let (mut l2, mut lin) = (vec![0.0; 9], vec![0.0; 9]);
                sq_l2_on(path, &codes, &a, &w, 1.0, &mut l2);
                sq_linear_on(path, &codes, &w, 0.5, &mut lin);
                for (i, row) in codes.chunks(dim).enumerate() {
                    let want_l2: f32 = 1.0
                        + (0..dim)
                            .map(|d| w[d] * (a[d] - row[d] as f32).powi(2))
                            .sum::<f32>();
                    let want_lin: f32 = 0.5 + (0..dim).map(|d| w[d] * row[d] as f32).sum::<f32>();
                    assert!(
                        (l2[i] - want_l2).abs() < 1e-3 * want_l2.abs().max(1.0),
                        "{path:?}"
                    );
                    assert!(
                        (lin[i] - want_lin).abs() < 1e-3 * want_lin.abs().max(1.0),
                        "{path:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn batches_and_sums_agree_on_every_path() {
        for path in KernelPath::supported() {
            let (a, b) = (values(100, 9), values(100, 10));
            let mut out = vec![0.0; 100];
            add_on(path, &a, &b, &mut out);
            assert!(
                out.iter()
                    .zip(a.iter().zip(&b))
                    .all(|(o, (x, y))| *o == x + y)
            );
            let rows = values(4 * 25, 11);
            let mut neg = vec![0.0; 4];
            neg_dot_batch_on(path, &rows, &a[..25], &mut neg);
            for (r, n) in rows.chunks(25).zip(&neg) {
                let d: f32 = r.iter().zip(&a[..25]).map(|(x, y)| x * y).sum();
                assert!((n + d).abs() < 1e-4, "{path:?}");
            }
        }
    }
}
