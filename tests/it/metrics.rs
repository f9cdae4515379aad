//! Metrics: the /metrics endpoint during a run, the Pushgateway, the node_exporter textfile.
//! The JSON summary and exit code of each way a run ends are in `outcomes.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

fn pushgateway_url() -> String {
    std::env::var("PUSHGATEWAY_URL").unwrap_or_else(|_| "http://127.0.0.1:9091".into())
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the first sample of `name` whose line contains every one of `needles`.
pub(crate) fn sample(text: &str, name: &str, needles: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Checks the text exposition format line by line: HELP/TYPE comments, then samples
/// `name{label="value",...} number`, each after its family's TYPE line.
fn assert_exposition(text: &str) {
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let (name, kind) = (p.next().unwrap(), p.next().unwrap());
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect(line);
        assert!(
            value == "+Inf" || value.parse::<f64>().is_ok(),
            "bad value in {line}"
        );
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        assert!(name.starts_with("pulsar2mysql_"), "{line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(labels.ends_with('}'), "{line}");
        assert!(labels.contains("job_id=\""), "no job_id label: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
    }
}

/// `args` with the value of `flag` replaced (or the flag added).
pub(crate) fn set(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

pub(crate) fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for a child to exit, killing it (and failing) after `limit`.
pub(crate) async fn wait_child(mut child: std::process::Child, limit: Duration) -> Run {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return parse(child.wait_with_output().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_endpoint_answers_while_a_run_is_in_flight_and_stops_after() {
    const N: i64 = 300_000;
    let db = TestDb::new("mendpoint").await;
    let topic = topic("mendpoint");
    produce(&topic, seed_records(0..N), 1000).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/metrics");
    let args = with(
        run_args(&topic, &db),
        &[
            "--batch-rows",
            "1000",
            "--metrics-addr",
            &addr,
            "--job-id",
            "endpoint-job",
            "--log-format",
            "json",
            "--progress-secs",
            "1",
        ],
    );
    let child = command(&args).spawn().unwrap();

    let scraped = scrape_in_flight(&url).await;
    let (head, body) = scraped.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_exposition(body);
    assert_eq!(
        sample(body, "pulsar2mysql_running", &["job_id=\"endpoint-job\""]),
        Some(1.0),
        "{body}"
    );
    assert!(
        sample(
            body,
            "pulsar2mysql_rows_written_total",
            &[&format!("topic=\"{topic}\""), "table=\"sink_table\""]
        )
        .unwrap()
            < N as f64,
        "scraped after the end?"
    );
    // Other paths and methods are refused.
    let (_, other) = curl(&["-i", &format!("http://{addr}/nope")]);
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let (_, post) = curl(&["-i", "-X", "POST", &url]);
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");

    let run = wait_child(child, Duration::from_secs(300)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), N as u64);
    // The endpoint stops with the run.
    let (ok, _) = curl(&[&url]);
    assert!(!ok, "the endpoint still answers after the run");
    assert_logs_name_the_job(&run.stderr, "endpoint-job");
}

/// Polls the endpoint until it answers with records read, while the run is in flight: the
/// whole reply, headers and body.
async fn scrape_in_flight(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no metrics with records read");
        let (ok, text) = curl(&["-i", url]);
        if ok && sample(&text, "pulsar2mysql_records_read_total", &[]).unwrap_or(0.0) > 0.0 {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every JSON log line of the run names the job through the run span, and progress lines
/// (stderr is not a terminal) tell how far the run got.
fn assert_logs_name_the_job(stderr: &str, job_id: &str) {
    let ours: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["target"]
                .as_str()
                .unwrap_or("")
                .starts_with("pulsar2mysql")
        })
        .collect();
    assert!(ours.len() >= 2, "{stderr}");
    let progress: Vec<_> = ours
        .iter()
        .filter(|l| l["fields"]["message"] == "progress")
        .collect();
    assert!(!progress.is_empty(), "no progress lines: {stderr}");
    assert!(progress
        .iter()
        .all(|l| l["fields"]["records_read"].is_u64() && l["fields"]["rows_per_sec"].is_u64()));
    for line in &ours {
        let in_run = |s: &serde_json::Value| s["job_id"].as_str() == Some(job_id);
        let spans = line["spans"].as_array().cloned().unwrap_or_default();
        assert!(
            in_run(&line["span"]) || spans.iter().any(in_run),
            "log line without the run's job_id: {line}"
        );
    }
}

#[tokio::test]
async fn pushes_to_the_pushgateway_and_keeps_the_last_success_after_a_failure() {
    let db = TestDb::new("mpush").await;
    let topic = topic("mpush");
    produce(&topic, seed_records(0..50), 10).await;
    // Slashes and '>' in the job id: one grouping value thanks to job_id@base64.
    let job = format!("push/{}->x", unique("job"));
    let gw = pushgateway_url();
    let needle = format!("job_id=\"{job}\"");
    let args = with(
        run_args(&topic, &db),
        &["--job-id", &job, "--pushgateway-url", &gw],
    );

    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (ok, text) = curl(&[&format!("{gw}/metrics")]);
    assert!(ok);
    assert_eq!(
        sample(&text, "pulsar2mysql_rows_written_total", &[&needle]),
        Some(50.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "pulsar2mysql_exit_code", &[&needle]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "pulsar2mysql_outcome",
            &[&needle, "outcome=\"success\""]
        ),
        Some(1.0)
    );
    let success_at = sample(
        &text,
        "pulsar2mysql_last_success_timestamp_seconds",
        &[&needle],
    )
    .expect("last success timestamp");
    assert!((success_at - now_ms() as f64 / 1000.0).abs() < 120.0);
    assert!(text.contains("job=\"pulsar2mysql\""));

    // A failed run of the same job (broker down) replaces the run's metrics but keeps the
    // last success.
    let down = with(
        set(args.clone(), "--pulsar-url", "pulsar://127.0.0.1:6659"),
        &["--retry-budget-secs", "3"],
    );
    let run = run_binary(&down).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_pushed_failure(&gw, &needle, success_at);
    delete_push_group(&gw, &job);

    // A Pushgateway that is down is a warning, not a failure.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let run = run_binary(&with(
        run_args(&topic, &db),
        &["--job-id", &job, "--pushgateway-url", &dead],
    ))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "nothing_to_do");
    assert!(run.stderr.contains("cannot push metrics"), "{}", run.stderr);
}

/// The Pushgateway holds the failed run's metrics (exit code 3, nothing written) and still
/// the last success's time.
fn assert_pushed_failure(gw: &str, needle: &str, success_at: f64) {
    let (_, text) = curl(&[&format!("{gw}/metrics")]);
    assert_eq!(
        sample(&text, "pulsar2mysql_exit_code", &[needle]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "pulsar2mysql_rows_written_total", &[needle]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "pulsar2mysql_last_success_timestamp_seconds",
            &[needle]
        ),
        Some(success_at)
    );
}

/// Deletes the test's grouping from the shared Pushgateway, and checks it is gone.
fn delete_push_group(gw: &str, job: &str) {
    let needle = format!("job_id=\"{job}\"");
    let group = format!(
        "{gw}/metrics/job/pulsar2mysql/job_id@base64/{}",
        base64_url(job)
    );
    let (ok, _) = curl(&["-f", "-X", "DELETE", &group]);
    assert!(ok);
    let (_, text) = curl(&[&format!("{gw}/metrics")]);
    assert!(!text.contains(&needle), "group not deleted");
}

fn base64_url(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn read_prom(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file a successful run of 30 records in batches of 7 leaves: counters, its partition
/// done and caught up, the batch histogram, not running, exit code 0. Returns the time of
/// that success, which a later failure must keep.
fn assert_textfile_of_success(file: &Path, j: &str) -> f64 {
    let text = read_prom(file);
    assert_exposition(&text);
    assert_eq!(
        sample(&text, "pulsar2mysql_rows_written_total", &[j]),
        Some(30.0)
    );
    assert_eq!(
        sample(&text, "pulsar2mysql_records_read_total", &[j]),
        Some(30.0)
    );
    assert_eq!(sample(&text, "pulsar2mysql_batches_total", &[j]), Some(5.0));
    // Per partition: all read, done, no lag left.
    let p = "partition=\"-1\"";
    assert_eq!(
        sample(&text, "pulsar2mysql_partition_records_read", &[j, p]),
        Some(30.0)
    );
    assert_eq!(
        sample(&text, "pulsar2mysql_partition_done", &[j, p]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "pulsar2mysql_partition_lag_seconds", &[j, p]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "pulsar2mysql_batch_duration_seconds_count", &[j]),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            "pulsar2mysql_batch_duration_seconds_bucket",
            &[j, "le=\"+Inf\""]
        ),
        Some(5.0)
    );
    assert_eq!(sample(&text, "pulsar2mysql_running", &[j]), Some(0.0));
    assert_eq!(sample(&text, "pulsar2mysql_exit_code", &[j]), Some(0.0));
    sample(&text, "pulsar2mysql_last_success_timestamp_seconds", &[j]).expect("last success")
}

#[tokio::test]
async fn textfile_is_written_atomically_parses_and_keeps_the_last_success() {
    let db = TestDb::new("mfile").await;
    let topic = topic("mfile");
    produce(&topic, seed_records(0..30), 1).await;
    let dir = temp_dir("p2m_textfile");
    let file = dir.join("pulsar2mysql.prom");
    let args = with(
        run_args(&topic, &db),
        &[
            "--job-id",
            "file-job",
            "--batch-rows",
            "7",
            "--metrics-file",
            file.to_str().unwrap(),
        ],
    );
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = "job_id=\"file-job\"";
    let success_at = assert_textfile_of_success(&file, j);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["pulsar2mysql.prom".to_string()], "leftovers");

    // A failing run (a bad record under the fail policy) rewrites the file with its exit
    // code and bad record, and keeps the earlier success.
    produce(&topic, [b"not-a-record".to_vec()], 1).await;
    let run = run_binary(&args).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    let text = read_prom(&file);
    assert_exposition(&text);
    assert_eq!(sample(&text, "pulsar2mysql_exit_code", &[j]), Some(5.0));
    assert_eq!(
        sample(
            &text,
            "pulsar2mysql_outcome",
            &[j, "outcome=\"bad_record_limit\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "pulsar2mysql_bad_records_total",
            &[j, "reason=\"field_count\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "pulsar2mysql_last_success_timestamp_seconds", &[j]),
        Some(success_at)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
