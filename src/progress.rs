//! Progress of a run while it lasts: on a terminal, one line on stderr rewritten every second;
//! otherwise an info log line every 10 s (so a task log tells how the run goes). Read from the
//! run's live counters ([`Stats`]), like the metrics.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::report::Stats;

/// Whether a progress line is on the terminal now (so a log line must clear it first).
static PROGRESS_SHOWN: AtomicBool = AtomicBool::new(false);

/// Clears the progress line from the terminal if one is shown; the log writer calls it before
/// each log line so that logs and the progress line never share a line.
pub fn clear_progress_line(out: &mut impl std::io::Write) {
    if PROGRESS_SHOWN.swap(false, Relaxed) {
        let _ = out.write_all(b"\r\x1b[2K");
    }
}

/// Where a run stands at one tick.
#[derive(Debug, Clone, PartialEq)]
struct Tick {
    /// Rows written (converted, with `--dry-run`).
    rows: u64,
    /// Rows per second since the previous tick.
    rate: f64,
    records_read: u64,
    rows_written: u64,
    bad_records: u64,
    partitions_done: usize,
    partitions: usize,
    /// Publish time still to cover, summed over partitions, seconds.
    lag: f64,
    /// Seconds left at the rate the lag went down since the previous tick.
    eta: Option<f64>,
    elapsed: Duration,
}

/// What the previous tick saw, for rates.
struct Tracker {
    started: Instant,
    dry_run: bool,
    last: (Instant, u64),
    last_lag: Option<(f64, Instant)>,
}

impl Tracker {
    fn new(dry_run: bool, now: Instant) -> Tracker {
        Tracker {
            started: now,
            dry_run,
            last: (now, 0),
            last_lag: None,
        }
    }

    fn tick(&mut self, stats: &Stats, now: Instant) -> Tick {
        let rows = if self.dry_run {
            stats.rows_converted.load(Relaxed)
        } else {
            stats.rows_written.load(Relaxed)
        };
        let since = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let rate = (rows - self.last.1.min(rows)) as f64 / since;
        self.last = (now, rows);
        // Position in the range: partitions done, and the publish time still to cover summed
        // over partitions; its rate of decrease gives the ETA.
        let parts = stats.partitions();
        let lag: f64 = parts.iter().filter_map(|(_, p)| p.lag_seconds()).sum();
        let eta = match self.last_lag {
            Some((prev, at)) if prev > lag => {
                let per_sec = (prev - lag) / now.duration_since(at).as_secs_f64().max(1e-3);
                Some(lag / per_sec)
            }
            _ => None,
        };
        self.last_lag = Some((lag, now));
        Tick {
            rows,
            rate,
            records_read: stats.records_read.load(Relaxed),
            rows_written: stats.rows_written.load(Relaxed),
            bad_records: stats.bad_total.load(Relaxed),
            partitions_done: parts.iter().filter(|(_, p)| p.done).count(),
            partitions: parts.len(),
            lag,
            eta,
            elapsed: now.duration_since(self.started),
        }
    }
}

impl Tick {
    /// The terminal line (without the leading carriage return and erase).
    fn line(&self, dry_run: bool) -> String {
        format!(
            "{} rows {}, {:.0} rows/s, {} records read, partitions {}/{} done, {:.0} s of \
             publish time to go{}, {:.0} s",
            self.rows,
            if dry_run { "converted" } else { "written" },
            self.rate,
            self.records_read,
            self.partitions_done,
            self.partitions,
            self.lag,
            self.eta
                .map(|e| format!(", ETA {e:.0} s"))
                .unwrap_or_default(),
            self.elapsed.as_secs_f64()
        )
    }

    fn log(&self) {
        tracing::info!(
            records_read = self.records_read,
            rows_written = self.rows_written,
            rows_per_sec = self.rate.round() as u64,
            bad_records = self.bad_records,
            elapsed_secs = self.elapsed.as_secs(),
            partitions_done = self.partitions_done,
            partitions = self.partitions,
            lag_secs = self.lag.round() as u64,
            eta_secs = self.eta.map(|e| e.round() as u64),
            "progress"
        );
    }
}

/// Reports progress every `every` until `stop`: on a terminal, one line rewritten on stderr;
/// otherwise an info log line (so a task log tells how the run goes).
pub async fn progress(
    stats: Arc<Stats>,
    every: Duration,
    terminal: bool,
    dry_run: bool,
    stop: CancellationToken,
) {
    let mut tracker = Tracker::new(dry_run, Instant::now());
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let tick = tracker.tick(&stats, Instant::now());
        if terminal {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", tick.line(dry_run));
            let _ = err.flush();
            PROGRESS_SHOWN.store(true, Relaxed);
        } else {
            tick.log();
        }
    }
    if terminal {
        clear_progress_line(&mut std::io::stderr().lock());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_lag_and_eta_between_ticks() {
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut tracker = Tracker::new(false, t0);
        stats.partition_progress(0, |p| {
            p.end_time = 100_000;
            p.last_publish_time = Some(40_000);
        });
        stats.partition_progress(1, |p| p.done = true);
        stats.rows_written.store(500, Relaxed);
        stats.records_read.store(600, Relaxed);
        let first = tracker.tick(&stats, t0 + Duration::from_secs(1));
        assert_eq!(first.rows, 500);
        assert!((first.rate - 500.0).abs() < 1e-9);
        assert_eq!((first.partitions_done, first.partitions), (1, 2));
        assert!((first.lag - 60.0).abs() < 1e-9);
        assert_eq!(first.eta, None, "no rate of the lag yet");

        stats.rows_written.store(1500, Relaxed);
        stats.partition_progress(0, |p| p.last_publish_time = Some(70_000));
        let second = tracker.tick(&stats, t0 + Duration::from_secs(3));
        assert!((second.rate - 500.0).abs() < 1e-9);
        assert!((second.lag - 30.0).abs() < 1e-9);
        // 30 s of lag gone in 2 s: 15 s/s, so 2 s left.
        assert!((second.eta.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(
            second.line(false),
            "1500 rows written, 500 rows/s, 600 records read, partitions 1/2 done, 30 s of \
             publish time to go, ETA 2 s, 3 s"
        );
    }

    #[test]
    fn dry_run_counts_converted_rows() {
        let stats = Stats::default();
        stats.rows_converted.store(7, Relaxed);
        let t0 = Instant::now();
        let tick = Tracker::new(true, t0).tick(&stats, t0 + Duration::from_secs(1));
        assert_eq!(tick.rows, 7);
        assert!(tick.line(true).starts_with("7 rows converted, 7 rows/s"));
    }

    #[test]
    fn clearing_writes_only_when_a_line_is_shown() {
        let mut out = Vec::new();
        PROGRESS_SHOWN.store(false, Relaxed);
        clear_progress_line(&mut out);
        assert!(out.is_empty());
        PROGRESS_SHOWN.store(true, Relaxed);
        clear_progress_line(&mut out);
        assert_eq!(out, b"\r\x1b[2K");
    }
}
