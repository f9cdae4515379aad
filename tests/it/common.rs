//! Shared helpers: fresh databases and topics per test, producers, running the real binary.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::try_join_all;
use pulsar::producer::ProducerOptions;
use pulsar::{Pulsar, TokioExecutor};
use sqlx::{Connection, MySqlConnection};

pub fn pulsar_url() -> String {
    std::env::var("PULSAR_URL").unwrap_or_else(|_| "pulsar://127.0.0.1:6650".into())
}

pub fn admin_url() -> String {
    std::env::var("PULSAR_ADMIN_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// Server URL without a database.
pub fn mysql_server_url() -> String {
    let url = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/pulsar2mysql".into());
    match url.rfind('/') {
        Some(i) if i > "mysql://".len() => url[..i].to_string(),
        _ => url,
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        now_ms() % 1_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh database for one test, with the seed's `sink_table`.
pub struct TestDb {
    pub url: String,
    /// The database's name.
    pub name: String,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        let name = unique(&format!("p2m_t_{prefix}"));
        let mut conn = MySqlConnection::connect(&mysql_server_url())
            .await
            .expect("MariaDB must be running (scripts/services.sh up) and accept root over TCP");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        let db = TestDb {
            url: format!("{}/{name}", mysql_server_url()),
            name,
        };
        db.exec(include_str!("../../sql/sink_table.sql")).await;
        db
    }

    pub async fn conn(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url).await.unwrap()
    }

    pub async fn exec(&self, sql: &str) {
        let mut c = self.conn().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let mut c = self.conn().await;
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(({sql}) AS SIGNED)"
        )))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `(id, name)` rows of sink_table ordered by id.
    pub async fn seed_rows(&self) -> Vec<(i64, String)> {
        let mut c = self.conn().await;
        sqlx::query_as("SELECT CAST(id AS SIGNED), name FROM sink_table ORDER BY id")
            .fetch_all(&mut c)
            .await
            .unwrap()
    }
}

/// A topic name unique to this test run.
pub fn topic(prefix: &str) -> String {
    format!("persistent://public/default/{}", unique(prefix))
}

/// Produces `payloads` with the Rust client (batched when `batch` > 1).
pub async fn produce(topic: &str, payloads: impl IntoIterator<Item = Vec<u8>>, batch: u32) {
    produce_with(topic, payloads, batch, None).await
}

/// [`produce`], compressed with `compression`.
pub async fn produce_with(
    topic: &str,
    payloads: impl IntoIterator<Item = Vec<u8>>,
    batch: u32,
    compression: Option<pulsar::compression::Compression>,
) {
    let client = Pulsar::builder(pulsar_url(), TokioExecutor)
        .build()
        .await
        .unwrap();
    let mut producer = client
        .producer()
        .with_topic(topic)
        .with_options(ProducerOptions {
            batch_size: (batch > 1).then_some(batch),
            block_queue_if_full: true,
            compression,
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    let mut pending = Vec::new();
    for p in payloads {
        pending.push(producer.send_non_blocking(p).await.unwrap());
        if pending.len() >= 500 {
            if batch > 1 {
                producer.send_batch().await.unwrap();
            }
            try_join_all(pending.drain(..)).await.unwrap();
        }
    }
    if batch > 1 {
        producer.send_batch().await.unwrap();
    }
    try_join_all(pending).await.unwrap();
    producer.close().await.unwrap();
}

/// The seed's records `i|msg-i` for a range of ids.
pub fn seed_records(ids: std::ops::Range<i64>) -> impl Iterator<Item = Vec<u8>> {
    ids.map(|i| format!("{i}|msg-{i}").into_bytes())
}

/// Creates a partitioned topic through the admin REST API.
pub fn create_partitioned(topic: &str, partitions: u32) {
    let path = topic.trim_start_matches("persistent://");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-f",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
    ])
    .arg(partitions.to_string())
    .arg(format!(
        "{}/admin/v2/persistent/{path}/partitions",
        admin_url()
    ));
    must_succeed(&mut cmd, "create partitioned topic");
}

/// Deletes a partitioned topic a test is done with: a broker loads every topic it keeps when
/// it starts, and the wide ones of these tests would pile up on a developer's broker.
pub fn delete_partitioned(topic: &str) {
    let path = topic.trim_start_matches("persistent://");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-f", "-X", "DELETE"]).arg(format!(
        "{}/admin/v2/persistent/{path}/partitions?force=true",
        admin_url()
    ));
    must_succeed(&mut cmd, "delete partitioned topic");
}

/// Runs a helper command and fails the test, with its stderr, unless it succeeds.
pub fn must_succeed(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The binary under test: this build's, or `P2M_TEST_BINARY` (an older build, to see a test
/// fail before the fix it guards).
pub fn binary() -> PathBuf {
    std::env::var_os("P2M_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pulsar2mysql")))
}

/// The outcome of one run of the real binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub summary: serde_json::Value,
}

impl Run {
    pub fn u(&self, key: &str) -> u64 {
        self.summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no {key}: {}", self.summary))
    }
    pub fn outcome(&self) -> &str {
        self.summary["outcome"].as_str().unwrap_or("")
    }
}

/// Base arguments of `pulsar2mysql run` for a topic and test database.
pub fn run_args(topic: &str, db: &TestDb) -> Vec<String> {
    vec![
        "run".into(),
        "--pulsar-url".into(),
        pulsar_url(),
        "--topic".into(),
        topic.into(),
        "--mysql-url".into(),
        db.url.clone(),
        "--table".into(),
        "sink_table".into(),
    ]
}

