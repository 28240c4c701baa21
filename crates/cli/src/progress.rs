//! Progress of long operations: plain lines (`seeded 40/100 products`) on stderr, so stdout keeps
//! only the result (and stays valid JSON with `--json`). Every line is also kept, for callers
//! that want to show or check them afterwards.

use std::fmt::Display;

/// Where progress lines go.
#[derive(Debug, Default)]
pub struct Progress {
    echo: bool,
    lines: Vec<String>,
}

impl Progress {
    /// Prints each line to stderr as it happens.
    pub fn stderr() -> Self {
        Self {
            echo: true,
            lines: Vec::new(),
        }
    }

    /// Keeps the lines without printing them.
    pub fn quiet() -> Self {
        Self::default()
    }

    /// Reports one step.
    pub fn say(&mut self, line: impl Display) {
        let line = line.to_string();
        if self.echo {
            eprintln!("{line}");
        }
        self.lines.push(line);
    }

    /// `{verb} {done}/{total} {what}`, e.g. `seeded 40/100 products`.
    pub fn step(&mut self, verb: &str, done: usize, total: usize, what: &str) {
        self.say(format_args!("{verb} {done}/{total} {what}"));
    }

    /// Every line reported so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}
