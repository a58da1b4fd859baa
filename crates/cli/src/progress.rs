//! Progress bars for long statements (index builds), drawn on stderr with indicatif. Nothing
//! is drawn when stderr is not a terminal, so scripts and CSV output stay clean.

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};

use vecfusion::index::{ProgressEvent, ProgressHook};

/// A hook that shows one bar per phase of a build.
pub fn progress_bars() -> ProgressHook {
    let current: Arc<Mutex<Option<(&'static str, ProgressBar)>>> = Arc::new(Mutex::new(None));
    ProgressHook::new(move |e: &ProgressEvent| {
        let mut cur = current.lock().expect("progress lock");
        if cur.as_ref().map(|(p, _)| *p) != Some(e.phase) {
            if let Some((_, bar)) = cur.take() {
                bar.finish();
            }
            let bar = ProgressBar::new(e.total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>16} [{bar:40.cyan/blue}] {pos}/{len} {prefix} ({elapsed})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(e.phase);
            bar.set_prefix(e.unit);
            *cur = Some((e.phase, bar));
        }
        if let Some((_, bar)) = cur.as_ref() {
            bar.set_length(e.total.max(e.done));
            bar.set_position(e.done);
            if e.phase == "commit" {
                bar.finish_and_clear();
            }
        }
    })
}
