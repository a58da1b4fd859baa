//! CREATE VECTOR INDEX through SQL on real datasets, checked by opening the index files.

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Float32Type, UInt64Type};
use vecfusion::dataset::{Dataset, DatasetLocation, IndexMeta};
use vecfusion::index_format::{IndexModel, SegmentFile};
use vecfusion::quantizer::IndexKind;

use crate::common::*;

const ROWS: usize = 20_000;
const DIM: usize = 32;

async fn setup(dir: &Path) -> datafusion::prelude::SessionContext {
    let ctx = table_at(dir, DIM).await;
    sql(
        &ctx,
        &format!("INSERT INTO t SELECT * FROM random_vectors({ROWS}, {DIM}, 16, 7)"),
    )
    .await;
    ctx
}

/// The index `name` of the latest version: its entry, its model and its one segment.
async fn index_of(dir: &Path, name: &str) -> (Dataset, IndexMeta, IndexModel, SegmentFile) {
    let ds = Dataset::open(DatasetLocation::local(dir).unwrap())
        .await
        .unwrap();
    let meta = ds.manifest().index(name).expect("index recorded").clone();
    let model = IndexModel::open(ds.location(), &meta.model.file)
        .await
        .unwrap();
    assert_eq!(meta.segments.len(), 1, "a CREATE writes one segment");
    let segment = SegmentFile::open(ds.location(), &meta.segments[0].file, &model)
        .await
        .unwrap();
    (ds, meta, model, segment)
}

/// A named section of the model's quantizer.
fn quantizer_section(model: &IndexModel, name: &str) -> Vec<f32> {
    let sections = model.quantizer.sections();
    let (_, values) = sections.iter().find(|(n, _)| *n == name).expect(name);
    values.to_vec()
}

/// All vectors of the table by row address.
async fn vectors(ds: &Dataset) -> HashMap<u64, Vec<f32>> {
    let frag = ds.fragments()[0].id;
    let addrs: Vec<u64> = (0..ROWS as u32)
        .map(|o| vecfusion::dataset::row_address(frag, o))
        .collect();
    let batch = ds.take(&addrs, Some(&[1])).await.unwrap();
    let list = batch.column(0).as_fixed_size_list();
    let values = list.values().as_primitive::<Float32Type>().values();
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, values[i * DIM..(i + 1) * DIM].to_vec()))
        .collect()
}

/// Every row exactly once, and partition sizes sum to the rows indexed.
fn check_partitions(
    model: &IndexModel,
    file: &SegmentFile,
    meta: &IndexMeta,
    expected_rows: usize,
) -> Vec<(usize, u64)> {
    let mut seen = std::collections::HashSet::new();
    let mut entries = vec![];
    let mut total = 0;
    for p in 0..model.num_partitions {
        let (addrs, _) = file.partition(p).unwrap();
        assert!(addrs.is_sorted(), "partition {p} lists rows by address");
        total += addrs.len();
        for a in addrs.iter() {
            assert!(seen.insert(*a), "row {a:#x} appears twice");
            entries.push((p, *a));
        }
    }
    assert_eq!(total, expected_rows);
    assert_eq!(meta.rows_indexed() as usize, expected_rows);
    assert_eq!(file.rows() as usize, expected_rows);
    entries
}

#[tokio::test]
async fn ivf_pq_covers_every_row_once_and_reconstructs_well() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let result = sql(
        &ctx,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_PQ WITH (num_partitions = 32, \
         num_sub_vectors = 8, accelerator = 'cpu', seed = 7)",
    )
    .await;
    assert_eq!(
        result[0].column(2).as_primitive::<UInt64Type>().value(0),
        ROWS as u64
    );
    let (ds, meta, model, file) = index_of(dir.path(), "idx").await;
    assert_eq!(meta.kind, IndexKind::IvfPq);
    assert_eq!(meta.segments[0].fragments, vec![ds.fragments()[0].id]);
    check_partitions(&model, &file, &meta, ROWS);

    // Decode every row (centroid + PQ codewords) and compare with the stored vector.
    let data = vectors(&ds).await;
    let centroids = &model.centroids;
    let codebooks = quantizer_section(&model, "pq_codebooks");
    let (m, ds_) = (8, DIM / 8);
    let (mut err, mut var, mut mean) = (0f64, 0f64, vec![0f64; DIM]);
    for v in data.values() {
        v.iter()
            .zip(mean.iter_mut())
            .for_each(|(x, m)| *m += *x as f64 / ROWS as f64);
    }
    for p in 0..model.num_partitions {
        let (addrs, codes) = file.partition(p).unwrap();
        for (i, a) in addrs.iter().enumerate() {
            let v = &data[a];
            for d in 0..DIM {
                let (s, j) = (d / ds_, d % ds_);
                let code = codes[i * m + s] as usize;
                let approx = centroids[p * DIM + d] + codebooks[(s * 256 + code) * ds_ + j];
                err += ((v[d] - approx) as f64).powi(2);
                var += (v[d] as f64 - mean[d]).powi(2);
            }
        }
    }
    assert!(
        err < var * 0.1,
        "reconstruction error {err} vs variance {var}"
    );
}

