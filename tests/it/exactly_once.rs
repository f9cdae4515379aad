//! Exactly once: kill -9 at several points then re-run, the job lock, write modes on
//! reprocessing.

use crate::common::*;

#[tokio::test]
async fn kill_9_at_several_points_then_rerun_gives_every_row_once() {
    const N: i64 = 1_000_000;
    let db = TestDb::new("kill").await;
    let topic = topic("kill");
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(run_args(&topic, &db), &["--batch-rows", "2000"]);

    for kill_after_rows in [1, 200_000, 500_000, 800_000] {
        let mut child = command(&args).spawn().unwrap();
        wait_mid_run(&db, &mut child, kill_after_rows).await;
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let count = db.scalar("SELECT COUNT(*) FROM sink_table").await;
        let distinct = db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await;
        assert_eq!(
            count, distinct,
            "no duplicates after kill at {kill_after_rows}"
        );
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

#[tokio::test]
async fn a_second_run_of_the_same_job_stops_at_once() {
    let db = TestDb::new("lock").await;
    let topic = topic("lock");
    produce(&topic, seed_records(0..10), 1).await;
    let job = "locked-job";
    // Hold the job's lock the way a running run does.
    let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    let conn = pool.acquire().await.unwrap();
    let lock = pulsar2mysql::sink::checkpoint::JobLock::acquire(conn, job)
        .await
        .unwrap();

    let run = run_binary(&with(run_args(&topic, &db), &["--job-id", job])).await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(run.outcome(), "locked");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);

    lock.release().await;
    let run = run_binary(&with(run_args(&topic, &db), &["--job-id", job])).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 10);
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
