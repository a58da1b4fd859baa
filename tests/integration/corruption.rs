//! Damaged files: bytes flipped or cut anywhere in the newest manifest, a fragment, a deletion
//! vector, an index model or segment. Every case ends in an answer or an error — never a
//! panic — and where the bytes are checksummed, in an error that names the damage rather
//! than a silently different answer. Older versions stay readable when the newest manifest
//! is damaged.

use std::path::{Path, PathBuf};

use crate::common::*;

const DIM: usize = 8;
const QUERY: &str = "[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]";

/// A dataset with two versions of interest: v2 (2000 rows), then an index, then a delete.
async fn build(dir: &Path) {
    let ctx = table_at(dir, DIM).await;
    sql(
        &ctx,
        "INSERT INTO t SELECT * FROM random_vectors(2000, 8, 4, 3)",
    )
    .await;
    sql(
        &ctx,
        "CREATE VECTOR INDEX idx ON t (embedding) USING IVF_PQ WITH (num_partitions = 4, \
         num_sub_vectors = 2)",
    )
    .await;
    sql(&ctx, "DELETE FROM t WHERE id % 10 = 0").await;
}

fn files(dir: &Path, sub: &str, pattern: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(pattern))
        .collect();
    out.sort();
    out
}

/// The statements each damaged copy answers; `Ok` holds their printed results.
async fn answers(dir: PathBuf) -> Result<Vec<String>, String> {
    let ctx = vecfusion::new_session_context();
    try_sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}'",
            dir.display()
        ),
    )
    .await?;
    let mut out = vec![];
    for q in [
        "SELECT count(*) FROM t".to_string(),
        format!("SELECT id FROM t ORDER BY l2_distance(embedding, {QUERY}) LIMIT 5"),
        format!("SELECT id FROM vector_search('t', 'embedding', {QUERY}, 5, 4) ORDER BY _distance"),
    ] {
        let batches = try_sql(&ctx, &q).await?;
        out.push(
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string(),
        );
    }
    Ok(out)
}

/// Runs `answers` on a copy of `base` whose file `relative` was damaged by `damage`; panics
/// (the test fails) only if the engine panicked.
async fn damaged(
    base: &Path,
    relative: &Path,
    damage: impl FnOnce(&mut Vec<u8>),
) -> Result<Vec<String>, String> {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(base, copy.path());
    let path = copy.path().join(relative);
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    let handle = tokio::spawn(answers(copy.path().to_path_buf()));
    match handle.await {
        Ok(r) => r,
        Err(e) => panic!("{}: the engine panicked: {e}", relative.display()),
    }
}

/// Byte positions to flip: spread over the file, plus its first and last bytes.
fn positions(len: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..24).map(|i| i * len / 24).collect();
    p.extend([1, len - 1, len / 2 + 3]);
    p.sort_unstable();
    p.dedup();
    p
}

#[tokio::test]
async fn damaged_files_give_errors_not_panics_or_silent_changes() {
    let base = tempfile::tempdir().unwrap();
    build(base.path()).await;
    let intact = answers(base.path().to_path_buf()).await.unwrap();
    let root = base.path();
    let last = |sub: &str, pattern: &str| files(root, sub, pattern).pop().unwrap();
    let targets: Vec<(&str, PathBuf)> = vec![
        ("manifest", last("_versions", ".manifest")),
        ("fragment", last("data", ".arrow")),
        ("deletions", last("_deletions", ".bin")),
        ("model", last("_indexes", ".model.")),
        ("segment", last("_indexes", ".segment.")),
    ];
    let mut cases = 0;
    for (what, path) in &targets {
        let relative = path.strip_prefix(root).unwrap();
        let len = std::fs::metadata(path).unwrap().len() as usize;
        let mut outcomes = vec![];
        for at in positions(len) {
            let r = damaged(root, relative, |b| b[at] ^= 0x5a).await;
            outcomes.push((format!("flip at {at}"), r));
        }
        for keep in [0, 1, len / 3, len / 2, len - 8, len - 1] {
            let r = damaged(root, relative, |b| b.truncate(keep)).await;
            outcomes.push((format!("cut to {keep}"), r));
        }
        for (case, r) in outcomes {
            cases += 1;
            match (*what, r) {
                // Checksummed files: any change that reaches a query is an error (an
                // unchanged answer is fine: the bytes were ones no query reads).
                (_, Ok(answers)) => assert_eq!(
                    answers, intact,
                    "{what} {case}: a damaged file silently changed an answer"
                ),
                ("manifest", Err(e)) => assert!(
                    e.contains("manifest") && e.contains("VERSION AS OF"),
                    "{what} {case}: {e}"
                ),
                ("model" | "segment", Err(e)) => assert!(
                    e.contains("index")
                        && e.contains("DROP VECTOR INDEX")
                        && e.contains("use_index = false"),
                    "{what} {case}: {e}"
                ),
                ("fragment", Err(e)) => assert!(e.contains("fragment"), "{what} {case}: {e}"),
                ("deletions", Err(e)) => assert!(e.contains("deletion"), "{what} {case}: {e}"),
                (_, Err(e)) => panic!("{what} {case}: {e}"),
            }
        }
    }
    assert!(cases > 100);
}

#[tokio::test]
async fn a_flipped_vector_byte_fails_its_checksum() {
    let base = tempfile::tempdir().unwrap();
    build(base.path()).await;
    let fragment = files(base.path(), "data", ".arrow").pop().unwrap();
    let relative = fragment.strip_prefix(base.path()).unwrap();
    let len = std::fs::metadata(&fragment).unwrap().len() as usize;
    // The middle of the file is vector data of some record batch.
    let err = damaged(base.path(), relative, |b| b[len / 2] ^= 0x01)
        .await
        .unwrap_err();
    assert!(err.contains("fails its checksum"), "{err}");
}

#[tokio::test]
async fn older_versions_stay_readable_when_the_newest_manifest_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    let newest = files(dir.path(), "_versions", ".manifest").pop().unwrap();
    std::fs::write(&newest, b"not a manifest at all").unwrap();
    let ctx = open_table(dir.path(), "t").await;
    let err = sql_err(&ctx, "SELECT count(*) FROM t").await;
    assert!(
        err.contains("is not a vecfusion manifest") && err.contains("move it out of _versions/"),
        "{err}"
    );
    // Version 2 (2000 rows, before the index and the delete) is intact.
    assert_eq!(
        scalar_i64(&ctx, "SELECT count(*) FROM t VERSION AS OF 2").await,
        2000
    );
    let pinned = vecfusion::new_session_context();
    sql(
        &pinned,
        &format!(
            "CREATE EXTERNAL TABLE old STORED AS VECFUSION LOCATION '{}' OPTIONS ('version' '3')",
            dir.path().display()
        ),
    )
    .await;
    assert_eq!(scalar_i64(&pinned, "SELECT count(*) FROM old").await, 2000);
    // Cleanup refuses to guess what the damaged version refers to.
    let err = sql_err(&ctx, "SELECT * FROM vecfusion_cleanup('t', 0)").await;
    assert!(err.contains("manifest"), "{err}");
    // Writes fail rather than commit on top of a version that is not the newest.
    let err = sql_err(&ctx, "INSERT INTO t SELECT * FROM random_vectors(1, 8)").await;
    assert!(err.contains("manifest"), "{err}");
}
