//! Progress of long work: a bar on a terminal, plain lines otherwise.
//!
//! When stderr is a terminal, [`Progress`] is an `indicatif` bar. When it is not (a log file,
//! CI, `nohup`), the bar would draw nothing, so [`Progress`] prints one plain line to stderr
//! on the first update, then at most one every [`interval`] (`PCLL_PROGRESS_EVERY` seconds,
//! default 10; `0` prints every update), and one when the work finishes:
//!
//! ```text
//! train 120/400 loss 4.1234 | 5321 tok/s (1m02s elapsed, ETA 2m25s)
//! ```

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds between plain progress lines, from `PCLL_PROGRESS_EVERY`.
pub const INTERVAL_ENV: &str = "PCLL_PROGRESS_EVERY";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How often plain lines are printed: `PCLL_PROGRESS_EVERY` seconds (fractions allowed), or
/// 10 s when it is unset or not a number of seconds.
pub fn interval() -> Duration {
    std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_INTERVAL)
}

/// A bar on a terminal, timed plain lines elsewhere.
pub struct Progress {
    bar: ProgressBar,
    /// `Some` when stderr is not a terminal.
    plain: Option<Mutex<Plain>>,
}

struct Plain {
    what: String,
    len: u64,
    pos: u64,
    /// Position when timing started (a resumed run starts part way).
    start_pos: u64,
    msg: String,
    start: Instant,
    /// When the last line was printed, and at which position.
    last: Option<(Instant, u64)>,
    every: Duration,
}

impl Plain {
    fn line(&self) -> String {
        let elapsed = self.start.elapsed();
        let done = self.pos.saturating_sub(self.start_pos);
        let eta = if done > 0 && self.len > self.pos {
            let per = elapsed.as_secs_f64() / done as f64;
            format!(", ETA {}", clock(per * (self.len - self.pos) as f64))
        } else {
            String::new()
        };
        let msg = if self.msg.is_empty() {
            String::new()
        } else {
            format!(" {}", self.msg)
        };
        format!(
            "{} {}/{}{msg} ({} elapsed{eta})",
            self.what,
            self.pos,
            self.len,
            clock(elapsed.as_secs_f64())
        )
    }

    fn maybe_print(&mut self) {
        let due = match self.last {
            None => true,
            Some((t, p)) => p != self.pos && t.elapsed() >= self.every,
        };
        if due {
            self.print();
        }
    }

    fn print(&mut self) {
        eprintln!("{}", self.line());
        self.last = Some((Instant::now(), self.pos));
    }
}

/// `42s`, `3m05s`, `1h02m`.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Progress over `len` steps of `what`.
pub fn bar(len: u64, what: &str) -> Progress {
    Progress::new(len, what, !std::io::stderr().is_terminal())
}

impl Progress {
    /// `plain`: print timed lines instead of drawing a bar.
    pub fn new(len: u64, what: &str, plain: bool) -> Progress {
        if plain {
            return Progress {
                bar: ProgressBar::hidden(),
                plain: Some(Mutex::new(Plain {
                    what: what.to_string(),
                    len,
                    pos: 0,
                    start_pos: 0,
                    msg: String::new(),
                    start: Instant::now(),
                    last: None,
                    every: interval(),
                })),
            };
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_prefix(what.to_string());
        Progress {
            bar: pb,
            plain: None,
        }
    }

    fn with_plain(&self, f: impl FnOnce(&mut Plain)) {
        if let Some(p) = &self.plain {
            if let Ok(mut p) = p.lock() {
                f(&mut p);
            }
        }
    }

    /// Where the work starts (a resumed run): timing and the ETA count from here.
    pub fn start_at(&self, pos: u64) {
        self.bar.set_position(pos);
        self.with_plain(|p| {
            p.pos = pos;
            p.start_pos = pos;
            p.start = Instant::now();
        });
    }

    /// The message shown with the next position (set it before [`Progress::set_position`]).
    pub fn set_message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        self.with_plain(|p| p.msg.clone_from(&msg));
        self.bar.set_message(msg);
    }

    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
        self.with_plain(|p| {
            p.pos = pos;
            p.maybe_print();
        });
    }

    /// `n` more steps to go than first said.
    pub fn inc_length(&self, n: u64) {
        self.bar.inc_length(n);
        self.with_plain(|p| p.len += n);
    }

    /// One step further.
    pub fn inc(&self) {
        self.bar.inc(1);
        self.with_plain(|p| {
            p.pos += 1;
            p.maybe_print();
        });
    }

    /// Shows a new message at the same position (plain mode: at most one line an interval).
    pub fn tick(&self) {
        self.bar.tick();
        self.with_plain(|p| {
            if p.last.is_none_or(|(t, _)| t.elapsed() >= p.every) {
                p.print();
            }
        });
    }

    /// A line above the bar (or among the plain lines).
    pub fn println(&self, line: impl AsRef<str>) {
        if self.plain.is_some() {
            eprintln!("{}", line.as_ref());
        } else {
            self.bar.println(line.as_ref());
        }
    }

    /// Clears the bar; in plain mode prints the final position unless it was just printed.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        self.with_plain(|p| {
            if p.last.is_none_or(|(_, at)| at != p.pos) {
                p.print();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_can_grow() {
        for plain in [true, false] {
            let p = Progress::new(3, "x", plain);
            p.inc_length(2);
            match &p.plain {
                Some(m) => assert_eq!(m.lock().unwrap().len, 5),
                None => assert_eq!(p.bar.length(), Some(5)),
            }
        }
    }

    #[test]
    fn clock_reads_like_a_clock() {
        assert_eq!(clock(0.2), "0s");
        assert_eq!(clock(42.0), "42s");
        assert_eq!(clock(185.0), "3m05s");
        assert_eq!(clock(3720.0), "1h02m");
    }

    #[test]
    fn plain_line_has_position_message_and_eta() {
        let mut p = Plain {
            what: "train".into(),
            len: 400,
            pos: 100,
            start_pos: 0,
            msg: "loss 4.1234 | 5321 tok/s".into(),
            start: Instant::now() - Duration::from_secs(10),
            last: None,
            every: DEFAULT_INTERVAL,
        };
        let l = p.line();
        assert!(
            l.starts_with("train 100/400 loss 4.1234 | 5321 tok/s (10s elapsed, ETA 30s)"),
            "{l}"
        );
        // Nothing after the first line until the interval has passed and the position moved.
        p.print();
        let first = p.last;
        p.pos = 101;
        p.maybe_print();
        assert_eq!(p.last, first);
        p.every = Duration::ZERO;
        p.maybe_print();
        assert_ne!(p.last, first);
        assert_eq!(p.last.map(|l| l.1), Some(101));
    }
}
