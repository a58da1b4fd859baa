//! Asking the memory system for rows before a kernel reads them.
//!
//! Refining a search reads the full vectors of its best candidates, rows scattered over a
//! table far larger than the caches: each is a DRAM miss, and scoring them one after another
//! waits for each miss in turn (on 1M × 128-d rows, most of a one-probe query's time). The
//! hardware prefetcher cannot guess scattered addresses, so the caller names them: it
//! requests a few rows ahead of the one it scores, and the misses overlap.

/// Bytes of a cache line on every x86-64 CPU vecfusion runs on.
const LINE_FLOATS: usize = 64 / std::mem::size_of::<f32>();

/// Requests every cache line of `row` into the caches. A hint: it never faults and changes
/// no result, only when the data arrives.
#[inline]
pub fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // One request per line the row touches: its first float of every line-sized step,
        // and its last float (a row need not start on a line boundary).
        let lines = row.chunks(LINE_FLOATS).map(|line| line.as_ptr());
        for p in lines.chain(row.last().map(|last| last as *const f32)) {
            // SAFETY: SSE, which has the prefetch instruction, is part of the x86-64 baseline,
            // and a prefetch never faults whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn prefetching_any_row_leaves_it_unchanged() {
        let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        for (start, len) in [(0, 0), (0, 1), (3, 16), (5, 128), (1, 784)] {
            let row = &data[start..start + len];
            prefetch(row);
            assert!(
                row.iter()
                    .enumerate()
                    .all(|(i, v)| *v == (start + i) as f32)
            );
        }
    }
}
