//! Competing sessions that make the server refuse a batch: a deadlock (1213) and a lock wait
//! timeout (1205). Both are retried, each attempt under the checkpoint fence; the run must end
//! exactly once and count the retries.

use std::time::Duration;

use sqlx::MySqlConnection;

use crate::common::*;

/// Waits until one of `db`'s sessions other than `own` waits for a lock.
async fn wait_for_lock_wait(db: &TestDb, own: &mut MySqlConnection) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let sql = format!(
        "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.INNODB_TRX t \
         JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
         WHERE t.trx_state = 'LOCK WAIT' AND p.DB = '{}' AND p.ID <> CONNECTION_ID()",
        db.name
    );
    loop {
        let waiting: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&mut *own)
            .await
            .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never waited for the competing session's lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A session that has written a lot (so InnoDB picks the runner as the deadlock's victim)
/// locks the table's end, which the runner's next batch inserts into, then asks for the
/// partition's checkpoint row the runner holds under its fence: a deadlock. The runner's
/// batch is rolled back by the server, retried, and the run ends exactly once.
#[tokio::test]
async fn a_deadlock_with_a_competing_session_is_retried_exactly_once() {
    const N: i64 = 300_000;
    let db = TestDb::new("deadlock").await;
    db.exec("CREATE TABLE heavy (n INT PRIMARY KEY)").await;
    let topic = topic("deadlock");
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(run_args(&topic, &db), &["--batch-rows", "1000"]);
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 3_000).await;

    let mut other = db.conn().await;
    let values: Vec<String> = (0..20_000).map(|n| format!("({n})")).collect();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "START TRANSACTION; \
         INSERT INTO heavy VALUES {}; \
         SELECT COUNT(*) FROM (SELECT id FROM sink_table FOR UPDATE) locked",
        values.join(",")
    )))
    .execute(&mut other)
    .await
    .unwrap();
    let mut watcher = db.conn().await;
    wait_for_lock_wait(&db, &mut watcher).await;
    // The runner holds its checkpoint row and waits for the table's end; this waits for the
    // row: one of the two must give way, and the lighter one is the runner.
    let competing = sqlx::raw_sql("SELECT * FROM p2m_checkpoint FOR UPDATE")
        .execute(&mut other)
        .await;
    assert!(
        competing.is_ok(),
        "the competing session was chosen as the deadlock's victim: {competing:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();

    let run = ended_within(child, Duration::from_secs(240), "the run did not finish").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.u("retries") >= 1, "no retry counted: {}", run.summary);
    assert!(
        run.stderr.contains("1213") || run.stderr.to_lowercase().contains("deadlock"),
        "the log does not name the deadlock: {}",
        run.stderr
    );
    assert_exact(&db, N).await;
}

/// A competing session locks the table's end for longer than `innodb_lock_wait_timeout`
/// (1 s here): the runner's batch fails with 1205 (which, with the server's default
/// `innodb_rollback_on_timeout=OFF`, rolls back only the statement, not the transaction),
/// is retried from its start, and the run ends exactly once.
#[tokio::test]
#[ignore = "sets a server-wide variable; scripts/test.sh runs it alone"]
async fn a_lock_wait_timeout_is_retried_exactly_once() {
    const N: i64 = 300_000;
    let db = TestDb::new("lockwait").await;
    let _restore = RestoreGlobal("SET GLOBAL innodb_lock_wait_timeout = 50");
    db.exec("SET GLOBAL innodb_lock_wait_timeout = 1").await;
    let topic = topic("lockwait");
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(run_args(&topic, &db), &["--batch-rows", "1000"]);
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 3_000).await;

    let mut other = db.conn().await;
    sqlx::raw_sql(
        "START TRANSACTION; SELECT COUNT(*) FROM (SELECT id FROM sink_table FOR UPDATE) locked",
    )
    .execute(&mut other)
    .await
    .unwrap();
    // Three timeouts' worth.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();

    let run = ended_within(child, Duration::from_secs(240), "the run did not finish").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.u("retries") >= 1, "no retry counted: {}", run.summary);
    assert!(
        run.stderr.contains("1205") || run.stderr.contains("Lock wait timeout"),
        "the log does not name the lock wait timeout: {}",
        run.stderr
    );
    assert_exact(&db, N).await;
}

/// Parallel write streams on a fresh partitioned topic: every partition's first batch fences a
/// checkpoint row that does not exist yet. Its locking read then takes a gap lock, and two such
/// batches inserting their first checkpoint rows into the same gap deadlock (1213) and are
/// retried. The run reserves the rows before it writes, so no batch waits on another.
#[tokio::test]
async fn parallel_streams_do_not_deadlock_on_first_checkpoints() {
    const N: i64 = 40_000;
    let db = TestDb::new("firstcp").await;
    let topic = topic("firstcp");
    create_partitioned(&topic, 8);
    produce(&topic, seed_records(0..N), 100).await;
    let args = with(
        run_args(&topic, &db),
        &[
            "--writers",
            "8",
            "--batch-rows",
            "1000",
            "--write-strategy",
            "insert",
        ],
    );
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_exact(&db, N).await;
    assert!(
        !run.stderr.contains("1213") && !run.stderr.contains("Deadlock"),
        "batches deadlocked on their first checkpoints: {}",
        run.stderr
    );
}

/// A run whose host dies or is cut off sends no FIN: its lock session lingers on the server.
/// The lock connection idles out after `LOCK_IDLE_TIMEOUT_SECS` (not the server's 8-hour
/// `wait_timeout`), so the job can run again about a minute later. A stopped process (SIGSTOP)
/// is such a host: its sockets stay open and silent.
#[tokio::test]
async fn the_lock_of_a_dead_host_is_freed_within_about_a_minute() {
    use pulsar2mysql::sink::{lock_name, LOCK_IDLE_TIMEOUT_SECS};
    let db = TestDb::new("deadhost").await;
    let topic = topic("deadhost");
    produce(&topic, seed_records(0..200_000), 1000).await;
    let job = unique("deadhost-job");
    let args = with(
        run_args(&topic, &db),
        &["--job-id", &job, "--batch-rows", "1000"],
    );
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 2_000).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    let stopped = std::time::Instant::now();
    let mut conn = db.conn().await;
    let freed = loop {
        let free: Option<i64> = sqlx::query_scalar("SELECT IS_FREE_LOCK(?)")
            .bind(lock_name(&job))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if free == Some(1) {
            break Some(stopped.elapsed());
        }
        if stopped.elapsed() > Duration::from_secs(LOCK_IDLE_TIMEOUT_SECS as u64 * 3) {
            break None;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let freed = freed.expect("the stopped run's lock was still held after three idle timeouts");
    assert!(
        freed >= Duration::from_secs(LOCK_IDLE_TIMEOUT_SECS as u64 / 2),
        "the lock was freed after {freed:?}: before the idle timeout, so not by it"
    );
}