#[tokio::test]
async fn ivf_sq_bounds_trim_the_data_extremes_and_flat_keeps_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    sql(&ctx, "CREATE VECTOR INDEX sq ON t (embedding) USING IVF_SQ WITH (num_partitions = 16, accelerator = 'cpu')").await;
    // A tiny memory budget: the FLAT build spills its partition lists several times.
    sql(&ctx, "CREATE VECTOR INDEX flat ON t (embedding) USING IVF_FLAT WITH (num_partitions = 16, memory_budget_mb = 1)").await;
    let (ds, meta, model, file) = index_of(dir.path(), "sq").await;
    check_partitions(&model, &file, &meta, ROWS);
    let data = vectors(&ds).await;
    let bounds = quantizer_section(&model, "sq_bounds");
    for d in 0..DIM {
        // Trimmed quantiles of the sample: inside the data's range, and leaving only a
        // fraction of a percent of the rows outside (clamped to the end codes).
        let lo = data.values().map(|v| v[d]).fold(f32::MAX, f32::min);
        let hi = data.values().map(|v| v[d]).fold(f32::MIN, f32::max);
        let (b_lo, b_hi) = (bounds[d], bounds[DIM + d]);
        assert!(lo <= b_lo && b_lo < b_hi && b_hi <= hi, "dimension {d}");
        let outside = data.values().filter(|v| v[d] < b_lo || v[d] > b_hi).count();
        assert!(
            outside * 100 < ROWS,
            "dimension {d}: {outside} rows outside the bounds"
        );
    }
    let (_, meta, model, file) = index_of(dir.path(), "flat").await;
    check_partitions(&model, &file, &meta, ROWS);
    assert!(meta.details["file_bytes"].as_u64().unwrap() > (ROWS * DIM * 4) as u64);
    for p in 0..model.num_partitions {
        let (addrs, codes) = file.partition(p).unwrap();
        for (i, a) in addrs.iter().enumerate() {
            let stored: Vec<f32> = codes[i * DIM * 4..(i + 1) * DIM * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(&stored, &data[a]);
        }
    }
}

#[tokio::test]
async fn cosine_indexes_store_unit_vectors_and_skip_unusable_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    // Rows the build must skip: a NULL vector, a NaN, an infinity, and (for cosine) zeros.
    sql(
        &ctx,
        &format!(
            "INSERT INTO t VALUES (-1, NULL), (-2, [{nan}]), (-3, [{inf}]), (-4, [{zero}])",
            nan = vec!["'NaN'::float"; DIM].join(","),
            inf = vec!["'Infinity'::float"; DIM].join(","),
            zero = vec!["0.0"; DIM].join(","),
        ),
    )
    .await;
    let result = sql(
        &ctx,
        "CREATE VECTOR INDEX cos ON t (embedding) USING IVF_FLAT WITH (num_partitions = 8, metric = 'cosine')",
    )
    .await;
    assert_eq!(
        result[0].column(2).as_primitive::<UInt64Type>().value(0),
        ROWS as u64
    );
    assert_eq!(result[0].column(3).as_primitive::<UInt64Type>().value(0), 4);
    let (_, meta, model, file) = index_of(dir.path(), "cos").await;
    check_partitions(&model, &file, &meta, ROWS);
    let centroids = &model.centroids;
    for c in centroids.chunks(DIM) {
        let n: f32 = c.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-3, "centroid norm {n}");
    }
    let (_, codes) = file.partition(0).unwrap();
    for row in codes.chunks_exact(DIM * 4).take(100) {
        let n: f32 = row
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!((n - 1.0).abs() < 1e-4, "stored norm {n}");
    }
}

#[tokio::test]
async fn same_seed_same_index_and_statements_manage_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let build = |name: &str| {
        format!(
            "CREATE VECTOR INDEX {name} ON t (embedding) USING IVF_PQ WITH (num_partitions = 16, num_sub_vectors = 4, seed = 3)"
        )
    };
    sql(&ctx, &build("a")).await;
    sql(&ctx, &build("b")).await;
    let (_, _, a_model, a) = index_of(dir.path(), "a").await;
    let (_, _, b_model, b) = index_of(dir.path(), "b").await;
    assert_eq!(a_model.centroids, b_model.centroids);
    assert_ne!(a_model.id, b_model.id);
    assert_eq!(
        quantizer_section(&a_model, "pq_codebooks"),
        quantizer_section(&b_model, "pq_codebooks")
    );
    for p in 0..16 {
        assert_eq!(a.partition(p).unwrap(), b.partition(p).unwrap());
    }
    let shown = sql(&ctx, "SHOW VECTOR INDEXES FROM t").await;
    assert_eq!(shown[0].num_rows(), 2);
    let err = sql_err(&ctx, &build("a")).await;
    assert!(
        err.contains("already exists") && err.contains("replace = true"),
        "{err}"
    );
    sql(&ctx, "CREATE VECTOR INDEX IF NOT EXISTS a ON t (embedding)").await;
    sql(&ctx, "DROP VECTOR INDEX a ON t").await;
    sql(&ctx, "DROP VECTOR INDEX IF EXISTS a ON t").await;
    let err = sql_err(&ctx, "DROP VECTOR INDEX a ON t").await;
    assert!(err.contains("there is no vector index 'a'"), "{err}");
    let shown = sql(&ctx, "SHOW VECTOR INDEXES").await;
    assert_eq!(shown[0].num_rows(), 1);
    // The dropped index's file is garbage now, but only old garbage is collected.
    let removed = sql(&ctx, "SELECT * FROM vecfusion_cleanup('t')").await;
    assert_eq!(removed[0].num_rows(), 0);
    let removed = sql(&ctx, "SELECT * FROM vecfusion_cleanup('t', 0)").await;
    assert_eq!(
        removed[0].num_rows(),
        0,
        "every version still references the file"
    );
}

