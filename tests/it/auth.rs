//! Token (JWT) authentication and TLS, against the broker's TLS listener that
//! `scripts/services.sh` starts next to the plain one: `PULSAR_TLS_URL`
//! (pulsar+ssl://127.0.0.1:6651), a self-signed CA (`PULSAR_TLS_CA_FILE`) and HS256 tokens
//! (`PULSAR_TOKEN_FILE`), all generated into `.cache/secrets`. The broker checks every token it
//! is given and lets clients without credentials in as an anonymous role, so the data is
//! produced by the usual anonymous producer.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::common::*;

/// A failure this fast is "promptly": the default retry budget alone is 120 s.
const PROMPT: Duration = Duration::from_secs(10);

fn tls_url() -> String {
    std::env::var("PULSAR_TLS_URL").unwrap_or_else(|_| "pulsar+ssl://127.0.0.1:6651".into())
}

/// A file of `.cache/secrets` (or where `env` points), which must exist.
fn secret_file(env: &str, name: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| {
        let cache = std::env::var("P2M_CACHE_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.cache").into());
        format!("{cache}/secrets/{name}")
    });
    must_exist(path)
}

fn must_exist(path: String) -> String {
    assert!(
        Path::new(&path).is_file(),
        "{path} is missing: scripts/services.sh up generates it and starts the TLS listener"
    );
    path
}

/// Another file of the secrets folder that holds `file`.
fn next_to(file: &str, name: &str) -> String {
    must_exist(
        Path::new(file)
            .with_file_name(name)
            .to_string_lossy()
            .into_owned(),
    )
}

fn ca_file() -> String {
    secret_file("PULSAR_TLS_CA_FILE", "ca.cert.pem")
}

fn token_file() -> String {
    secret_file("PULSAR_TOKEN_FILE", "client.token")
}

fn valid_token() -> String {
    std::fs::read_to_string(token_file())
        .unwrap()
        .trim()
        .to_string()
}

/// `run` over the TLS listener, trusting the services' CA, without credentials yet.
fn tls_args(topic: &str, db: &TestDb) -> Vec<String> {
    let mut args = run_args(topic, db);
    let i = args.iter().position(|a| a == "--pulsar-url").unwrap();
    args[i + 1] = tls_url();
    args
}

fn with_ca(args: Vec<String>) -> Vec<String> {
    with(args, &["--pulsar-tls-ca-file", &ca_file()])
}

/// HMAC-SHA256 (RFC 2104), to sign tokens the way the broker checks them.
fn hs256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(k.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// The valid token's header and claims, signed with another key than the broker's.
fn token_signed_with_another_key() -> String {
    let valid = valid_token();
    let (signed_part, signature) = valid.rsplit_once('.').unwrap();
    // Signing with the broker's own key reproduces the valid token: only the key differs.
    let broker_key = std::fs::read(next_to(&token_file(), "token-secret.key")).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(hs256(&broker_key, signed_part.as_bytes())),
        signature
    );
    let forged = URL_SAFE_NO_PAD.encode(hs256(b"not the broker's key", signed_part.as_bytes()));
    format!("{signed_part}.{forged}")
}

fn expected_seed(n: i64) -> Vec<(i64, String)> {
    (0..n).map(|i| (i, format!("msg-{i}"))).collect()
}

async fn timed(cmd: std::process::Command) -> (Run, Duration) {
    let started = Instant::now();
    let run = run_command_within(cmd, Duration::from_secs(180)).await;
    (run, started.elapsed())
}

#[tokio::test]
async fn a_valid_token_over_tls_copies_the_seed_exactly() {
    const N: i64 = 10_000;
    let topic = topic("auth_ok");
    let from = now_ms();
    produce(&topic, seed_records(0..N), 1).await;

    // Token from a file.
    let db = TestDb::new("auth_file").await;
    let args = with(
        with_ca(tls_args(&topic, &db)),
        &["--pulsar-token-file", &token_file()],
    );
    let (run, _) = timed(command(&args)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "success");
    assert_eq!(run.u("records_read"), N as u64);
    assert_eq!(run.u("rows_written"), N as u64);
    assert_eq!(db.seed_rows().await, expected_seed(N));

    // Token from the environment, with a publish-time window (the admin API finds its start,
    // over https: the default admin URL of a pulsar+ssl:// service URL).
    admin_tls_url();
    let db = TestDb::new("auth_env").await;
    let args = with(
        with_ca(tls_args(&topic, &db)),
        &["--from", &from.to_string()],
    );
    let mut cmd = command(&args);
    cmd.env("PULSAR2MYSQL_PULSAR_TOKEN", valid_token());
    let (run, _) = timed(cmd).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), N as u64);
    assert!(
        run.summary["range"]["partitions"][0]["window_start"].is_string(),
        "{}",
        run.summary
    );
    assert_eq!(db.seed_rows().await, expected_seed(N));
}

