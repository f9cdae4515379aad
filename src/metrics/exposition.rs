//! The metrics of a run in the Prometheus text exposition format 0.0.4, through the
//! `prometheus` crate: a [`Collector`] turns one snapshot of the run's live counters
//! ([`Stats`]) into metric families under registered descriptors, a [`Registry`] gathers them
//! (families sorted by name, series by label values, empty families left out) and the crate's
//! [`TextEncoder`] writes the text (escaping, number format, histogram buckets, `+Inf`).
//!
//! The hot loop never touches the crate: it bumps `report::Stats` (plain atomics, per record
//! and per batch), and the collector reads them only when an output asks (a scrape, the end of
//! the run). That is the crate's pattern for values kept elsewhere (a collector of constant
//! metrics, like its process collector); the crate's own counters would be atomics too, but
//! owning them here would mean a second set of counters or a rewrite of every call site.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Registry, TextEncoder};

use super::RunMeta;
use crate::records::BadReason;
use crate::report::{PartitionProgress, Stats, Summary, BATCH_SECONDS_BUCKETS};

/// The name of the last-success timestamp, which the textfile output reads back.
pub(super) const LAST_SUCCESS: &str = "pulsar2mysql_last_success_timestamp_seconds";

/// Every bad-record reason, so each series exists (at 0) from the start.
const BAD_REASONS: [BadReason; 9] = [
    BadReason::FieldCount,
    BadReason::InvalidUtf8,
    BadReason::InvalidValue,
    BadReason::OutOfRange,
    BadReason::TooLong,
    BadReason::NullNotAllowed,
    BadReason::Malformed,
    BadReason::Chunked,
    BadReason::TooLarge,
];

use MetricType::{COUNTER, GAUGE, HISTOGRAM};

/// Every metric family a run can expose: name, type, HELP text, and the label a series of it
/// carries besides `job_id`, `topic` and `table`. Dashboards and tests rely on the names, the
/// types, the labels and the HELP texts; change none without saying so.
const FAMILIES: [(&str, MetricType, &str, Option<&str>); 22] = [
    ("pulsar2mysql_build_info", GAUGE, "Version of the pulsar2mysql binary (always 1).", Some("version")),
    ("pulsar2mysql_running", GAUGE, "1 while the run is in progress, 0 once it has ended.", None),
    ("pulsar2mysql_run_start_timestamp_seconds", GAUGE, "When the run started, seconds since the Unix epoch.", None),
    ("pulsar2mysql_run_duration_seconds", GAUGE, "How long the run took (so far, while it runs), seconds.", None),
    ("pulsar2mysql_records_read_total", COUNTER, "Messages read inside the range.", None),
    ("pulsar2mysql_bytes_read_total", COUNTER, "Payload bytes of the messages read.", None),
    ("pulsar2mysql_rows_converted_total", COUNTER, "Records converted to rows.", None),
    ("pulsar2mysql_rows_written_total", COUNTER, "Rows the MySQL server inserted (committed).", None),
    ("pulsar2mysql_duplicates_skipped_total", COUNTER, "Rows whose key already existed (kept by ignore-duplicates, updated by upsert).", None),
    ("pulsar2mysql_dead_lettered_total", COUNTER, "Bad records stored in p2m_dead_letter.", None),
    ("pulsar2mysql_batches_total", COUNTER, "Batches (transactions) handed to the writer.", None),
    ("pulsar2mysql_retries_total", COUNTER, "Write retries and source reconnects after transient failures.", None),
    ("pulsar2mysql_bad_records_total", COUNTER, "Records that could not become a row, by reason.", Some("reason")),
    ("pulsar2mysql_partition_records_read", GAUGE, "Records read from one partition so far (updated per batch).", Some("partition")),
    ("pulsar2mysql_partition_lag_seconds", GAUGE, "Publish time between the partition's last message read and its end bound (0 when done).", Some("partition")),
    ("pulsar2mysql_partition_done", GAUGE, "1 once the partition reached its end bound.", Some("partition")),
    ("pulsar2mysql_batch_duration_seconds", HISTOGRAM, "From a batch's last row to its commit (rows, dead letters, checkpoint), retries included.", None),
    ("pulsar2mysql_run_end_timestamp_seconds", GAUGE, "When the run ended, seconds since the Unix epoch.", None),
    ("pulsar2mysql_exit_code", GAUGE, "Exit code of the run (0 success, 3 source, 4 sink, 5 bad records, 6 locked, 130 interrupted).", None),
    ("pulsar2mysql_outcome", GAUGE, "Outcome of the run as a label (always 1).", Some("outcome")),
    ("pulsar2mysql_rows_per_second", GAUGE, "Rows written (converted, with --dry-run) per second of the whole run.", None),
    (LAST_SUCCESS, GAUGE, "When the last successful run of this job ended, seconds since the Unix epoch.", None),
];