pub fn command(args: &[String]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

pub fn parse(out: Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let last = stdout.lines().last().unwrap_or("");
    let summary = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("last stdout line is not JSON ({e}): {stdout}\nstderr: {stderr}")
    });
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        summary,
    }
}

/// Runs the binary to its end; a run that has not ended after `limit` is killed and fails the
/// test (a hang is the bug these tests guard against).
pub async fn run_binary_within(args: &[String], limit: Duration) -> Run {
    run_command_within(command(args), limit).await
}

/// [`run_binary_within`] for a command built with [`command`] and changed further (e.g. its
/// environment).
pub async fn run_command_within(mut cmd: Command, limit: Duration) -> Run {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let child = cmd.spawn().expect("spawn pulsar2mysql");
    let pid = child.id();
    let waited = tokio::time::timeout(
        limit,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    match waited {
        Ok(out) => parse(out.unwrap().unwrap()),
        Err(_) => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("pulsar2mysql {args:?} did not finish within {limit:?}");
        }
    }
}

pub async fn run_binary(args: &[String]) -> Run {
    run_binary_within(args, Duration::from_secs(300)).await
}

/// `args` followed by `extra`.
pub fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Waits until `sink_table` holds at least `rows` rows while `child` is still running, so that
/// a fault injected next lands in the middle of the run. Fails if the run ends first or never
/// gets there within two minutes.
pub async fn wait_mid_run(db: &TestDb, child: &mut std::process::Child, rows: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    // One connection for the whole wait: a new one per poll floods the server's log with
    // aborted connections and adds load to the run under test.
    let mut conn = db.conn().await;
    loop {
        let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS SIGNED) FROM sink_table")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let reached = count >= rows;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it reached {rows} rows"
        );
        if reached {
            let _ = conn.close().await;
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            let tail: String = stderr
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            panic!(
                "the run did not reach {rows} rows within 2 minutes (it had {} rows); its \
                 stderr ends with:\n{tail}",
                db.scalar("SELECT COUNT(*) FROM sink_table").await
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks that `sink_table` holds the seed records 0..n exactly once each.
pub async fn assert_exact(db: &TestDb, n: i64) {
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, n);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        n
    );
    assert_eq!(
        db.scalar("SELECT SUM(name <> CONCAT('msg-', id)) FROM sink_table")
            .await,
        0
    );
}

/// Runs an SQL statement (a server-wide setting back to its default) when the test ends,
/// however it ends.
pub struct RestoreGlobal(pub &'static str);

impl Drop for RestoreGlobal {
    fn drop(&mut self) {
        let url = url::Url::parse(&mysql_server_url()).unwrap();
        let _ = Command::new("mariadb")
            .args([
                "-h",
                url.host_str().unwrap(),
                "-u",
                url.username(),
                "--protocol=TCP",
            ])
            .args(["-P", &url.port().unwrap_or(3306).to_string(), "-e", self.0])
            .output();
    }
}

/// Waits for `child` at most `limit`; a run still going then is killed and fails the test.
pub async fn ended_within(child: std::process::Child, limit: Duration, what: &str) -> Run {
    let pid = child.id();
    let waiter = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(limit, waiter).await {
        Ok(out) => parse(out.unwrap().unwrap()),
        Err(_) => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{what} (killed after {limit:?})");
        }
    }
}

/// Waits for `child` and samples its peak RSS (KiB), the kernel's `VmHWM` of its own memory,
/// every 20 ms while it runs. (wait4's `ru_maxrss` would not do: a child's maximum includes
/// the RSS of the test process it was spawned from.)
pub fn wait_with_peak_rss(child: std::process::Child) -> (Run, u64) {
    let status = format!("/proc/{}/status", child.id());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
                    line.split_whitespace().nth(1)?.parse::<u64>().ok()
                });
                peak = peak.max(hwm.unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let output = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Release);
    (parse(output), sampler.join().unwrap())
}

/// `curl` a URL: `(succeeded, headers + body)`.
pub fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// The TCP sockets of this process connected to `port`, by `/proc/self/fd` number.
pub fn sockets_to(port: u16) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        if !link.starts_with("socket:") {
            continue;
        }
        // SAFETY: getpeername writes at most `len` bytes into a zeroed sockaddr_storage.
        let peer_port = unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
                continue;
            }
            match addr.ss_family as i32 {
                libc::AF_INET => {
                    u16::from_be((*(&addr as *const _ as *const libc::sockaddr_in)).sin_port)
                }
                libc::AF_INET6 => {
                    u16::from_be((*(&addr as *const _ as *const libc::sockaddr_in6)).sin6_port)
                }
                _ => continue,
            }
        };
        if peer_port == port {
            found.push((fd, link));
        }
    }
    found
}

/// Whether Nagle's algorithm is off on `fd`; None when it is no TCP socket (any more).
pub fn nodelay(fd: i32) -> Option<bool> {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into `on`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &mut on as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then_some(on != 0)
}

/// The sockets to `port` not in `before`, each with whether Nagle's algorithm is off: polled
/// until `at_least` are there or `within` has passed (some connect in the background).
pub async fn nodelay_of_new_sockets(
    port: u16,
    before: &[String],
    at_least: usize,
    within: Duration,
) -> Vec<(String, bool)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let found: Vec<(String, bool)> = sockets_to(port)
            .into_iter()
            .filter(|(_, s)| !before.contains(s))
            .filter_map(|(fd, s)| nodelay(fd).map(|on| (s, on)))
            .collect();
        if found.len() >= at_least || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The port of a `scheme://host:port/...` URL, or `default`.
pub fn port_of(url: &str, default: u16) -> u16 {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(default)
}
