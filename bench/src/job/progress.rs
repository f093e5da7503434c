//! Progress on stderr: a bar on a terminal, a line per step otherwise,
//! nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(steps: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress { bar, quiet }
    }

    /// Names the step about to run.
    pub(crate) fn step(&self, msg: String) {
        match &self.bar {
            Some(bar) => bar.set_message(msg),
            None if !self.quiet => eprintln!("  {msg}"),
            None => {}
        }
    }

    /// A message that must be seen (a failure), even with `--quiet`.
    pub(crate) fn println(&self, msg: String) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    /// One step finished.
    pub(crate) fn done_one(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
