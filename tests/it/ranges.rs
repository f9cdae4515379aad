//! Bounded ranges: publish-time windows with exact boundaries, windows that hold nothing or
//! end in the future, message-id bounds. Every run must end on its own.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn window_selects_exactly_the_middle_phase() {
    let db = TestDb::new("window").await;
    let topic = topic("window");
    produce(&topic, seed_records(0..300), 50).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t1 = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    produce(&topic, seed_records(1000..1300), 50).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t2 = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    produce(&topic, seed_records(2000..2300), 50).await;

    let args = with(
        run_args(&topic, &db),
        &["--from", &t1.to_string(), "--to", &t2.to_string()],
    );
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 300);
    assert_eq!(db.scalar("SELECT MIN(id) FROM sink_table").await, 1000);
    assert_eq!(db.scalar("SELECT MAX(id) FROM sink_table").await, 1299);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        300
    );
    let partition = &run.summary["range"]["partitions"][0];
    assert_eq!(partition["stopped_because"].as_str(), Some("end_of_window"));
    // The window's start came from the broker, not from scanning the first phase.
    assert!(partition["window_start"].is_string(), "{partition}");

    // The same window again (RFC 3339 spelling of the same instants is a different range key,
    // so use the same numbers): nothing new.
    let again = run_binary(&args).await;
    assert_eq!(again.u("rows_written"), 0, "{}", again.stderr);

    // The next window, written as RFC 3339, picks up the last phase only.
    let t2_rfc = chrono::DateTime::from_timestamp_millis(t2)
        .unwrap()
        .to_rfc3339();
    let next = with(
        run_args(&topic, &db),
        &["--from", &t2_rfc, "--to", "latest"],
    );
    let run = run_binary(&next).await;
    assert_eq!(run.u("rows_written"), 300, "{}", run.stderr);
    assert_eq!(db.scalar("SELECT MAX(id) FROM sink_table").await, 2299);
}

#[tokio::test]
async fn empty_window_and_future_window_end_promptly() {
    let db = TestDb::new("empty").await;
    let topic = topic("empty");
    produce(&topic, seed_records(0..100), 10).await;
    let now = now_ms();

    // A window in the past that holds no message.
    let past = with(
        run_args(&topic, &db),
        &[
            "--from",
            &(now - 3_600_000).to_string(),
            "--to",
            &(now - 1_800_000).to_string(),
        ],
    );
    let run = run_binary_within(&past, Duration::from_secs(60)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "nothing_to_do");

    // A window whose end lies in the future: what exists now is read, then the run ends.
    let future = with(
        run_args(&topic, &db),
        &[
            "--from",
            &(now - 600_000).to_string(),
            "--to",
            &(now + 3_600_000).to_string(),
        ],
    );
    let run = run_binary_within(&future, Duration::from_secs(60)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 100);

    // A topic that exists but nobody ever wrote to (created through the admin API).
    let empty_topic = crate::common::topic("never");
    let path = empty_topic.replace("persistent://", "persistent/");
    must_succeed(
        std::process::Command::new("curl")
            .args(["-fsS", "-X", "PUT"])
            .arg(format!("{}/admin/v2/{path}", admin_url())),
        "create an empty topic",
    );
    let run = run_binary_within(&run_args(&empty_topic, &db), Duration::from_secs(60)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "nothing_to_do");
}

/// A mistyped topic is a configuration error in `run` and `check`, found without creating it
/// (most clusters create a topic on first subscription, which would turn the typo into an
/// empty success).
#[tokio::test]
async fn a_topic_that_does_not_exist_is_a_configuration_error() {
    let db = TestDb::new("nosuch").await;
    let missing = crate::common::topic("nosuch");
    let run = run_binary_within(&run_args(&missing, &db), Duration::from_secs(60)).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.outcome(), "config_error");
    let err = run.summary["error"].as_str().unwrap();
    assert!(
        err.contains("does not exist") && err.contains(&missing),
        "{err}"
    );
    let mut check = run_args(&missing, &db);
    check[0] = "check".into();
    let run = run_binary_within(&check, Duration::from_secs(60)).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    // Neither created it.
    let listed = std::process::Command::new("curl")
        .args(["-fsS"])
        .arg(format!(
            "{}/admin/v2/persistent/public/default",
            admin_url()
        ))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!listed.contains(&missing), "the run created {missing}");
}

#[tokio::test]
async fn epoch_seconds_are_refused_with_a_hint() {
    let db = TestDb::new("secs").await;
    let topic = topic("secs");
    let run = run_binary(&with(run_args(&topic, &db), &["--from", "1732500000"])).await;
    assert_eq!(run.code, 2);
    assert_eq!(run.outcome(), "config_error");
    let err = run.summary["error"].as_str().unwrap();
    assert!(
        err.contains("epoch seconds") && err.contains("1732500000000"),
        "{err}"
    );
}

#[tokio::test]
async fn message_id_bounds_start_after_and_stop_at() {
    let db = TestDb::new("ids").await;
    let topic = topic("ids");
    // Unbatched so each record has its own entry id 0..9 in the first ledger.
    produce(&topic, seed_records(0..10), 1).await;
    // Find the ledger through a dry run's resolved range.
    let probe = run_binary(&with(run_args(&topic, &db), &["--dry-run"])).await;
    let end = probe.summary["range"]["partitions"][0]["end_snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let ledger: i64 = end.split(':').next().unwrap().parse().unwrap();

    let args = with(
        run_args(&topic, &db),
        &[
            "--from",
            &format!("id:{ledger}:2"),
            "--to",
            &format!("id:{ledger}:6"),
        ],
    );
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 4);
    let ids: Vec<i64> = db.seed_rows().await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![3, 4, 5, 6]);
}