#[tokio::test]
async fn an_invalid_token_fails_fast_with_exit_2_and_is_never_shown() {
    let db = TestDb::new("auth_bad").await;
    let topic = topic("auth_bad");
    produce(&topic, seed_records(0..100), 1).await;
    let forged = token_signed_with_another_key();
    let garbage = format!("garbage-{}", unique("token"));

    for (name, token, via_env) in [
        (
            "signed with another key, from the environment",
            &forged,
            true,
        ),
        ("garbage, from --pulsar-token", &garbage, false),
    ] {
        let mut args = with_ca(tls_args(&topic, &db));
        if !via_env {
            args = with(args, &["--pulsar-token", token]);
        }
        let mut cmd = command(&args);
        if via_env {
            cmd.env("PULSAR2MYSQL_PULSAR_TOKEN", token);
        }
        let (run, took) = timed(cmd).await;
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert_eq!(run.outcome(), "config_error", "{name}");
        let error = run.summary["error"].as_str().unwrap();
        assert!(
            error.contains("refused the token") && error.contains("--pulsar-token-file"),
            "{name}: {error}"
        );
        assert!(took < PROMPT, "{name}: took {took:?}");
        let secret = token.rsplit('.').next().unwrap();
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(token.as_str()) && !text.contains(secret),
                "{name}: the token appears on {stream}: {text}"
            );
        }
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);
}

#[tokio::test]
async fn tls_without_the_broker_ca_fails_fast_naming_the_certificate() {
    let db = TestDb::new("auth_tls").await;
    let topic = topic("auth_tls");
    produce(&topic, seed_records(0..100), 1).await;
    // The broker's own certificate is no CA: nothing it signed is trusted.
    let not_the_ca = next_to(&ca_file(), "broker.cert.pem");
    let token = token_file();

    for (name, extra) in [
        (
            "no CA file, valid token",
            vec!["--pulsar-token-file", &token],
        ),
        ("no CA file, no token", vec![]),
        (
            "a CA file without the broker's CA",
            vec![
                "--pulsar-token-file",
                &token,
                "--pulsar-tls-ca-file",
                &not_the_ca,
            ],
        ),
    ] {
        let args = with(tls_args(&topic, &db), &extra);
        let (run, took) = timed(command(&args)).await;
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert_eq!(run.outcome(), "config_error", "{name}");
        let error = run.summary["error"].as_str().unwrap();
        assert!(
            error.contains("TLS handshake") && error.contains("certificate is not trusted"),
            "{name}: {error}"
        );
        assert!(error.contains("--pulsar-tls-ca-file"), "{name}: {error}");
        assert!(took < PROMPT, "{name}: took {took:?}");
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);
}

/// The admin API over https (`PULSAR_ADMIN_TLS_URL`), as `scripts/services.sh` serves it;
/// fails the test with the remedy when nothing listens there.
fn admin_tls_url() -> String {
    let url =
        std::env::var("PULSAR_ADMIN_TLS_URL").unwrap_or_else(|_| "https://127.0.0.1:8443".into());
    let addr = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let listening = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        listening,
        "nothing listens on {url}: the broker runs without its TLS admin listener \
         (webServicePortTls); scripts/services.sh up restarts it with the current configuration"
    );
    url
}

/// A topic with `before` records published before the returned time and `after` ones at or
/// after it: a `--from` window of the second part.
async fn topic_with_window(prefix: &str, before: i64, after: i64) -> (String, i64) {
    let topic = topic(prefix);
    produce(&topic, seed_records(0..before), 1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    produce(&topic, seed_records(before..before + after), 1).await;
    (topic, from)
}

fn window_rows(before: i64, after: i64) -> Vec<(i64, String)> {
    (before..before + after)
        .map(|i| (i, format!("msg-{i}")))
        .collect()
}

/// The run copied the window, and the admin API (not a scan) found where it starts.
fn assert_window_found(name: &str, run: &Run, after: i64) {
    assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    assert_eq!(run.u("rows_written"), after as u64, "{name}");
    assert!(
        run.summary["range"]["partitions"][0]["window_start"].is_string(),
        "{name}: {}",
        run.summary
    );
    assert!(
        !run.stderr.contains("cannot ask the admin API"),
        "{name}: {}",
        run.stderr
    );
}

fn assert_token_not_shown(name: &str, run: &Run, token: &str) {
    let signature = token.rsplit('.').next().unwrap();
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(token) && !text.contains(signature),
            "{name}: the token appears on {stream}: {text}"
        );
    }
}

