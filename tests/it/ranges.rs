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

/// Two producers: one record held in a client batch is stored after a newer record of another
/// producer, with an earlier publish time (clock skew does the same). With a window boundary
/// between the two publish times, the first window stops at the newer record and the late one
/// lies past its stop; the job's next window starts right where the previous one stopped, so it
/// takes the late record too: consecutive windows leave no gap.
#[tokio::test]
async fn consecutive_windows_leave_no_gap_when_publish_times_are_out_of_order() {
    let db = TestDb::new("chain").await;
    let topic = topic("chain");
    produce(&topic, seed_records(0..5), 1).await;
    let late_sent = produce_late(&topic, "5|msg-5", "6|msg-6");
    produce(&topic, seed_records(7..10), 1).await;
    // Record 5 is stamped about late_sent, record 6 a second later but stored first.
    let boundary = late_sent + 500;
    let (first, _) = two_chained_windows(&topic, &db, boundary).await;
    assert_eq!(first.u("rows_written"), 5, "{}", first.stdout);
    let ids: Vec<i64> = db.seed_rows().await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        (0..10).collect::<Vec<_>>(),
        "a record fell between the windows"
    );
}

/// A window that starts after the partition's last message (a topic quiet for a whole
/// schedule interval): the admin API places the window's start past the end snapshot, and
/// the run ends at once with nothing to do (it used to reconnect until its retry budget ran
/// out and exit 3).
#[tokio::test]
async fn a_window_after_the_last_message_ends_at_once() {
    let db = TestDb::new("quiet").await;
    let topic = topic("quiet");
    produce(&topic, seed_records(0..5), 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = now_ms();
    let args = with(
        run_args(&topic, &db),
        &[
            "--from",
            &(now - 1000).to_string(),
            "--to",
            &now.to_string(),
            "--retry-budget-secs",
            "20",
        ],
    );
    let run = run_binary_within(&args, Duration::from_secs(15)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "nothing_to_do");
}

/// A window whose first message is already past its end (a record stored after a newer one,
/// as in the test above, with the newer one first in the window): it reads nothing, but it
/// still records where it stopped, so the job's next window is chained and takes the late
/// record. Unchained, the next window started by publish time and skipped it as too old.
#[tokio::test]
async fn a_window_stopped_by_its_first_message_still_chains_the_next() {
    let db = TestDb::new("chain_first").await;
    let topic = topic("chain_first");
    let late_sent = produce_late(&topic, "5|msg-5", "6|msg-6");
    // Record 6 (stamped about late_sent + 1 s) is stored first, record 5 (about late_sent)
    // after it: the window [.., late_sent + 500) starts at 6, which is past its end.
    let boundary = late_sent + 500;
    let (first, _) = two_chained_windows(&topic, &db, boundary).await;
    assert_eq!(first.u("rows_written"), 0, "{}", first.stdout);
    let ids: Vec<i64> = db.seed_rows().await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![5, 6], "a record fell between the windows");
}

/// Writes `late` so that it is stored after `newer` with an earlier publish time (see
/// tests/producers/python_late_producer.py); returns the epoch ms taken just before `late`
/// was sent.
fn produce_late(topic: &str, late: &str, newer: &str) -> i64 {
    let python =
        std::env::var("P2M_PYTHON").unwrap_or_else(|_| ".cache/venv-pulsar/bin/python".into());
    let out = std::process::Command::new(python)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/producers/python_late_producer.py"
            ),
            &pulsar_url(),
            topic,
            late,
            newer,
        ])
        .output()
        .expect("python with pulsar-client (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Two consecutive windows of one job, `[boundary - 1 h, boundary)` then `[boundary, now +
/// 1 min)`: both succeed, and the second is chained to where the first stopped.
async fn two_chained_windows(topic: &str, db: &TestDb, boundary: i64) -> (Run, Run) {
    let job = unique("chain-job");
    let window = |from: i64, to: i64| {
        with(
            run_args(topic, db),
            &[
                "--job-id",
                &job,
                "--from",
                &from.to_string(),
                "--to",
                &to.to_string(),
            ],
        )
    };
    let first = run_binary(&window(boundary - 3_600_000, boundary)).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = run_binary(&window(boundary, now_ms() + 60_000)).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.summary["range"]["partitions"][0]["previous_window_end"].is_string(),
        "{}",
        second.stdout
    );
    (first, second)
}
