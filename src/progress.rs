//! One progress display per phase: a bar on a terminal, plain log lines on stderr otherwise
//! (so that logs of a run under `nohup` or CI stay readable).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of one phase: how many items passed out of how many were tried, against a target.
pub struct PhaseProgress {
    phase: &'static str,
    passed_label: &'static str,
    target: usize,
    bar: Option<ProgressBar>,
    /// Plain lines instead of a bar (stderr is not a terminal).
    plain: bool,
    started: Instant,
}

impl PhaseProgress {
    /// `enabled = false` shows nothing (library use, tests).
    pub fn new(phase: &'static str, passed_label: &'static str, target: usize, enabled: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (enabled && terminal).then(|| {
            let bar = ProgressBar::new(target as u64);
            if let Ok(style) = ProgressStyle::with_template("{prefix} {elapsed_precise} {bar:30} {pos}/{len} {msg}") {
                bar.set_style(style);
            }
            bar.set_prefix(phase);
            bar
        });
        Self { phase, passed_label, target, bar, plain: enabled && !terminal, started: Instant::now() }
    }

    /// `done` of the target reached; `passed` of `tried` items so far; `tokens` spent since this
    /// display started.
    pub fn update(&self, done: usize, passed: usize, tried: usize, tokens: usize) {
        let rate = if tried == 0 { 0.0 } else { 100.0 * passed as f64 / tried as f64 };
        let per_second = tokens as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let message = format!("{} {passed} of {tried} tried · pass rate {rate:.0}% · {per_second:.1} tokens/s", self.passed_label);
        if let Some(bar) = &self.bar {
            bar.set_position(done.min(self.target) as u64);
            bar.set_message(message);
        } else if self.plain {
            eprintln!("[{}] {done}/{} {message}", self.phase, self.target);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
