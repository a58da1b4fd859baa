//! The names of the files a dataset's writers create, in one place: the writers take their
//! names from here, and `vecfusion_cleanup` removes only files whose names these functions
//! could have produced, directly inside the dataset's own directories. Anything else under the
//! dataset root (another dataset nested in it, a user's file) is never touched.
//!
//! ```text
//! data/<32 hex>.arrow                fragments
//! _deletions/<fragment id>-<32 hex>.bin   deletion vectors
//! _indexes/<32 hex>.model.vfidx      index models (format 2)
//! _indexes/<32 hex>.segment.vfidx    index segments (format 2)
//! _indexes/<name>-<32 hex>.vfidx     format-1 index files (read, never written now)
//! ```

/// Directories that hold data files (manifests live in `_versions`, see `versions`).
pub const DATA_DIRS: [&str; 3] = ["data", "_deletions", "_indexes"];

/// A unique file name component (128 random bits, hex).
fn random_name() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub fn new_fragment_file() -> String {
    format!("data/{}.arrow", random_name())
}

pub fn new_deletion_file(fragment_id: u32) -> String {
    format!("_deletions/{fragment_id}-{}.bin", random_name())
}

/// A new model id (also the model file's name).
pub fn new_model_id() -> String {
    random_name()
}

pub fn model_file(model_id: &str) -> String {
    format!("_indexes/{model_id}.model.vfidx")
}

pub fn new_segment_file() -> String {
    format!("_indexes/{}.segment.vfidx", random_name())
}

fn is_random_name(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `name`, a file directly inside `dir` (one of [`DATA_DIRS`]), is named as this
/// dataset's writers name their files.
pub fn is_writer_file(dir: &str, name: &str) -> bool {
    match dir {
        "data" => name.strip_suffix(".arrow").is_some_and(is_random_name),
        "_deletions" => name
            .strip_suffix(".bin")
            .and_then(|stem| stem.split_once('-'))
            .is_some_and(|(id, random)| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && is_random_name(random)
            }),
        "_indexes" => {
            let Some(stem) = name.strip_suffix(".vfidx") else {
                return false;
            };
            let format_two = stem
                .strip_suffix(".model")
                .or_else(|| stem.strip_suffix(".segment"))
                .is_some_and(is_random_name);
            // Format 1 wrote `<index name>-<32 hex>.vfidx`.
            let format_one = stem
                .rsplit_once('-')
                .is_some_and(|(n, random)| !n.is_empty() && is_random_name(random));
            format_two || format_one
        }
        _ => false,
    }
}

/// Whether `name` is the staging file of an interrupted local write of a writer file:
/// `object_store`'s local store writes `<file>#<n>` and renames it into place when the
/// upload completes, so a killed writer leaves the `#<n>` file behind.
pub fn is_staging_file(dir: &str, name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(file, n)| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && is_writer_file(dir, file)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_are_recognised_and_nothing_else_is() {
        let strip = |f: String| {
            f.split_once('/')
                .map(|(d, n)| (d.to_string(), n.to_string()))
                .unwrap()
        };
        for (dir, name) in [
            strip(new_fragment_file()),
            strip(new_deletion_file(7)),
            strip(model_file(&new_model_id())),
            strip(new_segment_file()),
        ] {
            assert!(is_writer_file(&dir, &name), "{dir}/{name}");
            assert!(
                is_staging_file(&dir, &format!("{name}#3")),
                "{dir}/{name}#3"
            );
            assert!(!is_staging_file(&dir, &name));
            assert!(!is_writer_file("_versions", &name));
        }
        assert!(is_writer_file(
            "_indexes",
            "pq-b26981c8a8660af03f481f5d3a586be4.vfidx"
        ));
        for (dir, name) in [
            ("data", "notes.txt"),
            ("data", "inner"),
            ("data", "0123.arrow"),
            ("data", "x.arrow#1"),
            ("_deletions", "a-0123456789abcdef0123456789abcdef.bin"),
            ("_indexes", "model.vfidx"),
            ("_indexes", "readme-.vfidx"),
            ("_indexes", "items_idx-4.vfidx"),
            ("data", &format!("{}.arrow#", "0".repeat(32))),
        ] {
            assert!(
                !is_writer_file(dir, name) && !is_staging_file(dir, name),
                "{dir}/{name}"
            );
        }
    }
}
