//! What the sweep prints while it runs: a progress bar, lines above it, and the time left.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of the sweep's runs on stderr (hidden when stderr is not a terminal: then
/// the lines printed through [`say`] are the progress).
pub(super) fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs, {elapsed} so far, about {eta} left: {msg}",
        )
        .expect("a valid template"),
    );
    bar
}

/// Prints a line above the progress bar, or to stderr when there is no bar.
pub(super) fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Elapsed and left, from the expected seconds of the runs done and of those left: the
/// machine's pace so far (elapsed over expected) applied to what is left, so that larger
/// sizes later in the sweep count for what they cost. Before any run, the expectation alone.
pub(super) fn eta(elapsed: Duration, expected_done: f64, expected_left: f64) -> String {
    let pace = if expected_done > 0.0 {
        elapsed.as_secs_f64() / expected_done
    } else {
        1.0
    };
    format!(
        "{:.0} s so far, about {:.0} min left",
        elapsed.as_secs_f64(),
        (expected_left * pace / 60.0).ceil()
    )
}
