//! Prometheus metrics of one run, rendered from the live [`Stats`] in the text exposition
//! format 0.0.4, and the three ways out: an HTTP `/metrics` endpoint served while the run lasts,
//! a push to a Pushgateway at the end, and a textfile for node_exporter's textfile collector.
//! Also the progress reporting (a terminal line every second, or an info log every 10 s).
//!
//! None of these ever changes a run's outcome or exit code: a failure is a warning.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::records::BadReason;
use crate::report::{Stats, Summary, BATCH_SECONDS_BUCKETS};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Pushgateway `job` label of every push.
pub const PUSH_JOB: &str = "pulsar2mysql";

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

const LAST_SUCCESS: &str = "pulsar2mysql_last_success_timestamp_seconds";

/// One per-partition series: name, type, help, and its value for a partition (if any yet).
type PartitionSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::report::PartitionProgress) -> Option<f64>,
);

/// What identifies a run in its metrics: the labels on every series, and when it started.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub job_id: String,
    pub topic: String,
    pub table: String,
    pub started: SystemTime,
    clock: Instant,
}

impl RunMeta {
    /// The labels of a configured run, starting now.
    pub fn new(cfg: &Config) -> RunMeta {
        RunMeta {
            job_id: cfg.job_id.clone(),
            topic: cfg.source.topic.0.clone(),
            table: cfg.sink.table.clone(),
            started: SystemTime::now(),
            clock: Instant::now(),
        }
    }

    fn labels(&self) -> String {
        format!(
            "job_id=\"{}\",topic=\"{}\",table=\"{}\"",
            escape_label(&self.job_id),
            escape_label(&self.topic),
            escape_label(&self.table)
        )
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Renders `value` the way Prometheus parses it.
fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

struct Writer<'a> {
    out: String,
    labels: &'a str,
}

impl Writer<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, extra: &str, value: impl std::fmt::Display) {
        let sep = if extra.is_empty() { "" } else { "," };
        let _ = writeln!(self.out, "{name}{{{}{sep}{extra}}} {value}", self.labels);
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help);
        self.sample(name, "", value);
    }
}

