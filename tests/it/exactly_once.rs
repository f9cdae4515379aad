//! Exactly once: kill -9 at several points then re-run, the job lock, write modes on
//! reprocessing.

use std::time::Duration;

use crate::common::*;

/// Runs `args` until the table holds `rows` rows, kills it (SIGKILL) and checks that no row
/// is there twice.
async fn kill_9_once_past(db: &TestDb, args: &[String], rows: i64) {
    let mut child = command(args).spawn().unwrap();
    wait_mid_run(db, &mut child, rows).await;
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    // One statement, one snapshot: the killed run's last COMMIT may still be landing.
    let duplicates = db
        .scalar("SELECT COUNT(*) - COUNT(DISTINCT id) FROM sink_table")
        .await;
    assert_eq!(duplicates, 0, "duplicates after kill at {rows}");
}

#[tokio::test]
async fn kill_9_at_several_points_then_rerun_gives_every_row_once() {
    const N: i64 = 1_000_000;
    let db = TestDb::new("kill").await;
    let topic = topic("kill");
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(run_args(&topic, &db), &["--batch-rows", "2000"]);

    for rows in [1, 200_000, 500_000, 800_000] {
        kill_9_once_past(&db, &args, rows).await;
    }

    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, N);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        N
    );
    assert_eq!(db.scalar("SELECT MAX(id) FROM sink_table").await, N - 1);
    assert_eq!(
        db.scalar("SELECT SUM(name <> CONCAT('msg-', id)) FROM sink_table")
            .await,
        0
    );
}

/// The same over a partitioned topic, the runs alternating between one write stream fed by
/// every partition (batches holding rows of several partitions, all their checkpoints in one
/// transaction) and three parallel streams: every partition's checkpoint commits with its
/// rows either way; the last run uses the default (one stream).
#[tokio::test]
async fn kill_9_over_a_partitioned_topic_then_rerun_gives_every_row_once() {
    const N: i64 = 400_000;
    let db = TestDb::new("kill_part").await;
    let topic = topic("kill_part");
    create_partitioned(&topic, 4);
    produce(&topic, seed_records(0..N), 1000).await;
    let base = with(run_args(&topic, &db), &["--batch-rows", "2000"]);
    let one_stream = with(base.clone(), &["--writers", "1"]);
    let three_streams = with(base.clone(), &["--writers", "3"]);

    for (kill_after_rows, args) in [
        (1, &one_stream),
        (60_000, &three_streams),
        (150_000, &one_stream),
        (300_000, &three_streams),
    ] {
        kill_9_once_past(&db, args, kill_after_rows).await;
    }

    let run = run_binary(&base).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_exact(&db, N).await;
}

#[tokio::test]
async fn a_second_run_of_the_same_job_stops_at_once() {
    let db = TestDb::new("lock").await;
    let topic = topic("lock");
    produce(&topic, seed_records(0..10), 1).await;
    let job = "locked-job";
    // Hold the job's lock the way a running run does.
    let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    let conn = pool.acquire().await.unwrap();
    let lock = pulsar2mysql::sink::JobLock::acquire(conn, job)
        .await
        .unwrap();

    let run = run_binary(&with(run_args(&topic, &db), &["--job-id", job])).await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(run.outcome(), "locked");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);

    lock.release(std::time::Duration::from_secs(10)).await;
    let run = run_binary(&with(run_args(&topic, &db), &["--job-id", job])).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 10);
}

