//! Progress bars for long operations: an [`orbstore_ops::Progress`] drawn with indicatif on
//! stderr, one bar per step, with the rate; nothing at all with `--json` or when stderr is not a
//! terminal (indicatif hides itself then), so scripts read clean output.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orbstore_ops::{Progress, Unit};

/// Bars on stderr, or none.
pub struct Bars {
    shown: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Bars unless `quiet` (the `--json` flag); indicatif also draws nothing when stderr is not a
    /// terminal.
    pub fn new(quiet: bool) -> Bars {
        Bars { shown: !quiet, current: Mutex::new(None) }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        // A bar is only drawn state: a panic elsewhere cannot leave it inconsistent.
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Progress for Bars {
    fn begin(&self, what: &str, total: Option<u64>, unit: Unit) {
        if !self.shown {
            return;
        }
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = match (unit, total.is_some()) {
            (Unit::Documents, true) => "{msg:<24} {bar:30} {pos}/{len} docs  {per_sec}  eta {eta}",
            (Unit::Documents, false) => "{msg:<24} {spinner} {pos} docs  {per_sec}",
            (Unit::Bytes, true) => "{msg:<24} {bar:30} {bytes}/{total_bytes}  {bytes_per_sec}",
            (Unit::Bytes, false) => "{msg:<24} {spinner} {bytes}  {bytes_per_sec}",
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_owned());
        if let Some(old) = self.slot().replace(bar) {
            old.finish();
        }
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.slot().as_ref() {
            bar.inc(n);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.slot().take() {
            bar.finish();
        }
    }

    fn wants_totals(&self) -> bool {
        self.shown && console_is_terminal()
    }
}

/// Whether stderr is a terminal (totals cost a count per collection: only worth it for a bar).
fn console_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