/// Where [`Stats`] keeps a counter.
type ReadCounter = fn(&Stats) -> u64;

/// A per-partition gauge's value for a partition, if it has one yet.
type PartitionValue = fn(&PartitionProgress) -> Option<f64>;

/// The eight plain counters, in [`FAMILIES`] order, and where [`Stats`] keeps each.
const COUNTERS: [(&str, ReadCounter); 8] = [
    ("pulsar2mysql_records_read_total", |s| {
        s.records_read.load(Relaxed)
    }),
    ("pulsar2mysql_bytes_read_total", |s| {
        s.bytes_read.load(Relaxed)
    }),
    ("pulsar2mysql_rows_converted_total", |s| {
        s.rows_converted.load(Relaxed)
    }),
    ("pulsar2mysql_rows_written_total", |s| {
        s.rows_written.load(Relaxed)
    }),
    ("pulsar2mysql_duplicates_skipped_total", |s| {
        s.duplicates.load(Relaxed)
    }),
    ("pulsar2mysql_dead_lettered_total", |s| {
        s.dead_lettered.load(Relaxed)
    }),
    ("pulsar2mysql_batches_total", |s| s.batches.load(Relaxed)),
    ("pulsar2mysql_retries_total", |s| s.retries.load(Relaxed)),
];

/// The three per-partition gauges and their value for a partition (if any yet).
const PER_PARTITION: [(&str, PartitionValue); 3] = [
    ("pulsar2mysql_partition_records_read", |p| {
        Some(p.records_read as f64)
    }),
    ("pulsar2mysql_partition_lag_seconds", |p| p.lag_seconds()),
    ("pulsar2mysql_partition_done", |p| {
        Some(if p.done { 1.0 } else { 0.0 })
    }),
];

/// What the run had ended with, for the end-of-run families.
struct Ended {
    end: f64,
    exit_code: i32,
    outcome: String,
    rows_per_sec: f64,
}

/// One read of a run's counters, taken when an output renders: every family of one
/// exposition comes from it.
struct Snapshot {
    started: f64,
    duration: f64,
    counters: [u64; 8],
    bad_by_reason: BTreeMap<String, u64>,
    partitions: Vec<(i32, PartitionProgress)>,
    /// Cumulative counts per bucket of [`BATCH_SECONDS_BUCKETS`], the last one +Inf.
    batch_buckets: Vec<u64>,
    batch_sum: f64,
    ended: Option<Ended>,
    last_success: Option<f64>,
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Snapshot {
    /// Reads the counters now. `last_success` is replaced by the run's own end when it
    /// succeeded.
    fn take(
        stats: &Stats,
        meta: &RunMeta,
        ended: Option<&Summary>,
        last_success: Option<f64>,
    ) -> Snapshot {
        let mut bad_by_reason: BTreeMap<String, u64> = BAD_REASONS
            .iter()
            .map(|r| (r.as_str().to_string(), 0))
            .collect();
        bad_by_reason.extend(stats.bad_by_reason());
        let (batch_buckets, batch_sum) = stats.batch_seconds.snapshot();
        let duration = match ended {
            Some(s) => s.duration_ms as f64 / 1000.0,
            None => meta.clock.elapsed().as_secs_f64(),
        };
        let ended = ended.map(|s| Ended {
            end: chrono::DateTime::parse_from_rfc3339(&s.ended_at)
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
                .unwrap_or_else(|_| unix_secs(SystemTime::now())),
            exit_code: s.exit_code,
            outcome: s.outcome.clone(),
            rows_per_sec: s.rows_per_sec,
        });
        Snapshot {
            started: unix_secs(meta.started),
            duration,
            counters: COUNTERS.map(|(_, read)| read(stats)),
            bad_by_reason,
            partitions: stats.partitions(),
            batch_buckets,
            batch_sum,
            last_success: match &ended {
                Some(e) if e.exit_code == 0 => Some(e.end),
                _ => last_success,
            },
            ended,
        }
    }
}

/// The run's metric families, from one [`Snapshot`], under one descriptor per family of
/// [`FAMILIES`] (validated by the registry when the collector is registered).
struct RunCollector {
    descs: Vec<Desc>,
    /// `job_id`, `topic`, `table`: the labels of every series, in this order.
    labels: Vec<LabelPair>,
    snap: Snapshot,
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_string());
    pair.set_value(value.to_string());
    pair
}

