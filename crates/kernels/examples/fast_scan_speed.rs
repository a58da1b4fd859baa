//! Single-thread speed of one partition's scan (1,000 rows, as IVF 1024 over 1M rows gives):
//! `cargo run -p vecfusion-kernels --example fast_scan_speed --release`. Prints ns per row
//! for 8-bit PQ (float tables, 256 entries; one row at a time, and on AVX-512 also eight rows
//! at a time with gathers — `pq_adc` takes the faster), 4-bit PQ with float tables, and 4-bit PQ fast
//! scan (byte tables in registers: the whole probe, then its scan, table quantization and
//! conversion back to floats alone), per path, at equal code bytes per row (8-bit m, 4-bit
//! 2·m).

use std::hint::black_box;
use std::time::Instant;
use vecfusion_kernels::fast_scan::*;
use vecfusion_kernels::path::KernelPath;
use vecfusion_kernels::scan::{across_rows_pays, pq_adc_across_rows, pq_adc_by_row_on, pq_adc_on};

fn bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// ns per row: the fastest of 7 timings of 3,000 calls (a shared 2-vCPU machine's noise
/// only ever adds time).
fn time(mut f: impl FnMut(), rows: usize) -> f64 {
    let reps = 3_000;
    f();
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / (reps * rows) as f64 * 1e9
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let rows = 1000;
    if KernelPath::Avx512.available() {
        let pick = if across_rows_pays() {
            "across rows"
        } else {
            "by row"
        };
        println!("8-bit PQ on AVX-512 scans {pick} on this CPU (measured at first use)");
    }
    println!(
        "{:<9} {:>10} {:>14} {:>14} {:>14} {:>16}",
        "path", "bytes/row", "8-bit by row", "8-bit across", "4-bit ns/row", "fast scan ns/row"
    );
    for path in KernelPath::supported() {
        for m8 in [8, 16, 32, 48, 64] {
            let m4 = 2 * m8;
            let lut8: Vec<f32> = bytes(m8 * 256, 1).iter().map(|b| *b as f32).collect();
            let lut4: Vec<f32> = bytes(m4 * 16, 2).iter().map(|b| *b as f32).collect();
            let (codes8, codes4) = (bytes(rows * m8, 3), bytes(rows * m4, 4));
            let blocks = pack_blocks(&codes4, m4);
            let mut out = vec![0.0f32; rows];
            let mut sums = vec![0u16; rows.div_ceil(BLOCK_ROWS) * BLOCK_ROWS];
            let mut tables = vec![0u8; padded_subspaces(m4) * 16];
            let t8 = time(
                || pq_adc_by_row_on(path, black_box(&codes8), m8, 256, &lut8, 0.0, &mut out),
                rows,
            );
            let across = if path == KernelPath::Avx512 {
                let ns = time(
                    || {
                        pq_adc_across_rows(black_box(&codes8), m8, 256, &lut8, 0.0, &mut out);
                    },
                    rows,
                );
                format!("{ns:.2}")
            } else {
                "-".into()
            };
            let t4 = time(
                || pq_adc_on(path, black_box(&codes4), m4, 16, &lut4, 0.0, &mut out),
                rows,
            );
            let tf = time(
                || {
                    let (scale, bias) = quantize_tables(&lut4, m4, &mut tables);
                    scan_blocks_on(path, black_box(&blocks), m4, &tables, &mut sums);
                    dequantize(&sums, scale, bias, 0.0, &mut out);
                },
                rows,
            );
            let ts = time(
                || scan_blocks_on(path, black_box(&blocks), m4, &tables, &mut sums),
                rows,
            );
            let tq = time(
                || {
                    black_box(quantize_tables(black_box(&lut4), m4, &mut tables));
                },
                rows,
            );
            let td = time(
                || dequantize(black_box(&sums), 0.5, 0.1, 0.0, &mut out),
                rows,
            );
            println!(
                "{:<9} {:>10} {:>14.2} {:>14} {:>14.2} {:>16.2} scan {ts:.2} quantize {tq:.2} dequantize {td:.2}",
                format!("{path:?}"),
                m8,
                t8,
                across,
                t4,
                tf
            );
        }
    }
}
