//! What a run tells the world: live counters shared by the pipeline's tasks, and the JSON
//! summary printed as the last line of stdout (Airflow's BashOperator pushes it to XCom).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::WriteStrategy;
use crate::range::ResolvedRange;
use crate::records::BadReason;

/// Counters updated by every partition task; cheap to bump from the hot loop.
#[derive(Debug, Default)]
pub struct Stats {
    pub records_read: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Broker entries the records came in (a batch of messages is one entry).
    pub entries_read: AtomicU64,
    pub rows_converted: AtomicU64,
    pub rows_written: AtomicU64,
    pub duplicates: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub bad_total: AtomicU64,
    bad_by_reason: Mutex<BTreeMap<BadReason, u64>>,
    /// From a batch's last row to its commit (rows, dead letters and checkpoint), retries
    /// included: the write time that reading does not hide.
    pub batch_seconds: Histogram,
    /// Where the run's time went (the summary's `timing`).
    pub timing: Timing,
    partitions: Mutex<BTreeMap<i32, PartitionProgress>>,
}

/// Where a run's time goes, for the summary's `timing`: the time budget that explains a run
/// slower than the server's own LOAD DATA (BENCHMARKS.md). Marks are microseconds since the
/// counters were made (the run's start), plus one so that 0 means "not yet"; sums are
/// microseconds. Marked per batch or per partition, never per record.
#[derive(Debug)]
pub struct Timing {
    origin: Instant,
    pulsar_setup: AtomicU64,
    mysql_setup: AtomicU64,
    first_record: AtomicU64,
    first_write: AtomicU64,
    reading_done: AtomicU64,
    load_input_wait: AtomicU64,
    lockstep_held: AtomicU64,
    commit: AtomicU64,
    commit_max: AtomicU64,
    commits: AtomicU64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            origin: Instant::now(),
            pulsar_setup: AtomicU64::new(0),
            mysql_setup: AtomicU64::new(0),
            first_record: AtomicU64::new(0),
            first_write: AtomicU64::new(0),
            reading_done: AtomicU64::new(0),
            load_input_wait: AtomicU64::new(0),
            lockstep_held: AtomicU64::new(0),
            commit: AtomicU64::new(0),
            commit_max: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }
    }
}

/// The moments and sums of [`Timing`] a run reports.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    /// The Pulsar side is ready: connected, partitions and end snapshots known, readers open.
    PulsarSetup,
    /// The MySQL side is ready: connected, migrations, schema, job lock, checkpoints.
    MysqlSetup,
    /// The first record was read.
    FirstRecord,
    /// The last partition was read to its end.
    ReadingDone,
}

impl Timing {
    fn offset(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_micros() as u64 + 1
    }

    /// Records `mark` at `at`: the first time for a start, the latest for an end.
    pub fn mark(&self, mark: Mark, at: Instant) {
        let offset = self.offset(at);
        match mark {
            Mark::PulsarSetup => self.pulsar_setup.fetch_max(offset, Relaxed),
            Mark::MysqlSetup => self.mysql_setup.fetch_max(offset, Relaxed),
            Mark::ReadingDone => self.reading_done.fetch_max(offset, Relaxed),
            Mark::FirstRecord => {
                let _ = self
                    .first_record
                    .compare_exchange(0, offset, Relaxed, Relaxed);
                0
            }
        };
    }

    /// Records a committed batch: when its statement first went to the server, how long the
    /// statement waited for the readers' rows, and how long its COMMIT took.
    pub fn batch(&self, first_write: Option<Instant>, input_wait: Duration, commit: Duration) {
        if let Some(at) = first_write {
            let offset = self.offset(at);
            let _ = self.first_write.fetch_update(Relaxed, Relaxed, |v| {
                (v == 0 || offset < v).then_some(offset)
            });
        }
        self.load_input_wait
            .fetch_add(input_wait.as_micros() as u64, Relaxed);
        let commit = commit.as_micros() as u64;
        self.commit.fetch_add(commit, Relaxed);
        self.commit_max.fetch_max(commit, Relaxed);
        self.commits.fetch_add(1, Relaxed);
    }

