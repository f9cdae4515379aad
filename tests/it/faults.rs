//! A faulty network between the runner and MariaDB, made by Toxiproxy (started by
//! scripts/services.sh): silent partitions (the network swallows traffic but keeps the
//! connections open), slow links, and which route the write connections really take.
//! Each test has a proxy of its own, so they run beside the others.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

fn toxiproxy_url() -> String {
    std::env::var("TOXIPROXY_URL").unwrap_or_else(|_| "http://127.0.0.1:8474".into())
}

/// One call to Toxiproxy's API through curl; fails the test unless it answers 2xx.
fn api(method: &str, path: &str, body: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-fsS", "--max-time", "10", "-X", method])
        .arg(format!("{}{path}", toxiproxy_url()));
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = cmd.output().expect("curl must be installed");
    assert!(
        out.status.success(),
        "toxiproxy {method} {path} failed (is it running? scripts/services.sh up): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP proxy in front of MariaDB, removed when dropped.
struct Proxy {
    name: String,
    /// `host:port` it listens on.
    listen: String,
}

impl Proxy {
    fn to_mariadb(prefix: &str) -> Proxy {
        let server = url::Url::parse(&mysql_server_url()).unwrap();
        let upstream = format!(
            "{}:{}",
            server.host_str().unwrap(),
            server.port().unwrap_or(3306)
        );
        let name = unique(prefix);
        let reply = api(
            "POST",
            "/proxies",
            Some(&format!(
                r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}","enabled":true}}"#
            )),
        );
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        Proxy {
            name,
            listen: reply["listen"].as_str().unwrap().to_string(),
        }
    }

    /// `db`'s URL, through this proxy.
    fn url(&self, db: &TestDb) -> String {
        let mut url = url::Url::parse(&db.url).unwrap();
        let (host, port) = self.listen.rsplit_once(':').unwrap();
        url.set_host(Some(host)).unwrap();
        url.set_port(Some(port.parse().unwrap())).unwrap();
        url.to_string()
    }

    /// Adds a toxic on both directions (`{name}_up`, `{name}_down`).
    fn add_toxic(&self, name: &str, kind: &str, attributes: &str) {
        for stream in ["upstream", "downstream"] {
            api(
                "POST",
                &format!("/proxies/{}/toxics", self.name),
                Some(&format!(
                    r#"{{"name":"{name}_{stream}","type":"{kind}","stream":"{stream}","attributes":{attributes}}}"#
                )),
            );
        }
    }

    fn remove_toxic(&self, name: &str) {
        for stream in ["upstream", "downstream"] {
            api(
                "DELETE",
                &format!("/proxies/{}/toxics/{name}_{stream}", self.name),
                None,
            );
        }
    }

    /// Bytes the proxy received from its clients (towards MariaDB), from its metrics.
    fn bytes_from_clients(&self) -> u64 {
        let metrics = api("GET", "/metrics", None);
        let wanted = format!("proxy=\"{}\"", self.name);
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("toxiproxy_proxy_received_bytes_total")
                    && l.contains("direction=\"upstream\"")
                    && l.contains(&wanted)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args(["-fsS", "--max-time", "10", "-X", "DELETE"])
            .arg(format!("{}/proxies/{}", toxiproxy_url(), self.name))
            .output();
    }
}

/// Run arguments for `db` through `proxy`, with small batches so that the run lasts long
/// enough to be cut in the middle.
fn proxied_args(topic: &str, db: &TestDb, proxy: &Proxy, extra: &[&str]) -> Vec<String> {
    let mut args = run_args(topic, db);
    let url = args.iter().position(|a| a == "--mysql-url").unwrap() + 1;
    args[url] = proxy.url(db);
    with(args, extra)
}

const CUT_RECORDS: i64 = 300_000;

/// A run through its own proxy with small batches (so it lasts), the blackhole cutting it once
/// 2,000 rows are in: the database, the topic, the proxy, the run and when the cut began.
async fn cut_in_the_middle(
    prefix: &str,
    strategy: &str,
    budget_secs: &str,
) -> (TestDb, String, Proxy, std::process::Child, Instant) {
    let db = TestDb::new(prefix).await;
    let topic = topic(prefix);
    produce(&topic, seed_records(0..CUT_RECORDS), 1000).await;
    let proxy = Proxy::to_mariadb(prefix);
    let args = proxied_args(
        &topic,
        &db,
        &proxy,
        &[
            "--batch-rows",
            "100",
            "--write-strategy",
            strategy,
            "--retry-budget-secs",
            budget_secs,
            "--mysql-io-timeout-secs",
            "2",
        ],
    );
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 2_000).await;
    let cut = Instant::now();
    proxy.add_toxic("blackhole", "timeout", r#"{"timeout":0}"#);
    (db, topic, proxy, child, cut)
}

/// Cuts the network silently in the middle of a run for longer than the retry budget: the run
/// must notice by itself, give up within the budget plus a bounded margin, exit 4 and say how
/// long it waited; a re-run (network back) completes the range exactly once.
async fn partition_longer_than_budget(prefix: &str, strategy: &str) {
    let (db, topic, proxy, child, cut) = cut_in_the_middle(prefix, strategy, "6").await;
    // Budget 6 s + detection 2 s + one last attempt's 2 s + connect bound: 40 s is far past
    // any honest end, and far short of a hang.
    let what = format!("a silent partition hung the {strategy} run");
    let run = ended_within(child, Duration::from_secs(40), &what).await;
    let waited = cut.elapsed();
    assert_eq!(run.code, 4, "{strategy}: {}", run.stderr);
    assert_eq!(run.outcome(), "sink_unavailable");
    let error = run.summary["error"].as_str().unwrap();
    assert!(
        error.contains("did not answer") && error.contains("retry budget"),
        "the error should say the server stopped answering and how long it waited: {error}"
    );
    eprintln!("{strategy}: ended {waited:?} after the cut: {error}");

    proxy.remove_toxic("blackhole");
    let rerun = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_exact(&db, CUT_RECORDS).await;
}

#[tokio::test]
async fn silent_partition_longer_than_the_budget_ends_the_load_data_run() {
    partition_longer_than_budget("blackhole_ld", "load-data").await;
}

#[tokio::test]
async fn silent_partition_longer_than_the_budget_ends_the_insert_run() {
    partition_longer_than_budget("blackhole_ins", "insert").await;
}

/// A silent partition shorter than the budget: the run notices, retries, and ends exact.
async fn partition_shorter_than_budget(prefix: &str, strategy: &str) {
    let (db, _topic, proxy, child, _cut) = cut_in_the_middle(prefix, strategy, "60").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.remove_toxic("blackhole");
    let what = format!("the {strategy} run did not recover from a 5 s silent partition");
    let run = ended_within(child, Duration::from_secs(240), &what).await;
    assert_eq!(run.code, 0, "{strategy}: {}", run.stderr);
    assert!(
        run.u("retries") >= 1,
        "the cut cost no retry: {}",
        run.stdout
    );
    assert_exact(&db, CUT_RECORDS).await;
}

#[tokio::test]
async fn silent_partition_shorter_than_the_budget_ends_exact_load_data() {
    partition_shorter_than_budget("shortcut_ld", "load-data").await;
}

#[tokio::test]
async fn silent_partition_shorter_than_the_budget_ends_exact_insert() {
    partition_shorter_than_budget("shortcut_ins", "insert").await;
}

/// The LOAD DATA connection goes where the URL says: through the proxy, never a switch to the
/// server's Unix socket on this machine. The proxy must have carried the rows.
#[tokio::test]
async fn load_data_connects_only_to_the_host_and_port_of_the_url() {
    const N: i64 = 20_000;
    let db = TestDb::new("ld_route").await;
    let topic = topic("ld_route");
    produce(&topic, seed_records(0..N), 1000).await;
    let proxy = Proxy::to_mariadb("ld_route");
    let args = proxied_args(&topic, &db, &proxy, &["--write-strategy", "load-data"]);
    let run = run_binary_within(&args, Duration::from_secs(120)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_exact(&db, N).await;
    // Each row is at least "1|msg-1\n" on the wire (~8 bytes); the rows alone are > 150 kB.
    let carried = proxy.bytes_from_clients();
    assert!(
        carried > 150_000,
        "the proxy carried only {carried} bytes from the runner: the rows took another route \
         (a Unix socket?)"
    );
}

/// Under a slow link every statement is slow; the log must still hold no row values and stay
/// small (sqlx logs slow statements whole by default).
#[tokio::test]
async fn a_slow_run_logs_no_row_values() {
    const N: i64 = 3_000;
    let db = TestDb::new("slowlog").await;
    let topic = topic("slowlog");
    produce(
        &topic,
        (0..N).map(|i| format!("{i}|secret-{i}").into_bytes()),
        1000,
    )
    .await;
    let proxy = Proxy::to_mariadb("slowlog");
    // sqlx calls a statement slow after 1 s.
    api(
        "POST",
        &format!("/proxies/{}/toxics", proxy.name),
        Some(
            r#"{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":1100}}"#,
        ),
    );
    let args = proxied_args(
        &topic,
        &db,
        &proxy,
        &["--write-strategy", "insert", "--batch-rows", "1500"],
    );
    let run = run_binary_within(&args, Duration::from_secs(180)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, N);
    assert!(
        !run.stderr.contains("secret-"),
        "row values reached the log: {}",
        &run.stderr[..run.stderr.len().min(3000)]
    );
    assert!(
        run.stderr.len() < 16 * 1024,
        "a slow run of {N} rows logged {} bytes",
        run.stderr.len()
    );
}

/// Large messages and a slow MySQL link: the reader may run ahead of the writer only by a
/// bounded number of bytes (issue 11, item 4). 60 messages of 3 MiB (180 MiB) go through a
/// link of 20 MB/s. With the receiver queue bounded only in messages (2,000) the runner's
/// peak was 235 MiB here (all it could fetch); bounded in bytes, 97 MiB, and the same with
/// 360 MiB of messages: the read-ahead (4 MiB and one message in flight), the batches in the
/// pipeline (4 MiB plus one row each) and the LOAD DATA stream's copies.
#[tokio::test]
async fn large_messages_behind_a_slow_link_stay_within_the_memory_bound() {
    let n: i64 = 60;
    const BODY: usize = 3 * 1024 * 1024;
    let db = TestDb::new("bigmsg").await;
    db.exec("CREATE TABLE big_table (id INT PRIMARY KEY, body MEDIUMTEXT NOT NULL)")
        .await;
    let topic = topic("bigmsg");
    let body = "x".repeat(BODY);
    produce(
        &topic,
        (0..n).map(|i| format!("{i}|{body}").into_bytes()),
        1,
    )
    .await;
    let proxy = Proxy::to_mariadb("bigmsg");
    // Toxiproxy's rate is in KB/s, per direction.
    proxy.add_toxic("slow", "bandwidth", r#"{"rate":20000}"#);
    let mut args = proxied_args(&topic, &db, &proxy, &["--columns", "id,body"]);
    let table = args.iter().position(|a| a == "--table").unwrap() + 1;
    args[table] = "big_table".into();
    let child = command(&args).spawn().unwrap();
    let (run, peak_kib) = tokio::task::spawn_blocking(move || wait_with_peak_rss(child))
        .await
        .unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), n as u64);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM big_table").await, n, "rows");
    assert_eq!(
        db.scalar("SELECT CAST(SUM(LENGTH(body)) AS SIGNED) FROM big_table")
            .await,
        n * BODY as i64
    );
    let data_mib = n as u64 * BODY as u64 / (1024 * 1024);
    let peak_mib = peak_kib / 1024;
    eprintln!("large messages: {data_mib} MiB through a 20 MB/s link, peak RSS {peak_mib} MiB");
    assert!(
        peak_mib < 128,
        "the runner held {peak_mib} MiB at its peak for {data_mib} MiB of messages: its buffers \
         are not bounded in bytes"
    );
}

/// After a cut, a retry ends the abandoned attempt's server thread with `KILL CONNECTION
/// <id>`. If the server restarted meanwhile (or failed over behind the same address), that id
/// may name somebody else's session now: it must be left alone. Here the cut attempt's ids
/// are taken, after a MariaDB restart, by sessions of another user, which must all survive
/// the run's retries; the run still ends exactly once.
#[tokio::test]
#[ignore = "restarts MariaDB; scripts/test.sh runs it alone"]
async fn a_thread_id_reused_after_a_restart_is_not_killed() {
    use sqlx::Connection;
    // A fresh server: thread ids start low, so that every id the run may have used can be
    // taken again after the second restart.
    crate::restarts::services(&["stop", "mariadb"]);
    crate::restarts::services(&["up"]);
    let (db, _topic, proxy, child, _cut) =
        cut_in_the_middle("reuse_kill", "load-data", "120").await;
    // The cut attempt has been abandoned (io timeout 2 s) once a retry has begun.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let highest: i64 = db
        .scalar("SELECT MAX(ID) FROM information_schema.PROCESSLIST")
        .await;
    assert!(
        highest < 140,
        "thread ids reached {highest} on a fresh server"
    );
    crate::restarts::services(&["stop", "mariadb"]);
    crate::restarts::services(&["up"]);
    // Another user's sessions take every id the run may have used (ids restart after a
    // restart), and stay open.
    let bystander = unique("bystander");
    db.exec(&format!(
        "CREATE USER '{bystander}'@'%' IDENTIFIED BY 'by'; GRANT USAGE ON *.* TO '{bystander}'@'%'"
    ))
    .await;
    let server = url::Url::parse(&mysql_server_url()).unwrap();
    let by_url = format!(
        "mysql://{bystander}:by@{}:{}/",
        server.host_str().unwrap(),
        server.port().unwrap_or(3306)
    );
    let mut held = Vec::new();
    loop {
        let mut c = sqlx::MySqlConnection::connect(&by_url).await.unwrap();
        let id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
            .fetch_one(&mut c)
            .await
            .unwrap();
        held.push((id, c));
        if id >= highest {
            break;
        }
    }
    proxy.remove_toxic("blackhole");
    let run = ended_within(child, Duration::from_secs(180), "the run after the restart").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (id, mut c) in held {
        let alive: Result<i64, _> = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await;
        assert!(
            alive.is_ok(),
            "session {id} of another user, which took an id of the runner's cut attempt after \
             the restart, was killed: {alive:?}"
        );
    }
    assert_exact(&db, CUT_RECORDS).await;
}
