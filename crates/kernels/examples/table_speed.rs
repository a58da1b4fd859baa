//! Single-thread speed of the query-table kernels, one query at a time and in groups:
//! `cargo run -p vecfusion-kernels --example table_speed --profile dev`. Prints µs per query
//! per path and shape (IVF ranking: m = 1; PQ tables: m sub-spaces). Run it after touching
//! `scan.rs`: LLVM keeps the grouped kernel's sums in registers only while they stay local
//! (one refactor made it 8× slower and no test noticed).

use std::time::Instant;
use vecfusion_kernels::path::KernelPath;
use vecfusion_kernels::scan::*;
fn main() {
    let q = TABLE_QUERIES;
    for (m, ksub, ds) in [(1, 256, 784), (16, 256, 49), (1, 1024, 128), (16, 256, 8)] {
        let cb: Vec<f32> = (0..m * ksub * ds)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let panels = pq_codebook_panels(&cb, m, ksub);
        let qs: Vec<f32> = (0..q * m * ds)
            .map(|i| ((i * 31) % 100) as f32 / 100.0)
            .collect();
        let mut out = vec![0.0; q * m * ksub];
        let (dim, table) = (m * ds, m * ksub);
        for path in KernelPath::supported() {
            let n = 2000;
            let t = Instant::now();
            for _ in 0..n {
                for (x, o) in qs.chunks(dim).zip(out.chunks_mut(table)) {
                    pq_dot_table_on(path, x, &panels, m, ksub, -2.0, &[], o);
                }
            }
            let one = t.elapsed().as_secs_f64() / (n * q) as f64 * 1e6;
            let t = Instant::now();
            for _ in 0..n {
                pq_dot_tables_on(path, &qs, &panels, m, ksub, -2.0, &[], &mut out);
            }
            let together = t.elapsed().as_secs_f64() / (n * q) as f64 * 1e6;
            println!(
                "m={m:2} ksub={ksub:4} ds={ds:3} {path:?}: one at a time {one:.2} µs/query, \
                 {q} together {together:.2} µs/query"
            );
        }
    }
}
