//! Progress bars for long statements (index builds, ADD COLUMN, INSERT), drawn on stderr with indicatif. Nothing
//! is drawn when stderr is not a terminal, so scripts and CSV output stay clean.

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};

use vecfusion::progress::{ProgressEvent, ProgressHook};

/// A hook that shows one bar per phase of a build.
pub fn progress_bars() -> ProgressHook {
    let current: Arc<Mutex<Option<(&'static str, ProgressBar)>>> = Arc::new(Mutex::new(None));
    ProgressHook::new(move |e: &ProgressEvent| {
        let mut cur = current.lock().expect("progress lock");
        if cur.as_ref().map(|(p, _)| *p) != Some(e.phase) {
            if let Some((_, bar)) = cur.take() {
                bar.finish();
            }
            // A total of 0 means the amount of work is not known up front (an INSERT counts
            // the rows it wrote): a counter instead of a bar.
            let (bar, template) = if e.total == 0 {
                (
                    ProgressBar::no_length(),
                    "{msg:>16} {spinner} {pos} {prefix} ({elapsed})",
                )
            } else {
                (
                    ProgressBar::new(e.total),
                    "{msg:>16} [{bar:40.cyan/blue}] {pos}/{len} {prefix} ({elapsed})",
                )
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(e.phase);
            bar.set_prefix(e.unit);
            *cur = Some((e.phase, bar));
        }
        if let Some((_, bar)) = cur.as_ref() {
            if e.total > 0 {
                bar.set_length(e.total.max(e.done));
            }
            bar.set_position(e.done);
            if e.phase == "commit" {
                bar.finish_and_clear();
            }
        }
    })
}