/// A second writer of the same partition (here: the checkpoint moved by hand, as a runner that
/// lost its lock would move it) stops the run before it writes another batch: every batch
/// checks, in its own transaction, that the checkpoint is where this run left it.
async fn a_moved_checkpoint_stops_the_run(strategy: &str) {
    const N: i64 = 300_000;
    let prefix = format!("fence_{}", strategy.replace('-', "_"));
    let db = TestDb::new(&prefix).await;
    let topic = topic(&prefix);
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(
        run_args(&topic, &db),
        &["--batch-rows", "100", "--write-strategy", strategy],
    );
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 2_000).await;
    db.exec("UPDATE p2m_checkpoint SET entry_id = entry_id + 1000000")
        .await;
    let run = ended_within(child, Duration::from_secs(120), "the run went on").await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(run.outcome(), "locked");
    let error = run.summary["error"].as_str().unwrap();
    assert!(error.contains("another run of the same job"), "{error}");
    // Nothing past the moved checkpoint: rows stop within one batch of the move.
    let rows = db.scalar("SELECT COUNT(*) FROM sink_table").await;
    assert!(
        rows < N,
        "the run wrote the whole range past a moved checkpoint"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) - COUNT(DISTINCT id) FROM sink_table")
            .await,
        0
    );
}

#[tokio::test]
async fn a_moved_checkpoint_stops_a_load_data_run() {
    a_moved_checkpoint_stops_the_run("load-data").await;
}

#[tokio::test]
async fn a_moved_checkpoint_stops_an_insert_run() {
    a_moved_checkpoint_stops_the_run("insert").await;
}

/// The connection holding the job lock is killed in the middle of a run (`KILL`, as an
/// operator, a proxy's idle timeout or `wait_timeout` would end it). With nobody else waiting
/// for the lock, the run takes it again and ends exactly once; when another run grabbed it in
/// between, the run stops with exit 6 instead of writing beside it.
async fn kill_the_lock_connection(competitor: bool) {
    const N: i64 = 300_000;
    let prefix = if competitor { "lostlock" } else { "retakelock" };
    let db = TestDb::new(prefix).await;
    let topic = topic(prefix);
    produce(&topic, seed_records(0..N), 1000).await;
    let job = unique(prefix);
    let args = with(
        run_args(&topic, &db),
        &["--batch-rows", "100", "--job-id", &job],
    );
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 2_000).await;
    let name = pulsar2mysql::sink::lock_name(&job);
    let holder = db.scalar(&format!("SELECT IS_USED_LOCK('{name}')")).await;
    let mut other = db.conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {holder}")))
        .execute(&mut other)
        .await
        .unwrap();
    if competitor {
        // KILL is asynchronous: wait (up to 10 s) for the server to free the lock, then hold it.
        let got: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT GET_LOCK('{name}', 10)"
        )))
        .fetch_one(&mut other)
        .await
        .unwrap();
        assert_eq!(got, Some(1));
    }
    let what = "the run neither finished nor stopped";
    let run = ended_within(child, Duration::from_secs(120), what).await;
    if competitor {
        assert_eq!(run.code, 6, "{}", run.stderr);
        let error = run.summary["error"].as_str().unwrap();
        assert!(error.contains("job lock was lost"), "{error}");
        assert!(run.u("rows_written") < N as u64, "the run did not stop");
        drop(other); // the competitor goes away; a re-run completes the range
        let rerun = run_binary(&args).await;
        assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    } else {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("the job lock was lost and is held again"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, N);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        N
    );
}

#[tokio::test]
async fn a_lost_job_lock_taken_by_another_run_stops_the_run() {
    kill_the_lock_connection(true).await;
}

#[tokio::test]
async fn a_lost_job_lock_nobody_else_wants_is_taken_again() {
    kill_the_lock_connection(false).await;
}