/// The metrics of a run in the text exposition format. `ended` is the run's summary once it
/// has ended (adds outcome, exit code and end time); `last_success` is the end time of the
/// last successful run of the job, if known (set from `ended` when it succeeded).
pub fn render(
    stats: &Stats,
    meta: &RunMeta,
    ended: Option<&Summary>,
    last_success: Option<f64>,
) -> String {
    let labels = meta.labels();
    let mut w = Writer {
        out: String::with_capacity(4096),
        labels: &labels,
    };
    w.head(
        "pulsar2mysql_build_info",
        "gauge",
        "Version of the pulsar2mysql binary (always 1).",
    );
    w.sample(
        "pulsar2mysql_build_info",
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        1,
    );
    w.one(
        "pulsar2mysql_running",
        "gauge",
        "1 while the run is in progress, 0 once it has ended.",
        u8::from(ended.is_none()),
    );
    w.one(
        "pulsar2mysql_run_start_timestamp_seconds",
        "gauge",
        "When the run started, seconds since the Unix epoch.",
        num(unix_secs(meta.started)),
    );
    let duration = match ended {
        Some(s) => s.duration_ms as f64 / 1000.0,
        None => meta.clock.elapsed().as_secs_f64(),
    };
    w.one(
        "pulsar2mysql_run_duration_seconds",
        "gauge",
        "How long the run took (so far, while it runs), seconds.",
        num(duration),
    );

    let counters: [(&str, &str, u64); 8] = [
        (
            "pulsar2mysql_records_read_total",
            "Messages read inside the range.",
            stats.records_read.load(Relaxed),
        ),
        (
            "pulsar2mysql_bytes_read_total",
            "Payload bytes of the messages read.",
            stats.bytes_read.load(Relaxed),
        ),
        (
            "pulsar2mysql_rows_converted_total",
            "Records converted to rows.",
            stats.rows_converted.load(Relaxed),
        ),
        (
            "pulsar2mysql_rows_written_total",
            "Rows the MySQL server inserted (committed).",
            stats.rows_written.load(Relaxed),
        ),
        (
            "pulsar2mysql_duplicates_skipped_total",
            "Rows whose key already existed (kept by ignore-duplicates, updated by upsert).",
            stats.duplicates.load(Relaxed),
        ),
        (
            "pulsar2mysql_dead_lettered_total",
            "Bad records stored in p2m_dead_letter.",
            stats.dead_lettered.load(Relaxed),
        ),
        (
            "pulsar2mysql_batches_total",
            "Batches (transactions) handed to the writer.",
            stats.batches.load(Relaxed),
        ),
        (
            "pulsar2mysql_retries_total",
            "Write retries and source reconnects after transient failures.",
            stats.retries.load(Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        w.one(name, "counter", help, value);
    }

    let mut by_reason: std::collections::BTreeMap<String, u64> = BAD_REASONS
        .iter()
        .map(|r| (r.as_str().to_string(), 0))
        .collect();
    by_reason.extend(stats.bad_by_reason());
    w.head(
        "pulsar2mysql_bad_records_total",
        "counter",
        "Records that could not become a row, by reason.",
    );
    for (reason, n) in &by_reason {
        w.sample(
            "pulsar2mysql_bad_records_total",
            &format!("reason=\"{}\"", escape_label(reason)),
            n,
        );
    }

    let partitions = stats.partitions();
    let per_partition: [PartitionSeries; 3] = [
        (
            "pulsar2mysql_partition_records_read",
            "gauge",
            "Records read from one partition so far (updated per batch).",
            |p| Some(p.records_read as f64),
        ),
        (
            "pulsar2mysql_partition_lag_seconds",
            "gauge",
            "Publish time between the partition's last message read and its end bound (0 when done).",
            |p| p.lag_seconds(),
        ),
        (
            "pulsar2mysql_partition_done",
            "gauge",
            "1 once the partition reached its end bound.",
            |p| Some(if p.done { 1.0 } else { 0.0 }),
        ),
    ];
    for (name, kind, help, value) in per_partition {
        w.head(name, kind, help);
        for (index, progress) in &partitions {
            if let Some(v) = value(progress) {
                w.sample(name, &format!("partition=\"{index}\""), num(v));
            }
        }
    }

    let (buckets, sum) = stats.batch_seconds.snapshot();
    let name = "pulsar2mysql_batch_duration_seconds";
    w.head(
        name,
        "histogram",
        "From a batch's last row to its commit (rows, dead letters, checkpoint), retries included.",
    );
    for (i, count) in buckets.iter().enumerate() {
        let le = BATCH_SECONDS_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| num(*b));
        w.sample(&format!("{name}_bucket"), &format!("le=\"{le}\""), count);
    }
    w.sample(&format!("{name}_sum"), "", num(sum));
    w.sample(
        &format!("{name}_count"),
        "",
        buckets.last().copied().unwrap_or(0),
    );

    let mut last_success = last_success;
    if let Some(s) = ended {
        let end = chrono::DateTime::parse_from_rfc3339(&s.ended_at)
            .map(|t| t.timestamp_millis() as f64 / 1000.0)
            .unwrap_or_else(|_| unix_secs(SystemTime::now()));
        if s.exit_code == 0 {
            last_success = Some(end);
        }
        w.one(
            "pulsar2mysql_run_end_timestamp_seconds",
            "gauge",
            "When the run ended, seconds since the Unix epoch.",
            num(end),
        );
        w.one(
            "pulsar2mysql_exit_code",
            "gauge",
            "Exit code of the run (0 success, 3 source, 4 sink, 5 bad records, 6 locked, 130 interrupted).",
            s.exit_code,
        );
        w.head(
            "pulsar2mysql_outcome",
            "gauge",
            "Outcome of the run as a label (always 1).",
        );
        w.sample(
            "pulsar2mysql_outcome",
            &format!("outcome=\"{}\"", escape_label(&s.outcome)),
            1,
        );
        w.one(
            "pulsar2mysql_rows_per_second",
            "gauge",
            "Rows written (converted, with --dry-run) per second of the whole run.",
            num(s.rows_per_sec),
        );
    }
    if let Some(t) = last_success {
        w.one(
            LAST_SUCCESS,
            "gauge",
            "When the last successful run of this job ended, seconds since the Unix epoch.",
            num(t),
        );
    }
    w.out
}

// ---------------------------------------------------------------------------------------------
// HTTP endpoint

/// Binds `addr` and serves `GET /metrics` (rendered by `render_now` on every request) until
/// `stop` is cancelled. Returns the bound address; a bind failure is returned for the caller
/// to log.
pub async fn serve(
    addr: std::net::SocketAddr,
    render_now: Arc<dyn Fn() -> String + Send + Sync>,
    stop: CancellationToken,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let render_now = render_now.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), answer(stream, render_now)).await;
            });
        }
    });
    Ok((local, task))
}

