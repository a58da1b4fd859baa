//! The fuzz harnesses of vecfusion: one function per attack surface, each taking arbitrary
//! bytes and driving the real product with them (SQL through the statement parser and
//! executor; a manifest, a fragment or an index file put in place of the real one in a copy
//! of a real dataset, which is then queried).
//!
//! A harness returns normally whatever its input is; errors are the expected answer to bad
//! input. A panic (an overflow in debug builds included), an abort or a hang is a finding.
//! After every input the harness also checks what the product promises: the dataset still
//! opens and counts its rows.
//!
//! The same functions drive the coverage-guided fuzzers (`fuzz_targets/`, `cargo fuzz run`)
//! and the replay of the committed corpus in the test command (`tests/integration/fuzz_corpus.rs`
//! includes this file), so a crash once found stays a test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use tokio::runtime::Runtime;
use vecfusion::dataset::manifest::Manifest;
use vecfusion::dataset::versions::manifest_file;
use vecfusion::{Dataset, DatasetLocation, VecfusionContext, new_session_context};

/// Statements of one SQL input that are run (the rest are only parsed).
const MAX_STATEMENTS: usize = 8;
/// A statement still running after this long is cancelled (which the harness then exercises too).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Name of the harness runtime's threads, so a replay can tell its panics from others'.
pub const THREAD_NAME: &str = "vecfusion-fuzz";

/// Dimension of the scratch table's vectors.
pub const DIM: usize = 4;

/// The queries run against a dataset whose manifest, fragment or index file was replaced:
/// everything that reads those files (counts, full scans, indexed and exact searches with and
/// without filters, deletes, compaction, index maintenance and the version functions).
const READ_QUERIES: &[&str] = &[
    "SELECT count(*) FROM t",
    "SELECT * FROM t",
    "SELECT id, name FROM t WHERE id < 40 ORDER BY id",
    "SELECT id FROM t ORDER BY l2_distance(embedding, [0.1, -0.2, 0.3, 0.5]) LIMIT 5",
    "SELECT id FROM t WHERE id % 2 = 0 ORDER BY l2_distance(embedding, [1, 0, 0, 0]) LIMIT 7",
    "SELECT * FROM vector_search('t', 'embedding', [0.5, 0.5, 0.5, 0.5], 4)",
    "SELECT version, operation FROM vecfusion_versions('t')",
    "SET vecfusion.use_index = false",
    "SELECT id FROM t ORDER BY l2_distance(embedding, [0.1, -0.2, 0.3, 0.5]) LIMIT 5",
    "SET vecfusion.use_index = true",
    "DELETE FROM t WHERE id % 5 = 1",
    "SELECT count(*) FROM t",
];

/// Writes that trust everything the files say, run after [`READ_QUERIES`] once they all
/// succeeded (they are slow: a rewrite of the table, an index segment).
const WRITE_QUERIES: &[&str] = &["OPTIMIZE VECTOR INDEX t_idx ON t", "OPTIMIZE TABLE t"];

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// The dataset every input starts from, built once per process: three fragments (one with
/// deletions, one not covered by the index), an IVF_PQ index of two segments.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t");
        runtime().block_on(async {
            let ctx = new_session_context();
            for sql in [
                format!(
                    "CREATE EXTERNAL TABLE t (id BIGINT NOT NULL, name VARCHAR, \
                     embedding FLOAT[{DIM}]) STORED AS VECFUSION LOCATION '{}'",
                    path.display()
                ),
                format!(
                    "INSERT INTO t SELECT id, 'row ' || id, vector FROM \
                     random_vectors(300, {DIM}, 4, 7)"
                ),
                "DELETE FROM t WHERE id % 10 = 3".into(),
                "CREATE VECTOR INDEX t_idx ON t (embedding) USING IVF_PQ \
                 WITH (num_partitions = 4, num_sub_vectors = 2)"
                    .into(),
                format!(
                    "INSERT INTO t SELECT id + 1000, NULL, vector FROM \
                     random_vectors(60, {DIM}, 4, 8)"
                ),
                "OPTIMIZE VECTOR INDEX t_idx ON t".into(),
                format!(
                    "INSERT INTO t SELECT id + 2000, 'late', vector FROM \
                     random_vectors(20, {DIM}, 4, 9)"
                ),
            ] {
                run(&ctx, &sql)
                    .await
                    .unwrap_or_else(|e| panic!("building the fuzz template: {sql}: {e}"));
            }
        });
        (dir, path)
    });
    path
}

/// Runs one statement to completion; its error, if any, is returned as text.
async fn run(ctx: &SessionContext, sql: &str) -> Result<(), String> {
    let work = async {
        let df = ctx.vf_sql(sql).await.map_err(|e| e.to_string())?;
        df.collect().await.map_err(|e| e.to_string())?;
        Ok(())
    };
    match tokio::time::timeout(STATEMENT_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err("cancelled after the harness's timeout".into()),
    }
}