    /// Records how long a write stream's readers were held back, in lockstep, by a partition
    /// the broker had not served yet: the part of the input waits reading in step costs.
    pub fn lockstep_held(&self, held: Duration) {
        self.lockstep_held
            .fetch_add(held.as_micros() as u64, Relaxed);
    }

    /// The budget as reported, the run having ended now.
    pub fn report(&self) -> TimingReport {
        let at = |a: &AtomicU64| match a.load(Relaxed) {
            0 => None,
            v => Some(ms(v - 1)),
        };
        let total = self.origin.elapsed().as_micros() as u64;
        let done = self.reading_done.load(Relaxed);
        TimingReport {
            pulsar_setup_ms: at(&self.pulsar_setup),
            mysql_setup_ms: at(&self.mysql_setup),
            first_record_ms: at(&self.first_record),
            first_write_ms: at(&self.first_write),
            reading_done_ms: at(&self.reading_done),
            tail_ms: (done > 0).then(|| ms(total.saturating_sub(done - 1))),
            load_input_wait_ms: ms(self.load_input_wait.load(Relaxed)),
            lockstep_held_ms: ms(self.lockstep_held.load(Relaxed)),
            commits: self.commits.load(Relaxed),
            commit_ms: ms(self.commit.load(Relaxed)),
            commit_max_ms: ms(self.commit_max.load(Relaxed)),
            total_ms: ms(total),
        }
    }
}

/// Microseconds as milliseconds with one decimal.
fn ms(micros: u64) -> f64 {
    (micros / 100) as f64 / 10.0
}

/// The summary's `timing`: milliseconds since the run started (`*_ms` of a moment) or spent
/// (sums). `None`: the moment never came (nothing read, nothing written).
#[derive(Debug, Clone, Serialize, Default)]
pub struct TimingReport {
    pub pulsar_setup_ms: Option<f64>,
    pub mysql_setup_ms: Option<f64>,
    pub first_record_ms: Option<f64>,
    /// The first batch's statement sent to the server.
    pub first_write_ms: Option<f64>,
    /// The last partition read to its end.
    pub reading_done_ms: Option<f64>,
    /// From the end of reading to the end of the run: the last batch's write and COMMIT,
    /// closing.
    pub tail_ms: Option<f64>,
    /// Summed over batches: LOAD DATA statements open on the server, waiting for rows.
    pub load_input_wait_ms: f64,
    /// Summed over write streams: wall time their readers, holding rows, waited for a
    /// partition the broker had not served yet (the lockstep's hold, at most 250 ms at a
    /// time), so that input waits from reading in step tell apart from a slow broker.
    pub lockstep_held_ms: f64,
    pub commits: u64,
    /// Summed over batches, and the longest.
    pub commit_ms: f64,
    pub commit_max_ms: f64,
    pub total_ms: f64,
}

/// How far one partition has come, for the per-partition metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PartitionProgress {
    pub records_read: u64,
    /// Publish time (epoch ms) of the last message read.
    pub last_publish_time: Option<i64>,
    /// The end bound as an instant (epoch ms): `--to`, or the run's start for `latest`.
    pub end_time: i64,
    pub done: bool,
}

impl PartitionProgress {
    /// Seconds of publish time between the last message read and the end bound; `None` before
    /// the first message, 0 once the partition is done.
    pub fn lag_seconds(&self) -> Option<f64> {
        if self.done {
            return Some(0.0);
        }
        self.last_publish_time
            .map(|t| ((self.end_time - t).max(0)) as f64 / 1000.0)
    }
}

