//! TLS to MySQL: one policy for both write paths (sqlx for control and INSERT, mysql_async for
//! LOAD DATA), against the MariaDB of scripts/services.sh, whose certificate is issued by the
//! local CA (the same file as the broker's, PULSAR_TLS_CA_FILE).

use std::time::Duration;

use crate::common::*;

fn local_ca() -> String {
    std::env::var("PULSAR_TLS_CA_FILE").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/.cache/secrets/ca.cert.pem").into()
    })
}

#[tokio::test]
async fn verified_tls_on_both_write_paths_and_a_wrong_ca_is_a_configuration_error() {
    let db = TestDb::new("mytls").await;
    let topic = topic("mytls");
    produce(&topic, seed_records(0..1000), 100).await;
    let ca = local_ca();
    for strategy in ["load-data", "insert"] {
        let run = run_binary(&with(
            run_args(&topic, &db),
            &[
                "--write-strategy",
                strategy,
                "--reprocess",
                "--mode",
                "ignore-duplicates",
                "--mysql-ssl-mode",
                "verify-identity",
                "--mysql-ssl-ca",
                &ca,
            ],
        ))
        .await;
        assert_eq!(run.code, 0, "{strategy}: {}", run.stderr);
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 1000);

    // A CA that did not sign the server's certificate: refused at once, never retried.
    let wrong = "/etc/ssl/certs/ca-certificates.crt";
    let args = with(
        run_args(&topic, &db),
        &[
            "--mysql-ssl-mode",
            "verify-ca",
            "--mysql-ssl-ca",
            wrong,
            "--retry-budget-secs",
            "60",
        ],
    );
    let started = std::time::Instant::now();
    let run = run_binary_within(&args, Duration::from_secs(50)).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let error = run.summary["error"].as_str().unwrap();
    assert!(
        error.contains("TLS") || error.contains("certificate"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(50));
}

/// A server that requires secure transport: the default policy (preferred) encrypts the LOAD
/// DATA connection too, and `check` tries that connection, so it fails where the run would.
#[tokio::test]
#[ignore = "sets require_secure_transport server-wide; scripts/test.sh runs it alone"]
async fn require_secure_transport_serves_both_paths_and_check_tries_the_load_data_connection() {
    let db = TestDb::new("securetx").await;
    let topic = topic("securetx");
    produce(&topic, seed_records(0..1000), 100).await;
    let _restore = RestoreGlobal("SET GLOBAL require_secure_transport = OFF");
    db.exec("SET GLOBAL require_secure_transport = ON").await;

    let mut check = with(run_args(&topic, &db), &["--write-strategy", "load-data"]);
    check[0] = "check".into();
    let ok = run_binary(&check).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let run = run_binary(&with(
        run_args(&topic, &db),
        &["--write-strategy", "load-data"],
    ))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 1000);

    // Without TLS the server refuses, and check says so before any run.
    let mut plain = with(
        run_args(&topic, &db),
        &[
            "--write-strategy",
            "load-data",
            "--mysql-ssl-mode",
            "disabled",
        ],
    );
    plain[0] = "check".into();
    let refused = run_binary(&plain).await;
    assert_ne!(refused.code, 0, "{}", refused.stderr);
}

/// Every MySQL connection a run opens sends at once (TCP_NODELAY). With Nagle's algorithm on,
/// a TLS handshake's last records wait for the server's delayed ACK: ~40 ms per connection
/// on the run's critical path (sqlx 0.9.0 stopped setting it, launchbadge/sqlx#4335).
#[tokio::test]
async fn every_mysql_connection_sends_without_waiting_for_acks() {
    let db = TestDb::new("nodelay").await;
    let port = port_of(&db.url, 3306);
    let before: Vec<String> = sockets_to(port).into_iter().map(|(_, s)| s).collect();
    let cfg = pulsar2mysql::config::SinkConfig {
        url: db.url.clone(),
        password: None,
        table: "sink_table".into(),
        mode: pulsar2mysql::config::WriteMode::Insert,
        strategy: pulsar2mysql::config::WriteStrategy::LoadData,
        batch_rows: None,
        batch_bytes: 1 << 22,
        writers: None,
        retry_budget: Duration::from_secs(10),
        io_timeout: Duration::from_secs(10),
        tls: Default::default(), // preferred: TLS, as the services' MariaDB offers it
    };
    let sink = pulsar2mysql::sink::MysqlSink::connect(&cfg, false)
        .await
        .unwrap();
    // The control connection at once, the LOAD DATA one warming up in the background.
    let checked = nodelay_of_new_sockets(port, &before, 2, Duration::from_secs(10)).await;
    sink.close().await;
    assert!(checked.len() >= 2, "the sink opened {checked:?}");
    let waiting: Vec<_> = checked.iter().filter(|(_, on)| !on).collect();
    assert!(
        waiting.is_empty(),
        "MySQL connections with Nagle's algorithm on: {waiting:?} of {checked:?}"
    );
}