async fn answer(
    mut stream: TcpStream,
    render_now: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", CONTENT_TYPE, render_now()),
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "pulsar2mysql: metrics at /metrics\n".to_string(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found; metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// Pushgateway

/// The Pushgateway path of a job's group: `/metrics/job/pulsar2mysql/job_id@base64/<id>`
/// (base64url, so any job id, slashes included, is one path segment).
pub fn push_path(job_id: &str) -> String {
    format!(
        "/metrics/job/{PUSH_JOB}/job_id@base64/{}",
        base64::engine::general_purpose::URL_SAFE.encode(job_id.as_bytes())
    )
}

/// Checks a Pushgateway URL (http or https); the error never repeats the URL's password.
pub fn parse_pushgateway_url(raw: &str) -> crate::Result<url::Url> {
    let bad = |why: &str| {
        crate::Error::Config(format!(
            "--pushgateway-url {}: {why}",
            crate::error::redact_url(raw)
        ))
    };
    let u = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if u.host_str().is_none() {
        return Err(bad("the URL has no host"));
    }
    Ok(u)
}

/// Pushes `body` to the Pushgateway at `base` (http, or https trusting the public web roots) as the job's group. `replace`: PUT
/// (the group becomes exactly `body`), otherwise POST (only metrics of the same names are
/// replaced, so a failed run keeps the last success timestamp of an earlier one).
pub async fn push(base: &url::Url, job_id: &str, body: &str, replace: bool) -> Result<(), String> {
    let mut url = base.clone();
    url.set_path(&format!(
        "{}{}",
        base.path().trim_end_matches('/'),
        push_path(job_id)
    ));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut headers = vec![("Content-Type", CONTENT_TYPE.to_string())];
    if !base.username().is_empty() {
        let user = percent_decode(base.username());
        let pass = percent_decode(base.password().unwrap_or(""));
        headers.push((
            "Authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            ),
        ));
    }
    let method = if replace { "PUT" } else { "POST" };
    let reply = crate::http::Client::new(None)?
        .request(method, &url, &headers, body)
        .await?;
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        let detail: String = reply.body.trim().chars().take(300).collect();
        Err(format!("answered {}: {detail}", reply.status))
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Textfile

/// Writes `body` to `path` atomically: a hidden temporary file in the same directory (not
/// ending in `.prom`, so the collector never reads it half-written), synced, then renamed.
pub fn write_textfile(path: &Path, body: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the metrics file path names no file"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The last success timestamp of this run's job recorded in an existing textfile, so a failed
/// run does not erase it.
pub fn last_success_in(path: &Path, meta: &RunMeta) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let prefix = format!("{LAST_SUCCESS}{{{}}} ", meta.labels());
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Progress

/// Whether a progress line is on the terminal now (so a log line must clear it first).
static PROGRESS_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Clears the progress line from the terminal if one is shown; the log writer calls it before
/// each log line so that logs and the progress line never share a line.
pub fn clear_progress_line(out: &mut impl std::io::Write) {
    if PROGRESS_SHOWN.swap(false, Relaxed) {
        let _ = out.write_all(b"\r\x1b[2K");
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
    let started = Instant::now();
    let rows = |s: &Stats| {
        if dry_run {
            s.rows_converted.load(Relaxed)
        } else {
            s.rows_written.load(Relaxed)
        }
    };
    let mut last = (Instant::now(), 0u64);
    let mut last_lag: Option<(f64, Instant)> = None;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        let n = rows(&stats);
        let rate = (n - last.1.min(n)) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, n);
        let read = stats.records_read.load(Relaxed);
        // Position in the range: partitions done, and the publish time still to cover summed
        // over partitions; its rate of decrease gives the ETA.
        let parts = stats.partitions();
        let done = parts.iter().filter(|(_, p)| p.done).count();
        let lag: f64 = parts.iter().filter_map(|(_, p)| p.lag_seconds()).sum();
        let eta = match last_lag {
            Some((prev, at)) if prev > lag => {
                let per_sec = (prev - lag) / now.duration_since(at).as_secs_f64().max(1e-3);
                Some(lag / per_sec)
            }
            _ => None,
        };
        last_lag = Some((lag, now));
        let position = format!(
            "partitions {done}/{} done, {lag:.0} s of publish time to go{}",
            parts.len(),
            eta.map(|e| format!(", ETA {e:.0} s")).unwrap_or_default()
        );
        if terminal {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K{} rows {}, {:.0} rows/s, {} records read, {position}, {:.0} s",
                n,
                if dry_run { "converted" } else { "written" },
                rate,
                read,
                started.elapsed().as_secs_f64()
            );
            let _ = err.flush();
            PROGRESS_SHOWN.store(true, Relaxed);
        } else {
            tracing::info!(
                records_read = read,
                rows_written = stats.rows_written.load(Relaxed),
                rows_per_sec = rate.round() as u64,
                bad_records = stats.bad_total.load(Relaxed),
                elapsed_secs = started.elapsed().as_secs(),
                partitions_done = done,
                partitions = parts.len(),
                lag_secs = lag.round() as u64,
                eta_secs = eta.map(|e| e.round() as u64),
                "progress"
            );
        }
    }
    if terminal {
        clear_progress_line(&mut std::io::stderr().lock());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RunMeta {
        RunMeta {
            job_id: "a\"b\\c".into(),
            topic: "persistent://public/default/t".into(),
            table: "sink_table".into(),
            started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            clock: Instant::now(),
        }
    }

    #[test]
    fn renders_counters_histogram_and_escaped_labels() {
        let stats = Stats::default();
        stats.rows_written.store(42, Relaxed);
        stats.batch_seconds.observe(0.02);
        stats.bad_record(BadReason::TooLong);
        let text = render(&stats, &meta(), None, None);
        let l = r#"job_id="a\"b\\c",topic="persistent://public/default/t",table="sink_table""#;
        assert!(text.contains(&format!("pulsar2mysql_rows_written_total{{{l}}} 42\n")));
        assert!(text.contains(&format!(
            "pulsar2mysql_bad_records_total{{{l},reason=\"too_long\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "pulsar2mysql_bad_records_total{{{l},reason=\"malformed\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "pulsar2mysql_batch_duration_seconds_bucket{{{l},le=\"0.01\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "pulsar2mysql_batch_duration_seconds_bucket{{{l},le=\"0.025\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "pulsar2mysql_batch_duration_seconds_bucket{{{l},le=\"+Inf\"}} 1\n"
        )));
        assert!(text.contains(&format!("pulsar2mysql_running{{{l}}} 1\n")));
        assert!(!text.contains("last_success"));
        // Every sample line has a TYPE line for its family before it.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "no TYPE for {line}"
            );
        }
    }

    #[test]
    fn push_path_is_one_segment() {
        let p = push_path("persistent://public/default/t->sink_table");
        assert!(p.starts_with("/metrics/job/pulsar2mysql/job_id@base64/"));
        assert_eq!(p.matches('/').count(), 5, "{p}");
    }

    #[test]
    fn textfile_is_replaced_atomically_and_keeps_last_success() {
        let dir = std::env::temp_dir().join(format!("p2m-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p2m.prom");
        let m = meta();
        let body = render(&Stats::default(), &m, None, Some(1234.5));
        write_textfile(&path, &body).unwrap();
        assert_eq!(last_success_in(&path, &m), Some(1234.5));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("p2m.prom")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn basic_auth_parts_are_decoded() {
        assert_eq!(percent_decode("p%40ss+w"), "p@ss+w");
    }
}