/// A private copy of the template dataset for one input.
pub struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t");
        copy_dir(template(), &path);
        Self { _dir: dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest manifest of the copy (the template's, until an input changes it).
    pub fn manifest(&self) -> Manifest {
        runtime().block_on(async {
            Dataset::open(DatasetLocation::local(&self.path).expect("location"))
                .await
                .expect("scratch dataset opens")
                .manifest()
                .as_ref()
                .clone()
        })
    }

    /// Overwrites the file `relative` (to the dataset root) with `bytes`.
    pub fn replace(&self, relative: &str, bytes: &[u8]) {
        std::fs::write(self.path.join(relative), bytes).expect("write scratch file");
    }

    /// Writes `manifest` in place of the newest version's manifest.
    pub fn replace_manifest(&self, manifest: &Manifest) {
        let bytes = manifest.encode().expect("encode manifest");
        self.replace(&manifest_file(manifest.version), &bytes);
    }

    /// A new session with the copy registered as `t`.
    pub fn session(&self) -> Option<SessionContext> {
        let ctx = new_session_context();
        let sql = format!(
            "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{}'",
            self.path.display()
        );
        runtime().block_on(run(&ctx, &sql)).ok().map(|_| ctx)
    }

    /// Runs `statements` one after another in one session, ignoring their errors; whether
    /// they all succeeded.
    pub fn run_all<'a>(&self, statements: impl IntoIterator<Item = &'a str>) -> bool {
        let Some(ctx) = self.session() else {
            return false;
        };
        runtime().block_on(async {
            let mut all = true;
            for sql in statements {
                all &= run(&ctx, sql).await.is_ok();
            }
            all
        })
    }

    /// The queries every replaced file goes through: the reads, then (when the reads
    /// accepted the file) the writes.
    fn read_then_write(&self) {
        if self.run_all(READ_QUERIES.iter().copied()) {
            self.run_all(WRITE_QUERIES.iter().copied());
        }
    }

    /// What every statement must leave behind: a dataset that opens in a new session and
    /// counts its rows.
    pub fn assert_intact(&self) {
        let ctx = self
            .session()
            .unwrap_or_else(|| panic!("the dataset at {} no longer opens", self.path.display()));
        if let Err(e) = runtime().block_on(run(&ctx, "SELECT count(*) FROM t")) {
            panic!("the dataset no longer counts its rows: {e}");
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create scratch dir");
    for entry in std::fs::read_dir(from).expect("read template") {
        let entry = entry.expect("template entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy template file");
        }
    }
}

/// Statements that could write outside the scratch dataset (`COPY ... TO`, a table at
/// another `LOCATION`) are parsed but not run.
fn may_write_elsewhere(statement: &str) -> bool {
    let lower = statement.to_ascii_lowercase();
    lower.contains("copy") || lower.contains("location")
}

/// The SQL entry point: the input, as text, is split into statements by the vecfusion
/// parser, and up to [`MAX_STATEMENTS`] of them run against the scratch table `t`.
pub fn sql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // The parser sees everything, whatever it is; only what parses goes on to run.
    if new_session_context().vf_parse(&text).is_err() {
        return;
    }
    let scratch = Scratch::new();
    let statements: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty() && !may_write_elsewhere(s))
        .take(MAX_STATEMENTS)
        .collect();
    scratch.run_all(statements);
    scratch.assert_intact();
}

/// The manifest reader: the input replaces the newest manifest, once as it is and once
/// re-sealed (its header checksum recomputed, so a mutated body reaches the parser and
/// everything that trusts what it says).
pub fn manifest(data: &[u8]) {
    for bytes in [data.to_vec(), reseal_manifest(data)] {
        let scratch = Scratch::new();
        let version = scratch.manifest().version;
        scratch.replace(&manifest_file(version), &bytes);
        scratch.read_then_write();
    }
}

/// The fragment reader: the input replaces the data file of the first fragment (the manifest
/// is told its new length, so the reader goes on to the footer and batches).
pub fn fragment(data: &[u8]) {
    let scratch = Scratch::new();
    let mut manifest = scratch.manifest();
    let Some(first) = manifest.fragments.first_mut() else {
        return;
    };
    first.file_bytes = data.len() as u64;
    let file = first.file.clone();
    scratch.replace(&file, data);
    scratch.replace_manifest(&manifest);
    scratch.read_then_write();
    // Whatever was read, a write that does not need the bad fragment still works.
    scratch
        .run_all(["INSERT INTO t SELECT id + 5000, 'new', vector FROM random_vectors(5, 4, 1, 3)"]);
}

/// The index-file reader: the input replaces the index's model file, then its first segment
/// file, each as it is and re-sealed (its header, section and partition checksums
/// recomputed, so crafted headers and tables are reached).
pub fn index_file(data: &[u8]) {
    let sealed = reseal_index(data);
    for target in [IndexFile::Model, IndexFile::Segment] {
        for bytes in [data, sealed.as_slice()] {
            let scratch = Scratch::new();
            let manifest = scratch.manifest();
            let Some(index) = manifest.indexes.first() else {
                return;
            };
            let file = match target {
                IndexFile::Model => &index.model.file,
                IndexFile::Segment => match index.segments.first() {
                    Some(s) => &s.file,
                    None => return,
                },
            };
            scratch.replace(file, bytes);
            scratch.read_then_write();
        }
    }
}