#[tokio::test]
async fn a_window_with_a_token_finds_its_start_over_the_https_admin_api() {
    const BEFORE: i64 = 300;
    const AFTER: i64 = 200;
    let admin = admin_tls_url();
    let (topic, from) = topic_with_window("auth_https_admin", BEFORE, AFTER).await;
    for (name, extra) in [
        (
            "the https admin URL given",
            vec!["--pulsar-admin-url", &admin],
        ),
        // https://<host>:8443 is the default for a pulsar+ssl:// service URL.
        ("the default admin URL", vec![]),
    ] {
        let db = TestDb::new("auth_https_admin").await;
        let args = with(
            with(
                with_ca(tls_args(&topic, &db)),
                &[
                    "--pulsar-token-file",
                    &token_file(),
                    "--from",
                    &from.to_string(),
                ],
            ),
            &extra,
        );
        let (run, _) = timed(command(&args)).await;
        assert_window_found(name, &run, AFTER);
        assert_eq!(db.seed_rows().await, window_rows(BEFORE, AFTER), "{name}");
    }
}

#[tokio::test]
async fn a_token_is_not_sent_to_an_http_admin_url_unless_allowed() {
    const BEFORE: i64 = 100;
    const AFTER: i64 = 100;
    let (topic, from) = topic_with_window("auth_http_admin", BEFORE, AFTER).await;
    let token = valid_token();
    let http_admin = admin_url();
    assert!(http_admin.starts_with("http://"), "{http_admin}");
    let from = from.to_string();

    // Refused at start, before any connection: an http admin URL given for a TLS broker, and
    // the http default of a pulsar:// service URL.
    let db = TestDb::new("auth_http_admin").await;
    for (name, args) in [
        (
            "pulsar+ssl:// with an http admin URL",
            with(
                with_ca(tls_args(&topic, &db)),
                &["--pulsar-admin-url", &http_admin, "--from", &from],
            ),
        ),
        (
            "pulsar:// (http admin URL by default)",
            with(run_args(&topic, &db), &["--from", &from]),
        ),
    ] {
        let mut cmd = command(&args);
        cmd.env("PULSAR2MYSQL_PULSAR_TOKEN", &token);
        let (run, took) = timed(cmd).await;
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert_eq!(run.outcome(), "config_error", "{name}");
        let error = run.summary["error"].as_str().unwrap();
        assert!(
            error.contains("--pulsar-admin-allow-insecure-token")
                && error.contains("https://")
                && error.contains("clear text"),
            "{name}: {error}"
        );
        assert!(took < PROMPT, "{name}: took {took:?}");
        assert_token_not_shown(name, &run, &token);
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);

    // Allowed explicitly, by flag or environment: the token goes over http and the window's
    // start is found.
    for (name, by_flag) in [("the flag", true), ("the environment", false)] {
        let db = TestDb::new("auth_http_admin_ok").await;
        let mut args = with(
            with_ca(tls_args(&topic, &db)),
            &["--pulsar-admin-url", &http_admin, "--from", &from],
        );
        if by_flag {
            args = with(args, &["--pulsar-admin-allow-insecure-token"]);
        }
        let mut cmd = command(&args);
        cmd.env("PULSAR2MYSQL_PULSAR_TOKEN", &token);
        if !by_flag {
            cmd.env("PULSAR2MYSQL_PULSAR_ADMIN_ALLOW_INSECURE_TOKEN", "true");
        }
        let (run, _) = timed(cmd).await;
        assert_window_found(name, &run, AFTER);
        assert_eq!(db.seed_rows().await, window_rows(BEFORE, AFTER), "{name}");
        assert_token_not_shown(name, &run, &token);
    }
}

/// A token for `role`, signed with the broker's key (as `bin/pulsar tokens create` would).
fn token_for(role: &str) -> String {
    let key = std::fs::read(next_to(&token_file(), "token-secret.key")).unwrap();
    let signed_part = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{role}"}}"#))
    );
    let signature = URL_SAFE_NO_PAD.encode(hs256(&key, signed_part.as_bytes()));
    format!("{signed_part}.{signature}")
}