impl RunCollector {
    fn new(meta: &RunMeta, snap: Snapshot) -> prometheus::Result<RunCollector> {
        let labels = vec![
            label("job_id", &meta.job_id),
            label("topic", &meta.topic),
            label("table", &meta.table),
        ];
        let constant: HashMap<String, String> = labels
            .iter()
            .map(|l| (l.name().to_string(), l.value().to_string()))
            .collect();
        let descs = FAMILIES
            .iter()
            .map(|(name, _, help, extra)| {
                let variable = extra.iter().map(|l| l.to_string()).collect();
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    variable,
                    constant.clone(),
                )
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(RunCollector {
            descs,
            labels,
            snap,
        })
    }

    /// One series: the run's labels, then `extra`, and its value as the family's type wants it.
    fn series(&self, kind: MetricType, extra: Option<(&str, &str)>, value: f64) -> Metric {
        let mut labels = self.labels.clone();
        labels.extend(extra.map(|(n, v)| label(n, v)));
        let mut metric = Metric::from_label(labels);
        match kind {
            COUNTER => {
                let mut c = proto::Counter::default();
                c.set_value(value);
                metric.set_counter(c);
            }
            _ => {
                let mut g = proto::Gauge::default();
                g.set_value(value);
                metric.set_gauge(g);
            }
        }
        metric
    }

    /// The family `name` with one series per `(extra label value, value)`; its type, HELP and
    /// extra label's name come from [`FAMILIES`].
    fn family(&self, name: &str, values: Vec<(Option<String>, f64)>) -> Option<MetricFamily> {
        let i = FAMILIES.iter().position(|f| f.0 == name);
        debug_assert!(i.is_some(), "{name} is not in FAMILIES");
        let (_, kind, _, extra) = FAMILIES[i?];
        let metrics = values
            .into_iter()
            .map(|(v, value)| self.series(kind, extra.zip(v.as_deref()), value))
            .collect();
        Some(self.family_of(i?, metrics))
    }

    fn family_of(&self, i: usize, metrics: Vec<Metric>) -> MetricFamily {
        let mut mf = MetricFamily::default();
        mf.set_name(self.descs[i].fq_name.clone());
        mf.set_help(self.descs[i].help.clone());
        mf.set_field_type(FAMILIES[i].1);
        mf.set_metric(metrics);
        mf
    }

    /// What a run exposes from its start: build, state, start time and duration.
    fn run_families(&self) -> Vec<Option<MetricFamily>> {
        let s = &self.snap;
        let version = Some(env!("CARGO_PKG_VERSION").to_string());
        vec![
            self.family("pulsar2mysql_build_info", vec![(version, 1.0)]),
            self.family(
                "pulsar2mysql_running",
                vec![(None, if s.ended.is_none() { 1.0 } else { 0.0 })],
            ),
            self.family(
                "pulsar2mysql_run_start_timestamp_seconds",
                vec![(None, s.started)],
            ),
            self.family(
                "pulsar2mysql_run_duration_seconds",
                vec![(None, s.duration)],
            ),
        ]
    }

    /// The counters, bad records by reason included.
    fn counter_families(&self) -> Vec<Option<MetricFamily>> {
        let s = &self.snap;
        let mut out: Vec<_> = COUNTERS
            .iter()
            .zip(s.counters)
            .map(|((name, _), n)| self.family(name, vec![(None, n as f64)]))
            .collect();
        let by_reason = s
            .bad_by_reason
            .iter()
            .map(|(reason, n)| (Some(reason.clone()), *n as f64))
            .collect();
        out.push(self.family("pulsar2mysql_bad_records_total", by_reason));
        out
    }

    /// The per-partition gauges: a series per partition that has a value yet.
    fn partition_families(&self) -> Vec<Option<MetricFamily>> {
        PER_PARTITION
            .iter()
            .map(|(name, value)| {
                let series = self
                    .snap
                    .partitions
                    .iter()
                    .filter_map(|(index, p)| value(p).map(|v| (Some(index.to_string()), v)))
                    .collect();
                self.family(name, series)
            })
            .collect()
    }

    /// The batch latency histogram (the encoder adds the `+Inf` bucket, equal to the count).
    fn histogram_family(&self) -> Option<MetricFamily> {
        let name = "pulsar2mysql_batch_duration_seconds";
        let i = FAMILIES.iter().position(|f| f.0 == name)?;
        let s = &self.snap;
        let mut h = proto::Histogram::default();
        h.set_bucket(
            BATCH_SECONDS_BUCKETS
                .iter()
                .zip(&s.batch_buckets)
                .map(|(bound, count)| {
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(*count);
                    b
                })
                .collect(),
        );
        h.set_sample_count(s.batch_buckets.last().copied().unwrap_or(0));
        h.set_sample_sum(s.batch_sum);
        let mut metric = Metric::from_label(self.labels.clone());
        metric.set_histogram(h);
        Some(self.family_of(i, vec![metric]))
    }

    /// Once the run has ended: its end, exit code, outcome and rate; and the last success
    /// (this run's end, or an earlier run's), when known.
    fn end_families(&self) -> Vec<Option<MetricFamily>> {
        let mut out = Vec::new();
        if let Some(e) = &self.snap.ended {
            out.extend([
                self.family(
                    "pulsar2mysql_run_end_timestamp_seconds",
                    vec![(None, e.end)],
                ),
                self.family(
                    "pulsar2mysql_exit_code",
                    vec![(None, f64::from(e.exit_code))],
                ),
                self.family("pulsar2mysql_outcome", vec![(Some(e.outcome.clone()), 1.0)]),
                self.family("pulsar2mysql_rows_per_second", vec![(None, e.rows_per_sec)]),
            ]);
        }
        if let Some(t) = self.snap.last_success {
            out.push(self.family(LAST_SUCCESS, vec![(None, t)]));
        }
        out
    }
}

impl Collector for RunCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = self.run_families();
        out.extend(self.counter_families());
        out.extend(self.partition_families());
        out.push(self.histogram_family());
        out.extend(self.end_families());
        out.into_iter().flatten().collect()
    }
}

/// The metrics of a run in the text exposition format. `ended` is the run's summary once it
/// has ended (adds outcome, exit code and end time); `last_success` is the end time of the
/// last successful run of the job, if known (set from `ended` when it succeeded).
///
/// Families come sorted by name. A family with no series yet (the per-partition ones before
/// the first partition reports) is left out.
pub fn render(
    stats: &Stats,
    meta: &RunMeta,
    ended: Option<&Summary>,
    last_success: Option<f64>,
) -> String {
    let snap = Snapshot::take(stats, meta, ended, last_success);
    let registry = Registry::new();
    let registered =
        RunCollector::new(meta, snap).and_then(|collector| registry.register(Box::new(collector)));
    let mut out = String::with_capacity(8192);
    let encoded =
        registered.and_then(|()| TextEncoder::new().encode_utf8(&registry.gather(), &mut out));
    if let Err(e) = encoded {
        // Only a malformed descriptor can get here, which the unit tests rule out.
        tracing::warn!(error = %e, "cannot render the metrics");
    }
    out
}

#[cfg(test)]
mod tests;
