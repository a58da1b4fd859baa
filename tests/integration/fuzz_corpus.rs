//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, the seeds and what the fuzzers kept) and
//! every crash they found (`fuzz/regressions/<target>/`) through the same harnesses the
//! fuzzers run, so the test command keeps a short, deterministic fuzz run.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Panics on the harness's runtime threads: a panic inside a spawned DataFusion task becomes
/// an error there, which the harness ignores like any other, but it is still a finding.
static HARNESS_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_harness_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(harness::THREAD_NAME))
            {
                HARNESS_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every input of `target`, corpus and regressions.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|d| std::fs::read_dir(fuzz_dir().join(d).join(target)).ok())
        .flatten()
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, harness: fn(&[u8])) {
    count_harness_panics();
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for fuzz target {target}");
    for file in files {
        let before = HARNESS_PANICS.load(Ordering::SeqCst);
        let data = std::fs::read(&file).expect("read corpus file");
        harness(&data);
        assert_eq!(
            HARNESS_PANICS.load(Ordering::SeqCst),
            before,
            "{target} input {} panicked inside a query",
            file.display()
        );
    }
}

#[test]
fn sql_corpus() {
    replay("sql", harness::sql);
}

#[test]
fn manifest_corpus() {
    replay("manifest", harness::manifest);
}

#[test]
fn fragment_corpus() {
    replay("fragment", harness::fragment);
}

#[test]
fn index_file_corpus() {
    replay("index_file", harness::index_file);
}

/// Writes the seed inputs (from a freshly built template dataset) into `fuzz/corpus/`:
/// `cargo test --test integration fuzz_corpus::write_seeds -- --ignored`.
#[test]
#[ignore = "regenerates fuzz/corpus seeds; run by hand"]
fn write_seeds() {
    for (target, name, bytes) in harness::seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