/// A namespace of its own (made by the tests' superuser, the anonymous role) whose topics
/// `role`, if any, may only consume; its name.
fn namespace_consumed_by(role: Option<&str>) -> String {
    let namespace = format!("public/{}", unique("lp").replace('_', "-"));
    let admin = admin_url();
    let (ok, out) = curl(&[
        "-f",
        "-X",
        "PUT",
        &format!("{admin}/admin/v2/namespaces/{namespace}"),
    ]);
    assert!(ok, "creating {namespace}: {out}");
    if let Some(role) = role {
        let (ok, out) = curl(&[
            "-f",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"["consume"]"#,
            &format!("{admin}/admin/v2/namespaces/{namespace}/permissions/{role}"),
        ]);
        assert!(ok, "granting consume on {namespace} to {role}: {out}");
    }
    namespace
}

/// With authorization on (scripts/services.sh), a role granted only `consume` on the
/// namespace runs a publish-time window end to end, every admin API call included: the
/// partition lookup, the topic check, where the window starts (`messageid`), the end
/// snapshot. Nothing falls back to a scan for want of a permission.
#[tokio::test]
async fn a_role_with_only_consume_on_the_namespace_runs_a_window() {
    const BEFORE: i64 = 300;
    const AFTER: i64 = 200;
    let role = "p2m-consumer";
    let namespace = namespace_consumed_by(Some(role));
    let topic = format!("persistent://{namespace}/{}", unique("t"));
    produce(&topic, seed_records(0..BEFORE), 1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    produce(&topic, seed_records(BEFORE..BEFORE + AFTER), 1).await;
    let db = TestDb::new("consume_only").await;
    let token = token_for(role);
    let mut cmd = command(&with(
        with_ca(tls_args(&topic, &db)),
        &[
            "--from",
            &from.to_string(),
            "--to",
            &(now_ms() + 1).to_string(),
        ],
    ));
    cmd.env("PULSAR2MYSQL_PULSAR_TOKEN", &token);
    let (run, _) = timed(cmd).await;
    assert_window_found("consume only", &run, AFTER);
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    assert_eq!(db.seed_rows().await, window_rows(BEFORE, AFTER));
    assert_token_not_shown("consume only", &run, &token);
}

/// A role without `consume` gets exit 2 at once and a sentence that names the permission,
/// not a retry loop that ends in "Pulsar unavailable".
#[tokio::test]
async fn a_role_without_consume_gets_exit_2_naming_the_permission() {
    let namespace = namespace_consumed_by(None);
    let topic = format!("persistent://{namespace}/{}", unique("t"));
    produce(&topic, seed_records(0..10), 1).await;
    let db = TestDb::new("no_consume").await;
    let token = token_for("p2m-stranger");
    let mut cmd = command(&with_ca(tls_args(&topic, &db)));
    cmd.env("PULSAR2MYSQL_PULSAR_TOKEN", &token);
    let (run, took) = timed(cmd).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(took < PROMPT, "took {took:?}");
    let err = run.summary["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("consume") && err.contains("p2m-stranger") && err.contains(&namespace),
        "{err}"
    );
    assert_token_not_shown("no consume", &run, &token);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);
}

/// Every connection to the broker sends at once (TCP_NODELAY), plain and over TLS. With
/// Nagle's algorithm on, a TLS handshake's last records wait for the broker's delayed ACK:
/// 40-60 ms more to open a run's readers over pulsar+ssl (vendor patch 0017).
#[tokio::test]
async fn every_pulsar_connection_sends_without_waiting_for_acks() {
    for (url, ca) in [(pulsar_url(), None), (tls_url(), Some(ca_file()))] {
        let port = port_of(&url, 6650);
        let before: Vec<String> = sockets_to(port).into_iter().map(|(_, s)| s).collect();
        let mut builder = pulsar::Pulsar::builder(url.clone(), pulsar::TokioExecutor);
        if let Some(ca) = &ca {
            builder = builder.with_certificate_chain(std::fs::read(ca).unwrap());
        }
        let client: pulsar::Pulsar<pulsar::TokioExecutor> = builder.build().await.unwrap();
        use pulsar::proto::command_get_topics_of_namespace::Mode;
        client
            .get_topics_of_namespace("public/default".into(), Mode::Persistent)
            .await
            .unwrap();
        let checked = nodelay_of_new_sockets(port, &before, 1, Duration::from_secs(10)).await;
        drop(client);
        assert!(
            !checked.is_empty(),
            "{url}: no connection to the broker seen"
        );
        let waiting: Vec<_> = checked.iter().filter(|(_, on)| !on).collect();
        assert!(
            waiting.is_empty(),
            "{url}: connections with Nagle's algorithm on: {waiting:?} of {checked:?}"
        );
    }
}