/// Upper bounds (seconds) of the batch latency buckets.
pub const BATCH_SECONDS_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A lock-free fixed-bucket histogram, rendered as a Prometheus histogram by the metrics
/// outputs.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket of [`BATCH_SECONDS_BUCKETS`], plus one for +Inf.
    buckets: [AtomicU64; 13],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        let i = BATCH_SECONDS_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BATCH_SECONDS_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6).round() as u64, Relaxed);
    }

    /// Cumulative counts per bucket (the last one is +Inf, i.e. the total count) and the sum.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut acc = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Relaxed);
                acc
            })
            .collect();
        (cumulative, self.sum_micros.load(Relaxed) as f64 / 1e6)
    }
}

impl Stats {
    /// Counts one bad record; returns the total so far.
    pub fn bad_record(&self, reason: BadReason) -> u64 {
        *self
            .bad_by_reason
            .lock()
            .expect("stats lock")
            .entry(reason)
            .or_default() += 1;
        self.bad_total.fetch_add(1, Relaxed) + 1
    }

    /// Updates one partition's progress (called per batch, not per record).
    pub fn partition_progress(&self, partition: i32, update: impl FnOnce(&mut PartitionProgress)) {
        update(
            self.partitions
                .lock()
                .expect("stats lock")
                .entry(partition)
                .or_default(),
        );
    }

    /// Every partition's progress, by partition index.
    pub fn partitions(&self) -> Vec<(i32, PartitionProgress)> {
        self.partitions
            .lock()
            .expect("stats lock")
            .iter()
            .map(|(p, v)| (*p, *v))
            .collect()
    }

    /// Bad records so far, by reason label.
    pub fn bad_by_reason(&self) -> BTreeMap<String, u64> {
        self.bad_by_reason
            .lock()
            .expect("stats lock")
            .iter()
            .map(|(r, n)| (r.as_str().to_string(), *n))
            .collect()
    }
}

/// The range as given on the command line and as resolved per partition.
#[derive(Debug, Clone, Serialize)]
pub struct RangeReport {
    pub from: String,
    pub to: String,
    pub partitions: Vec<ResolvedRange>,
}

/// The one JSON object a run prints last on stdout. Field meanings are in the README.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub job_id: String,
    pub topic: String,
    pub table: String,
    pub range: RangeReport,
    pub dry_run: bool,
    /// How rows were written (`insert` or `load-data`); absent when the run stopped before
    /// connecting to MySQL.
    pub write_strategy: Option<WriteStrategy>,
    /// The column each field of a record feeds, in field order (`-`: skipped); empty when
    /// the run stopped before reading the table.
    pub mapped_columns: Vec<String>,
    pub records_read: u64,
    pub bytes_read: u64,
    /// Broker entries taken (a batch of messages is one entry): the broker's work is per
    /// entry, so `records_read / entries_read` is what the producer's batching buys.
    pub entries_read: u64,
    pub rows_converted: u64,
    pub rows_written: u64,
    pub duplicates_skipped: u64,
    pub bad_records: u64,
    pub bad_records_by_reason: BTreeMap<String, u64>,
    pub dead_lettered: u64,
    pub batches: u64,
    pub retries: u64,
    /// Where the run's time went (see [`TimingReport`]).
    pub timing: TimingReport,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    pub rows_per_sec: f64,
    /// success | nothing_to_do | interrupted | bad_record_limit | locked | config_error |
    /// schema_error | source_unavailable | sink_unavailable
    pub outcome: String,
    pub exit_code: i32,
    /// The error, as a sentence, when the run failed.
    pub error: Option<String>,
}

impl Summary {
    /// The summary as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"outcome":"internal_error","error":"cannot serialize summary: {e}"}}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(0.001);
        h.observe(0.2);
        h.observe(100.0);
        let (buckets, sum) = h.snapshot();
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[5], 2);
        assert_eq!(*buckets.last().unwrap(), 3);
        assert!((sum - 100.201).abs() < 1e-6);
    }
}
