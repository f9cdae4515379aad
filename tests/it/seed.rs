//! The seed scenario from Apache InLong's Airflow example, through the real binary.

use crate::common::*;

#[tokio::test]
async fn seed_scenario_moves_10000_records_exactly_and_rerun_writes_nothing() {
    let db = TestDb::new("seed").await;
    let topic = topic("seed");
    // Unbatched, like the seed's Java producer.
    produce(&topic, seed_records(0..10_000), 1).await;

    let run = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "success");
    assert_eq!(run.u("records_read"), 10_000);
    // One message per entry: the broker's work per record at its highest.
    assert_eq!(run.u("entries_read"), 10_000);
    assert_eq!(run.u("rows_written"), 10_000);
    assert_eq!(run.u("bad_records"), 0);
    assert_time_budget_adds_up(&run);

    let rows = db.seed_rows().await;
    assert_eq!(rows.len(), 10_000);
    for (i, (id, name)) in rows.iter().enumerate() {
        assert_eq!(
            *id, i as i64,
            "ids must be 0..9999 exactly (explicit 0 kept)"
        );
        assert_eq!(name, &format!("msg-{i}"));
    }
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM sink_table WHERE create_time IS NULL")
            .await,
        0
    );

    // Same range again: nothing new, and the run says so.
    let again = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.outcome(), "nothing_to_do");
    assert_eq!(again.u("rows_written"), 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 10_000);

    // New records after the first run: a run up to `latest` picks up exactly those.
    produce(&topic, seed_records(10_000..10_500), 100).await;
    let more = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(more.code, 0, "{}", more.stderr);
    assert_eq!(more.u("rows_written"), 500);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 10_500);
    assert_eq!(db.scalar("SELECT MAX(id) FROM sink_table").await, 10_499);

    // Checkpointed at the last message of a batched entry: the partition is known to be
    // finished when the run starts, without reading or waiting for anything.
    let done = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(done.outcome(), "nothing_to_do", "{}", done.stderr);
    assert_eq!(
        done.summary["range"]["partitions"][0]["stopped_because"],
        "already_at_end"
    );
}

#[tokio::test]
async fn dry_run_reads_and_converts_but_writes_nothing() {
    let db = TestDb::new("dry").await;
    let topic = topic("dry");
    produce(&topic, seed_records(0..1000), 100).await;
    let mut args = run_args(&topic, &db);
    args.push("--dry-run".into());
    let run = run_binary(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("records_read"), 1000);
    assert_eq!(run.u("entries_read"), 10, "batches of 100 are 10 entries");
    assert_eq!(run.u("rows_converted"), 1000);
    assert_eq!(run.u("rows_written"), 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);
}

#[tokio::test]
async fn missing_table_is_a_clear_configuration_error() {
    let db = TestDb::new("notable").await;
    let topic = topic("notable");
    produce(&topic, seed_records(0..1), 1).await;
    let mut args = run_args(&topic, &db);
    let i = args.iter().position(|a| a == "sink_table").unwrap();
    args[i] = "no_such_table".into();
    let run = run_binary(&args).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.outcome(), "schema_error");
    assert!(run.summary["error"]
        .as_str()
        .unwrap()
        .contains("no_such_table does not exist"));
}

/// The summary's time budget (issue 25): every moment of a run that read and wrote, in order,
/// within the run, and one COMMIT per batch.
fn assert_time_budget_adds_up(run: &Run) {
    let t = &run.summary["timing"];
    let at = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("timing.{k}: {t}"));
    let total = at("total_ms");
    for k in ["pulsar_setup_ms", "mysql_setup_ms", "first_record_ms"] {
        assert!(at(k) <= at("reading_done_ms"), "{k}: {t}");
    }
    // LOAD DATA streams the batch while it fills: its statement goes out before reading ends.
    assert!(at("first_write_ms") <= at("reading_done_ms"), "{t}");
    assert!(at("reading_done_ms") + at("tail_ms") <= total + 0.2, "{t}");
    assert!(
        at("commit_max_ms") <= at("commit_ms") && at("commit_ms") < total,
        "{t}"
    );
    assert_eq!(
        t["commits"].as_u64(),
        run.summary["batches"].as_u64(),
        "{t}"
    );
    assert!(total <= run.u("duration_ms") as f64 + 50.0, "{t}");
}
