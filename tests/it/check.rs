//! `pulsar2mysql check`: fails fast, with the reason, before any row is written.

use crate::common::*;

fn check_args(topic: &str, db: &TestDb, extra: &[&str]) -> Vec<String> {
    let mut args = with(run_args(topic, db), extra);
    args[0] = "check".into();
    args
}

#[tokio::test]
async fn check_passes_on_a_good_setup_and_names_what_is_wrong_otherwise() {
    let db = TestDb::new("check").await;
    let topic = topic("check");
    produce(&topic, seed_records(0..1), 1).await;

    let ok = run_binary(&check_args(&topic, &db, &[])).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        ok.summary["mapped_columns"],
        serde_json::json!(["id", "name"])
    );
    // services.sh starts MariaDB with local_infile=ON, so auto picks LOAD DATA.
    assert_eq!(ok.summary["write_strategy"], "load-data");

    let bad_column = run_binary(&check_args(&topic, &db, &["--columns", "id,title"])).await;
    assert_eq!(bad_column.code, 2, "{}", bad_column.stderr);
    assert!(bad_column.summary["error"]
        .as_str()
        .unwrap()
        .contains("`title`"));

    let mut args = check_args(&topic, &db, &["--retry-budget-secs", "2"]);
    let i = args.iter().position(|a| a == "--pulsar-url").unwrap();
    args[i + 1] = "pulsar://127.0.0.1:6659".into(); // nothing listens there
    let no_broker = run_binary(&args).await;
    assert_eq!(no_broker.code, 3, "{}", no_broker.stderr);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 0);
}

/// `migrate` prepares the project's tables in a database that has nothing yet: no sink
/// table, no topic given (a DBA runs it before the first job is configured).
#[tokio::test]
async fn migrate_works_on_an_empty_database() {
    let db = TestDb::new("migrate").await;
    db.exec("DROP TABLE sink_table").await;
    let run = run_binary(&[
        "migrate".to_string(),
        "--mysql-url".to_string(),
        db.url.clone(),
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome(), "migrated");
    for table in ["p2m_checkpoint", "p2m_dead_letter", "p2m_window_end"] {
        assert_eq!(
            db.scalar(&format!(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
            ))
            .await,
            1,
            "{table}"
        );
    }
    // Twice is fine.
    let again = run_binary(&[
        "migrate".to_string(),
        "--mysql-url".to_string(),
        db.url.clone(),
    ])
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
}
