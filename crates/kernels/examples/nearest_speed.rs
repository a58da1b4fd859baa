//! Single-thread speed of the nearest-centroid kernel: `cargo run -p vecfusion-kernels
//! --example nearest_speed --profile dev`. Prints GFLOP/s (2·n·k·d per pass) per shape.

use std::time::Instant;

use vecfusion_kernels::nearest::{PackedCentroids, nearest};

fn main() {
    for (n, k, d) in [
        (16_384, 256, 8),
        (16_384, 1024, 128),
        (8192, 256, 768),
        (4096, 1024, 1536),
    ] {
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let c: Vec<f32> = (0..k * d)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0)
            .collect();
        let packed = PackedCentroids::for_l2(&c, d);
        let (mut idx, mut score) = (vec![0; n], vec![0.0; n]);
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            nearest(&x, 0, d, n, &packed, &mut idx, &mut score);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (n * k * d) as f64 / best / 1e9;
        println!("n={n:6} k={k:5} d={d:5}: {gflops:6.1} GFLOP/s (1 thread)");
    }
}
