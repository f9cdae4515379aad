//! Partitioned topics: every partition read concurrently, or a chosen subset.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn partitioned_topic_is_read_completely_and_subsets_add_up() {
    let db = TestDb::new("parts").await;
    let topic = topic("parts");
    create_partitioned(&topic, 4);
    produce(&topic, seed_records(0..8000), 100).await;

    let run = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 8000);
    assert_eq!(
        run.summary["range"]["partitions"].as_array().unwrap().len(),
        4
    );
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        8000
    );

    // Fan-out: two workers with disjoint partition sets fill a second table exactly.
    db.exec("CREATE TABLE sink2 LIKE sink_table").await;
    let mut total = 0;
    for set in ["0,2", "1,3"] {
        let mut args = run_args(&topic, &db);
        let i = args.iter().position(|a| a == "sink_table").unwrap();
        args[i] = "sink2".into();
        args.extend(["--partitions".into(), set.into()]);
        let run = run_binary(&args).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.summary["range"]["partitions"].as_array().unwrap().len(),
            2
        );
        total += run.u("rows_written");
    }
    assert_eq!(total, 8000);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink2").await,
        8000
    );

    // A partition that does not exist is a usage error.
    let mut args = run_args(&topic, &db);
    args.extend(["--partitions".into(), "7".into()]);
    let run = run_binary(&args).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
}

/// The topic is unloaded (moved off its broker, as a rebalance does) in the middle of a run:
/// the readers reconnect and resume after the last position seen; every record exactly once.
#[tokio::test]
async fn a_topic_unloaded_mid_read_is_read_exactly_once() {
    const N: i64 = 300_000;
    let db = TestDb::new("unload").await;
    let topic = topic("unload");
    produce(&topic, seed_records(0..N), 1000).await;
    let args = with(run_args(&topic, &db), &["--batch-rows", "100"]);
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 2_000).await;
    let path = topic.replace("persistent://", "persistent/");
    must_succeed(
        std::process::Command::new("curl")
            .args(["-fsS", "-X", "PUT"])
            .arg(format!("{}/admin/v2/{path}/unload", admin_url())),
        "unload the topic",
    );
    let run = ended_within(child, Duration::from_secs(240), "the run did not finish").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_exact(&db, N).await;
}

/// More partitions than writers: the partitions that wait for a writer subscribe when their
/// turn comes (their end snapshots are taken at the start); a second run resumes every one
/// after its checkpoint, the waiting ones included.
#[tokio::test]
async fn partitions_waiting_for_a_writer_subscribe_when_read_and_resume() {
    let db = TestDb::new("lazy").await;
    let topic = topic("lazy");
    create_partitioned(&topic, 6);
    produce(&topic, seed_records(0..6000), 100).await;
    let args = with(run_args(&topic, &db), &["--writers", "2"]);
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 6000);
    produce(&topic, seed_records(6000..9000), 100).await;
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 3000);
    assert_exact(&db, 9000).await;
}

/// A stream's partitions fill one batch together: one transaction (one LOAD DATA statement)
/// carries rows of all of them, every one's checkpoint, and the dead letters of each under
/// its own partition. A re-run resumes each partition after its own checkpoint.
#[tokio::test]
async fn partitions_read_side_by_side_share_one_batch_and_its_checkpoints() {
    let db = TestDb::new("shared").await;
    let topic = topic("shared");
    create_partitioned(&topic, 4);
    let records = seed_records(0..8000).chain([b"x|not a number".to_vec()]);
    produce(&topic, records, 100).await;
    let args = with(
        run_args(&topic, &db),
        &[
            "--writers",
            "1",
            "--batch-rows",
            "100000",
            "--on-bad-record",
            "dead-letter",
        ],
    );
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 8000);
    // One batch for the four partitions (it was one per partition at least).
    assert_eq!(run.u("batches"), 1, "{}", run.summary);
    // Reading in step says how long it held the stream back (the time budget's share of it).
    assert!(
        run.summary["timing"]["lockstep_held_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0),
        "{}",
        run.summary
    );
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM p2m_checkpoint WHERE ledger_id >= 0 AND partition_index \
             BETWEEN 0 AND 3"
        )
        .await,
        4
    );
    assert_eq!(
        db.scalar("SELECT SUM(records) FROM p2m_checkpoint").await,
        8001
    );
    // The dead letter is filed under the partition it was read from.
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM p2m_dead_letter \
             WHERE topic LIKE CONCAT('%-partition-', partition_index)"
        )
        .await,
        1
    );
    produce(&topic, seed_records(8000..9000), 100).await;
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 1000);
    assert_exact(&db, 9000).await;
}

/// More partitions than a stream reads at once (64): those that wait join between batches;
/// every record exactly once.
#[tokio::test]
async fn partitions_joining_a_stream_between_batches_are_read_exactly_once() {
    let db = TestDb::new("joining").await;
    let topic = topic("joining");
    create_partitioned(&topic, 70);
    produce(&topic, seed_records(0..21_000), 100).await;
    let args = with(
        run_args(&topic, &db),
        &["--writers", "1", "--batch-rows", "100000"],
    );
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 21_000);
    assert!(
        run.u("batches") >= 2,
        "the last 6 join a later batch: {}",
        run.summary
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM p2m_checkpoint WHERE ledger_id >= 0")
            .await,
        70
    );
    assert_exact(&db, 21_000).await;
    delete_partitioned(&topic);
}

/// A producer spreads keys over every partition: partitions read in turns would fill the
/// table in sparse passes over the whole key range, each splitting the pages the one before
/// left (1e7 rows from 64 partitions read 16 at a time: a table 2.6 times the size). Up to
/// 64 partitions are read side by side: one batch carries them all.
#[tokio::test]
async fn up_to_64_partitions_are_read_side_by_side_in_one_batch() {
    let db = TestDb::new("wide").await;
    let topic = topic("wide");
    create_partitioned(&topic, 64);
    produce(&topic, seed_records(0..12_800), 100).await;
    let args = with(
        run_args(&topic, &db),
        &["--writers", "1", "--batch-rows", "100000"],
    );
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 12_800);
    assert_eq!(run.u("batches"), 1, "{}", run.summary);
    assert_exact(&db, 12_800).await;
    delete_partitioned(&topic);
}
