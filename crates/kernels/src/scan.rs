//! Approximate-distance scans over the codes of one index partition.
//!
//! Each scan walks a partition's code block sequentially (row-major codes, as stored in the
//! index file) and writes one distance per row; no allocation, no per-row branching beyond
//! the loops themselves.

/// Product-quantization asymmetric distance: `out[i] = bias + Σ_s lut[s·ksub + codes[i·m + s]]`.
/// `lut` holds, for every sub-space `s` and each of its `ksub` codewords `j`, the query's
/// distance contribution (a table of `m × ksub`: 16 entries per sub-space for 4-bit codes).
pub fn pq_adc(codes: &[u8], m: usize, ksub: usize, lut: &[f32], bias: f32, out: &mut [f32]) {
    debug_assert!(lut.len() >= m * ksub);
    // The table stride as a constant for the two code sizes that exist: this is the hot loop
    // of every PQ search, and a constant stride is a shift instead of a multiply per lookup.
    match ksub {
        256 => adc::<256>(codes, m, lut, bias, out),
        16 => adc::<16>(codes, m, lut, bias, out),
        _ => adc_any(codes, m, ksub, lut, bias, out),
    }
}

fn adc<const KSUB: usize>(codes: &[u8], m: usize, lut: &[f32], bias: f32, out: &mut [f32]) {
    adc_any(codes, m, KSUB, lut, bias, out)
}

#[inline(always)]
fn adc_any(codes: &[u8], m: usize, ksub: usize, lut: &[f32], bias: f32, out: &mut [f32]) {
    for (row, o) in codes.chunks_exact(m).zip(out.iter_mut()) {
        // Four partial sums break the add dependency chain.
        let mut acc = [0.0f32; 4];
        let mut chunks = row.chunks_exact(4);
        let mut s = 0;
        for c in &mut chunks {
            acc[0] += lut[s * ksub + c[0] as usize];
            acc[1] += lut[(s + 1) * ksub + c[1] as usize];
            acc[2] += lut[(s + 2) * ksub + c[2] as usize];
            acc[3] += lut[(s + 3) * ksub + c[3] as usize];
            s += 4;
        }
        for (i, c) in chunks.remainder().iter().enumerate() {
            acc[i] += lut[(s + i) * ksub + *c as usize];
        }
        *o = bias + (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}

/// For every codeword `j` of every sub-space `s` (codebooks `m × ksub × ds`), writes
/// `out[s·ksub + j] = scale · (q_s · codeword_{s,j}) + add[s·ksub + j]` (`add` may be empty,
/// meaning zeros). The per-query half of an IVF-PQ distance table (`m × ksub`).
pub fn pq_dot_table(
    query: &[f32],
    codebooks: &[f32],
    m: usize,
    ksub: usize,
    scale: f32,
    add: &[f32],
    out: &mut [f32],
) {
    let ds = query.len() / m;
    for s in 0..m {
        let q = &query[s * ds..(s + 1) * ds];
        for j in 0..ksub {
            let w = &codebooks[(s * ksub + j) * ds..(s * ksub + j + 1) * ds];
            let extra = if add.is_empty() {
                0.0
            } else {
                add[s * ksub + j]
            };
            out[s * ksub + j] = scale * crate::distance::dot(q, w) + extra;
        }
    }
}

/// Squared norms of every codeword, laid out like a distance table (`m × ksub`).
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

/// `out = a + b`, element-wise.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// Scalar-quantization squared L2: `out[i] = bias + Σ_d w[d] · (a[d] − codes[i·dim + d])²`.
pub fn sq_l2(codes: &[u8], a: &[f32], w: &[f32], bias: f32, out: &mut [f32]) {
    let dim = a.len();
    for (row, o) in codes.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = 0.0f32;
        for ((c, a), w) in row.iter().zip(a).zip(w) {
            let d = a - *c as f32;
            acc += w * d * d;
        }
        *o = bias + acc;
    }
}

/// Scalar-quantization linear form (inner products): `out[i] = bias + Σ_d w[d] · codes[i·dim + d]`.
pub fn sq_linear(codes: &[u8], w: &[f32], bias: f32, out: &mut [f32]) {
    let dim = w.len();
    for (row, o) in codes.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = 0.0f32;
        for (c, w) in row.iter().zip(w) {
            acc += w * *c as f32;
        }
        *o = bias + acc;
    }
}

/// Negated inner products of every row (row-major, `query.len()` columns) with `query`.
pub fn neg_dot_batch(rows: &[f32], query: &[f32], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(query.len()).zip(out.iter_mut()) {
        *o = -crate::distance::dot(row, query);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pq_sums_the_looked_up_entries() {
        let m = 5;
        let lut: Vec<f32> = (0..m * 256).map(|i| i as f32).collect();
        let codes = [1u8, 2, 3, 4, 5, 0, 0, 0, 0, 255];
        let mut out = [0.0; 2];
        pq_adc(&codes, m, 256, &lut, 0.5, &mut out);
        let want0: f32 = (0..m).map(|s| (s * 256 + codes[s] as usize) as f32).sum();
        let want1: f32 = (0..m)
            .map(|s| (s * 256 + codes[m + s] as usize) as f32)
            .sum();
        assert_eq!(out, [want0 + 0.5, want1 + 0.5]);
    }

    #[test]
    fn four_bit_tables_are_sixteen_entries_per_sub_space() {
        let (m, ksub) = (3, 16);
        let lut: Vec<f32> = (0..m * ksub).map(|i| i as f32).collect();
        let codes = [15u8, 0, 7];
        let mut out = [0.0; 1];
        pq_adc(&codes, m, ksub, &lut, 0.0, &mut out);
        assert_eq!(out[0], (15 + 16 + 32 + 7) as f32);
    }

    #[test]
    fn sq_forms_match_their_definitions() {
        let codes = [0u8, 10, 255, 3];
        let (a, w) = ([1.0, 2.0], [0.5, 2.0]);
        let mut out = [0.0; 2];
        sq_l2(&codes, &a, &w, 1.0, &mut out);
        assert_eq!(out[0], 1.0 + 0.5 * 1.0 + 2.0 * 64.0);
        sq_linear(&codes, &w, 0.0, &mut out);
        assert_eq!(out[1], 0.5 * 255.0 + 2.0 * 3.0);
    }
}