#[tokio::test]
async fn reprocess_under_each_write_mode() {
    let db = TestDb::new("modes").await;
    let topic = topic("modes");
    produce(&topic, seed_records(0..100), 10).await;
    let run = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(run.u("rows_written"), 100);

    // Plain insert refuses to duplicate keys, and says what to do.
    let run = run_binary(&with(run_args(&topic, &db), &["--reprocess"])).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.summary["error"]
        .as_str()
        .unwrap()
        .contains("--mode upsert"));

    // ignore-duplicates keeps the rows and counts the duplicates.
    db.exec("UPDATE sink_table SET name = 'changed' WHERE id = 5")
        .await;
    let run = run_binary(&with(
        run_args(&topic, &db),
        &["--reprocess", "--mode", "ignore-duplicates"],
    ))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 0);
    assert_eq!(run.u("duplicates_skipped"), 100);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM sink_table WHERE name = 'changed'")
            .await,
        1
    );

    // upsert overwrites with the record's values.
    let run = run_binary(&with(
        run_args(&topic, &db),
        &["--reprocess", "--mode", "upsert"],
    ))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM sink_table WHERE name = 'changed'")
            .await,
        0
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 100);
}

/// A run killed right after sending COMMIT releases its job lock (its connections close) while
/// the server may still be committing its last batch. The next run must read the checkpoint
/// that commit writes, not the one before it, or the batch lands twice. Simulated with a
/// transaction held open: the rows and the checkpoint of the whole range, committed 1.5 s
/// after the next run started. The table has no key, so nothing would refuse the duplicates.
#[tokio::test]
async fn a_commit_still_landing_when_the_next_run_starts_is_not_written_twice() {
    let db = TestDb::new("landing").await;
    db.exec("CREATE TABLE sink_nokey (id INT NOT NULL, name VARCHAR(255) NOT NULL)")
        .await;
    let topic = topic("landing");
    produce(&topic, seed_records(0..100), 1).await;
    let args: Vec<String> = with(run_args(&topic, &db), &["--job-id", "landing-job"])
        .into_iter()
        .map(|a| {
            if a == "sink_table" {
                "sink_nokey".into()
            } else {
                a
            }
        })
        .collect();
    let mut migrate = args.clone();
    migrate[0] = "migrate".into();
    must_succeed(&mut command(&migrate), "migrate");
    let dry = run_binary(&with(args.clone(), &["--dry-run"])).await;
    let end = dry.summary["range"]["partitions"][0]["end_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("no end snapshot: {}", dry.summary))
        .to_string();
    let mut id: Vec<i64> = end.split(':').map(|x| x.parse().unwrap()).collect();
    id.resize(3, -1);

    // The dying run's last transaction: every row and the checkpoint at the range's end.
    let mut held = db.conn().await;
    let values: Vec<String> = (0..100).map(|i| format!("({i}, 'msg-{i}')")).collect();
    for sql in [
        "BEGIN".to_string(),
        format!(
            "INSERT INTO sink_nokey (id, name) VALUES {}",
            values.join(",")
        ),
        format!(
            "INSERT INTO p2m_checkpoint (job_id, range_key, partition_index, ledger_id, \
             entry_id, batch_index, publish_time, records) VALUES ('landing-job', \
             'from=earliest;to=latest', -1, {}, {}, {}, 0, 100)",
            id[0], id[1], id[2]
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut held)
            .await
            .unwrap();
    }

    let child = command(&args).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::raw_sql("COMMIT").execute(&mut held).await.unwrap();
    let run = parse(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 0, "{}", run.summary);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_nokey").await, 100);
}

/// A competing session holds the partition's checkpoint row (`FOR UPDATE`) for a few seconds,
/// as a long report or a second tool would: the run's next batch waits for it and the run ends
/// exactly once.
#[tokio::test]
async fn a_competing_lock_on_the_checkpoint_only_delays_the_run() {
    const N: i64 = 300_000;
    let db = TestDb::new("contend").await;
    let topic = topic("contend");
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(run_args(&topic, &db), &["--batch-rows", "100"]);
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 2_000).await;
    let mut other = db.conn().await;
    sqlx::raw_sql("START TRANSACTION; SELECT * FROM p2m_checkpoint FOR UPDATE")
        .execute(&mut other)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    let run = ended_within(child, Duration::from_secs(240), "the run did not finish").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_exact(&db, N).await;
}