#[tokio::test]
async fn the_gpu_memory_cap_is_kept_with_the_index_and_optimize_can_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    sql(&ctx, "CREATE VECTOR INDEX g ON t (embedding) USING IVF_PQ WITH (num_partitions = 8, gpu_memory_budget_mb = 64)").await;
    let (_, meta, _, _) = index_of(dir.path(), "g").await;
    assert_eq!(meta.params["options"]["gpu_memory_budget_mb"], 64);
    sql(
        &ctx,
        &format!("INSERT INTO t SELECT * FROM random_vectors(500, {DIM}, 16, 8)"),
    )
    .await;
    let err = sql_err(
        &ctx,
        "OPTIMIZE VECTOR INDEX g ON t WITH (gpu_memory_budget_mb = -5)",
    )
    .await;
    assert!(
        err.contains("option 'gpu_memory_budget_mb' must be an integer from 1 to 1048576"),
        "{err}"
    );
    let r = sql(
        &ctx,
        "OPTIMIZE VECTOR INDEX g ON t WITH (gpu_memory_budget_mb = 32)",
    )
    .await;
    let encoded = r[0].column(r[0].schema().index_of("rows_encoded").unwrap());
    assert_eq!(encoded.as_primitive::<UInt64Type>().value(0), 500);
}

#[tokio::test]
async fn bad_options_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    for (stmt, want) in [
        (
            "USING IVF_PQ WITH (colour = 'red')",
            "unknown option 'colour'",
        ),
        (
            "USING IVF_PQ WITH (num_partitions = 'many')",
            "option 'num_partitions' must be an integer from 1 to 65536, got 'many'",
        ),
        (
            "USING IVF_PQ WITH (num_partitions = 70000)",
            "option 'num_partitions' must be an integer from 1 to 65536, got 70000",
        ),
        (
            "USING IVF_PQ WITH (num_partitions = -3)",
            "option 'num_partitions' must be an integer from 1 to 65536, got -3",
        ),
        (
            "USING IVF_FLAT WITH (sample_rate = 9223372036854775807)",
            "option 'sample_rate' must be an integer from 1 to 65536",
        ),
        (
            "USING IVF_FLAT WITH (max_iterations = 1000000000)",
            "option 'max_iterations' must be an integer from 1 to 1000",
        ),
        (
            "USING IVF_PQ WITH (pq_max_iterations = 0)",
            "option 'pq_max_iterations' must be an integer from 1 to 1000",
        ),
        (
            "USING IVF_FLAT WITH (memory_budget_mb = 99999999999)",
            "option 'memory_budget_mb' must be an integer from 1 to 1048576",
        ),
        (
            "USING IVF_FLAT WITH (gpu_memory_budget_mb = 0)",
            "option 'gpu_memory_budget_mb' must be an integer from 1 to 1048576, got 0",
        ),
        (
            "USING IVF_PQ WITH (num_sub_vectors = 5)",
            "does not divide the dimension 32",
        ),
        (
            "USING IVF_FLAT WITH (num_partitions = 50000)",
            "needs at least 50000 usable rows",
        ),
        (
            "USING IVF_FLAT WITH (tolerance = 'NaN')",
            "option 'tolerance' must be a non-negative number",
        ),
        (
            "USING IVF_FLAT WITH (accelerator = 'cuda')",
            "without the `cuda` feature",
        ),
        ("USING IVF_HNSW", "unknown vector index kind"),
        (
            "USING IVF_SQ WITH (metric = 'manhattan')",
            "unknown metric 'manhattan'",
        ),
    ] {
        if want.contains("cuda") && cfg!(feature = "cuda") {
            continue;
        }
        let err = sql_err(
            &ctx,
            &format!("CREATE VECTOR INDEX x ON t (embedding) {stmt}"),
        )
        .await;
        assert!(err.contains(want), "{stmt}: {err}");
    }
    let err = sql_err(&ctx, "CREATE VECTOR INDEX x ON t (id)").await;
    assert!(err.contains("not a vector column"), "{err}");
    let err = sql_err(&ctx, "CREATE VECTOR INDEX x ON t (nope)").await;
    assert!(err.contains("there is no column 'nope'"), "{err}");
    // Nothing was committed by any of them.
    assert_eq!(
        scalar_i64(&ctx, "SELECT count(*) FROM vecfusion_versions('t')").await,
        2
    );
}
