//! What a run tells the world when it ends: the JSON summary and exit code of each way a run
//! ends (success, nothing to do, the bad-record limit, a broker down, SIGTERM), and a MySQL
//! password that shows nowhere, not even in the metrics a failed run leaves.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::metrics::{read_prom, sample, set, temp_dir, wait_child};

/// Runs the binary with extra environment variables.
async fn run_with_env(args: &[String], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    parse(out)
}

#[tokio::test]
async fn summary_and_exit_code_of_success_nothing_to_do_and_bad_record_limit() {
    let db = TestDb::new("mcodes").await;
    let topic = topic("mcodes");
    produce(&topic, seed_records(0..100), 10).await;
    let args = run_args(&topic, &db);

    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "success");
    assert_eq!(run.summary["exit_code"], 0);
    assert_eq!(run.u("records_read"), 100);
    assert_eq!(run.u("rows_written"), 100);
    assert!(run.summary["error"].is_null());

    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "nothing_to_do");
    assert_eq!(run.u("rows_written"), 0);

    // Bad records beyond the limit.
    let bad_topic = crate::common::topic("mcodes_bad");
    let mut records: Vec<Vec<u8>> = seed_records(1000..1010).collect();
    records.extend((0..3).map(|i| format!("x{i}|bad").into_bytes()));
    produce(&bad_topic, records, 1).await;
    let run = run_binary(&with(
        run_args(&bad_topic, &db),
        &["--on-bad-record", "skip", "--max-bad-records", "2"],
    ))
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(run.outcome(), "bad_record_limit");
    assert_eq!(run.summary["exit_code"], 5);
    assert_eq!(run.u("bad_records"), 3);
    assert!(run.summary["error"]
        .as_str()
        .unwrap()
        .contains("--max-bad-records"));
}

/// `run` as the password tests call it: a MySQL URL of their own, a short retry budget, and
/// a metrics file where a leaked password would also show.
fn password_run_args(topic: &str, url: String, metrics_file: &Path) -> Vec<String> {
    vec![
        "run".to_string(),
        "--pulsar-url".into(),
        pulsar_url(),
        "--topic".into(),
        topic.to_string(),
        "--table".into(),
        "sink_table".into(),
        "--mysql-url".into(),
        url,
        "--retry-budget-secs".into(),
        "3".into(),
        "--metrics-file".into(),
        metrics_file.to_str().unwrap().into(),
    ]
}

/// A run with the `wrong` password given `how`: exit code 4 as `sink_unavailable`, and the
/// password on neither stdout nor stderr nor in the metrics file.
async fn assert_wrong_password_hidden(
    how: &str,
    args: Vec<String>,
    env: Vec<(&str, &str)>,
    file: &Path,
    wrong: &str,
) {
    let _ = std::fs::remove_file(file);
    let mut cmd = command(&args);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let run = parse(out);
    assert_eq!(run.code, 4, "{how}: {}", run.stderr);
    assert_eq!(run.outcome(), "sink_unavailable", "{how}");
    assert!(
        !stdout.contains(wrong),
        "{how}: password on stdout: {stdout}"
    );
    assert!(
        !run.stderr.contains(wrong),
        "{how}: password on stderr: {}",
        run.stderr
    );
    let metrics = read_prom(file);
    assert_eq!(
        sample(&metrics, "pulsar2mysql_exit_code", &[]),
        Some(4.0),
        "{how}"
    );
    assert!(!metrics.contains(wrong), "{how}: password in the metrics");
}

#[tokio::test]
async fn wrong_password_exits_4_and_the_password_shows_nowhere() {
    const WRONG: &str = "WrongSecret987";
    const RIGHT: &str = "RightPass123";
    let db = TestDb::new("mpw").await;
    let topic = topic("mpw");
    produce(&topic, seed_records(0..5), 1).await;
    let db_name = db.url.rsplit('/').next().unwrap().to_string();
    let user = unique("p2m_pw");
    db.exec(&format!(
        "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{RIGHT}'; \
         GRANT ALL ON `{db_name}`.* TO '{user}'@'127.0.0.1'"
    ))
    .await;
    let host = mysql_server_url()
        .trim_start_matches("mysql://")
        .rsplit('@')
        .next()
        .unwrap()
        .to_string();
    let dir = temp_dir("p2m_pw");
    let file = dir.join("pw.prom");
    let base = |url: String| password_run_args(&topic, url, &file);
    let in_url = base(format!("mysql://{user}:{WRONG}@{host}/{db_name}"));
    let by_env = base(format!("mysql://{user}@{host}/{db_name}"));

    for (how, args, env) in [
        ("in the URL, text logs", in_url.clone(), vec![]),
        (
            "in the URL, JSON logs",
            with(in_url.clone(), &["--log-format", "json"]),
            vec![],
        ),
        (
            "in PULSAR2MYSQL_MYSQL_PASSWORD",
            by_env.clone(),
            vec![("PULSAR2MYSQL_MYSQL_PASSWORD", WRONG)],
        ),
    ] {
        assert_wrong_password_hidden(how, args, env, &file, WRONG).await;
    }

    // The right password through the environment works, and does not show either.
    let run = run_with_env(&by_env, &[("PULSAR2MYSQL_MYSQL_PASSWORD", RIGHT)]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 5);
    assert!(!run.stderr.contains(RIGHT) && !run.summary.to_string().contains(RIGHT));
    assert!(!read_prom(&file).contains(RIGHT));

    db.exec(&format!("DROP USER '{user}'@'127.0.0.1'")).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn broker_down_exits_3_as_source_unavailable() {
    let db = TestDb::new("mdown").await;
    let topic = topic("mdown");
    let started = Instant::now();
    let run = run_binary_within(
        &with(
            set(
                run_args(&topic, &db),
                "--pulsar-url",
                "pulsar://127.0.0.1:6659",
            ),
            &["--retry-budget-secs", "3"],
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.outcome(), "source_unavailable");
    assert_eq!(run.summary["exit_code"], 3);
    assert!(run.summary["error"].as_str().unwrap().contains("Pulsar"));
    assert!(started.elapsed() < Duration::from_secs(45));
}

#[tokio::test]
async fn sigterm_mid_run_exits_130_then_a_rerun_completes_exactly_once() {
    const N: i64 = 200_000;
    let db = TestDb::new("mterm").await;
    let topic = topic("mterm");
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(run_args(&topic, &db), &["--batch-rows", "1000"]);

    let mut child = command(&args).spawn().unwrap();
    let pid = child.id() as i32;
    wait_mid_run(&db, &mut child, 5_000).await;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let run = wait_child(child, Duration::from_secs(60)).await;
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert_eq!(run.outcome(), "interrupted");
    assert_eq!(run.summary["exit_code"], 130);
    let written = run.u("rows_written");
    assert!(written > 0 && written < N as u64, "{written}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM sink_table").await,
        written as i64,
        "the summary counts what was committed"
    );

    let rerun = run_binary(&args).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_eq!(rerun.outcome(), "success");
    assert_eq!(rerun.u("rows_written") + written, N as u64);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, N);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        N
    );
}
