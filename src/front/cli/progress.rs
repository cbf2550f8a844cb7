//! Progress of long work: a bar with samples/s and ETA where stderr is a terminal; where it
//! is not (a log file under nohup, CI), where the bar would be invisible, a line every
//! [`LOG_EVERY_PERCENT`] per cent with the rate and the ETA instead.

use std::cell::Cell;

use indicatif::{ProgressBar, ProgressStyle};
use web_time::Instant;

use crate::engine::distill::{Event, Observer};

/// A log line every this many per cent of the work, when there is no terminal for the bar.
pub(super) const LOG_EVERY_PERCENT: u64 = 5;

/// Progress bar over the whole budget, with samples/s and ETA.
pub(super) struct Progress {
    pub(super) bar: ProgressBar,
    phase: String,
    log: Cell<Option<LogMark>>,
    /// Data-parallel runs: seconds of the steps and of their all-reduces since the message.
    sync: (f64, f64),
}

/// Where the log lines stand: since when and from how far they count, the next per cent due.
#[derive(Clone, Copy)]
struct LogMark {
    start: Instant,
    start_done: u64,
    total: u64,
    last_done: u64,
    next_percent: u64,
}

impl Progress {
    pub(super) fn new(label: &str) -> Self {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{prefix} {msg:<28} [{bar:28}] {human_pos}/{human_len} samples  {per_sec}  ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        Progress {
            bar,
            phase: String::new(),
            log: Cell::new(None),
            sync: (0.0, 0.0),
        }
    }

    /// `done` of `total` samples: the bar moves, or (no terminal) a line is due every
    /// few per cent. A new total, or a count that goes back, starts the count again.
    pub(super) fn update(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        if !self.bar.is_hidden() {
            return;
        }
        let now = Instant::now();
        let percent = |d: u64| d.min(total) * 100 / total.max(1);
        let mut m = match self.log.get() {
            Some(m) if m.total == total && done >= m.last_done => m,
            _ => LogMark {
                start: now,
                start_done: done,
                total,
                last_done: done,
                next_percent: next_mark(percent(done)),
            },
        };
        let p = percent(done);
        if p >= m.next_percent {
            let secs = now.duration_since(m.start).as_secs_f64();
            let rate = (done - m.start_done) as f64 / secs.max(1e-9);
            let eta = total.saturating_sub(done) as f64 / rate;
            eprintln!(
                "{}",
                log_line(
                    &self.bar.prefix(),
                    &self.bar.message(),
                    p,
                    done,
                    total,
                    rate,
                    eta
                )
            );
            m.next_percent = next_mark(p);
        }
        m.last_done = done;
        self.log.set(Some(m));
    }
}

/// `, 2 ranks, all-reduce 12%`: a data-parallel run's rank count and the share of the steps'
/// time spent in the gradient all-reduce (nothing in one process).
fn ranks_note(ranks: usize, (step_s, allreduce_s): (f64, f64)) -> String {
    if ranks <= 1 {
        return String::new();
    }
    let share = 100.0 * allreduce_s / step_s.max(1e-12);
    format!(", {ranks} ranks, all-reduce {share:.0}%")
}

/// The first multiple of [`LOG_EVERY_PERCENT`] above `percent`.
fn next_mark(percent: u64) -> u64 {
    (percent / LOG_EVERY_PERCENT + 1) * LOG_EVERY_PERCENT
}

/// `distill 2/3 tract-1024to32 loss 0.0123: 35% (350000/1000000 samples), 1234 samples/s, ETA 8m47s`
fn log_line(
    label: &str,
    msg: &str,
    percent: u64,
    done: u64,
    total: u64,
    rate: f64,
    eta: f64,
) -> String {
    let what = [label, msg.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{what}: {percent}% ({done}/{total} samples), {} samples/s, ETA {}",
        human_rate(rate),
        human_seconds(eta)
    )
}

/// 1234, 12.3, 0.104: three significant digits below 100, so a slow job's rate is not "0".
fn human_rate(r: f64) -> String {
    match r {
        r if r >= 99.5 => format!("{r:.0}"),
        r if r >= 9.995 => format!("{r:.1}"),
        r if r >= 0.9995 => format!("{r:.2}"),
        r => format!("{r:.3}"),
    }
}

/// 42s, 8m47s, 2h05m; `?` before there is a rate.
fn human_seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".into();
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Observer for Progress {
    fn event(&mut self, e: &Event) -> bool {
        match e {
            Event::PhaseStart {
                index, count, name, ..
            } => {
                self.phase = format!("{}/{} {name}", index + 1, count);
                self.bar.set_message(self.phase.clone());
            }
            Event::Step {
                step,
                samples_done,
                samples_total,
                loss,
                ranks,
                step_s,
                allreduce_s,
                ..
            } => {
                self.sync.0 += step_s;
                self.sync.1 += allreduce_s;
                if step % 10 == 0 {
                    let ranks = ranks_note(*ranks, self.sync);
                    self.sync = (0.0, 0.0);
                    self.bar
                        .set_message(format!("{} loss {loss:.4}{ranks}", self.phase));
                }
                self.update(*samples_done, *samples_total);
            }
            Event::PhaseEnd { path, .. } => say(&self.bar, &format!("  saved {}", path.display())),
            Event::Checkpoint { .. } | Event::Preview { .. } => {}
        }
        true
    }
}

/// A line above the progress bar, or on stderr when the bar is hidden (not a terminal).
pub(super) fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_every_few_percent_with_rate_and_eta() {
        assert_eq!(next_mark(0), LOG_EVERY_PERCENT);
        assert_eq!(next_mark(LOG_EVERY_PERCENT), 2 * LOG_EVERY_PERCENT);
        assert_eq!(next_mark(99), 100);
        assert_eq!(
            log_line(
                "distill",
                "2/3 tract-1024to32 ",
                35,
                350,
                1000,
                1234.4,
                527.0
            ),
            "distill 2/3 tract-1024to32: 35% (350/1000 samples), 1234 samples/s, ETA 8m47s"
        );
        assert_eq!(human_rate(12.34), "12.3");
        assert_eq!(human_rate(0.1041), "0.104");
        assert_eq!(human_rate(99.96), "100");
        assert_eq!(ranks_note(1, (1.0, 0.0)), "");
        assert_eq!(ranks_note(2, (2.0, 0.25)), ", 2 ranks, all-reduce 12%");
        assert_eq!(human_seconds(42.4), "42s");
        assert_eq!(human_seconds(7500.0), "2h05m");
        assert_eq!(human_seconds(f64::INFINITY), "?");
    }
}