#[derive(Clone, Copy)]
enum IndexFile {
    Model,
    Segment,
}

/// `data` with its manifest header's checksum recomputed over the body after the first line.
pub fn reseal_manifest(data: &[u8]) -> Vec<u8> {
    let body = match data.iter().position(|b| *b == b'\n') {
        Some(n) => &data[n + 1..],
        None => data,
    };
    let mut out =
        format!("VECFUSION-MANIFEST 2 crc32={:08x}\n", crc32fast::hash(body)).into_bytes();
    out.extend_from_slice(body);
    out
}

/// `data` with an index file's checksums recomputed: every section named by the header
/// (the partition table after its entries), then the header itself. Inputs without a
/// readable footer and header come back unchanged.
pub fn reseal_index(data: &[u8]) -> Vec<u8> {
    const FOOTER: usize = 24;
    let len = data.len();
    if len < 8 + FOOTER {
        return data.to_vec();
    }
    let footer = &data[len - FOOTER..];
    let header_len = u64::from_le_bytes(footer[..8].try_into().expect("8"));
    let Some(header_start) = usize::try_from(header_len)
        .ok()
        .and_then(|h| (len - FOOTER).checked_sub(h))
    else {
        return data.to_vec();
    };
    let Ok(mut header) =
        serde_json::from_slice::<serde_json::Value>(&data[header_start..len - FOOTER])
    else {
        return data.to_vec();
    };
    let mut body = data[..header_start].to_vec();
    let code_size = header["code_size"].as_u64().unwrap_or(0);
    let range = |offset: u64, len: u64| -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= header_start).then_some(start..end)
    };
    if let Some(sections) = header["sections"].as_array_mut() {
        // The partition table's entries first: its own checksum covers them.
        for s in sections.iter() {
            if s["name"] != "partition_table" {
                continue;
            }
            let Some(table) = range(
                s["offset"].as_u64().unwrap_or(u64::MAX),
                s["len"].as_u64().unwrap_or(0),
            ) else {
                continue;
            };
            for entry in table.step_by(24) {
                let Some(e) = body.get(entry..entry + 24) else {
                    break;
                };
                let offset = u64::from_le_bytes(e[..8].try_into().expect("8"));
                let rows = u64::from_le_bytes(e[8..16].try_into().expect("8"));
                let block = code_size
                    .checked_add(8)
                    .and_then(|code| rows.checked_mul(code))
                    .and_then(|n| range(offset, n));
                if let Some(block) = block {
                    let crc = crc32fast::hash(&body[block]);
                    body[entry + 16..entry + 20].copy_from_slice(&crc.to_le_bytes());
                }
            }
        }
        for s in sections.iter_mut() {
            let r = range(
                s["offset"].as_u64().unwrap_or(u64::MAX),
                s["len"].as_u64().unwrap_or(0),
            );
            if let Some(r) = r {
                s["crc32"] = crc32fast::hash(&body[r]).into();
            }
        }
    }
    let json = serde_json::to_vec(&header).expect("header JSON");
    body.extend_from_slice(&json);
    body.extend_from_slice(&(json.len() as u64).to_le_bytes());
    body.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    body.extend_from_slice(&footer[12..]);
    body
}

/// Seed inputs for each target, taken from the template dataset: its newest manifest, its
/// fragment files (also rewritten without their checksums, as older files are, so that
/// mutations reach the batch decoder), and its model and segment index files.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use datafusion::arrow::ipc::reader::FileReader;
    use datafusion::arrow::ipc::writer::FileWriter;

    let scratch = Scratch::new();
    let manifest = scratch.manifest();
    let read = |relative: &str| std::fs::read(scratch.path().join(relative)).expect("seed file");
    let mut seeds = vec![(
        "manifest",
        "newest".to_string(),
        read(&manifest_file(manifest.version)),
    )];
    for f in &manifest.fragments {
        let bytes = read(&f.file);
        let reader = FileReader::try_new(std::io::Cursor::new(bytes.clone()), None).expect("ipc");
        let mut plain = Vec::new();
        let mut writer = FileWriter::try_new(&mut plain, &reader.schema()).expect("ipc writer");
        for batch in reader {
            writer.write(&batch.expect("batch")).expect("write batch");
        }
        writer.finish().expect("finish ipc");
        drop(writer);
        seeds.push(("fragment", format!("fragment-{}", f.id), bytes));
        seeds.push(("fragment", format!("fragment-{}-no-checksums", f.id), plain));
    }
    for index in &manifest.indexes {
        seeds.push(("index_file", "model".into(), read(&index.model.file)));
        for (i, s) in index.segments.iter().enumerate() {
            seeds.push(("index_file", format!("segment-{i}"), read(&s.file)));
        }
    }
    seeds
}
