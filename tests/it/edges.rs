//! The edges where a run used to end green with the table wrong (issue 21): a refusal taken
//! for a duplicate, a partition read twice, values the column changes on the way in, poison
//! records that failed every re-run, and a default mapping that refused every record.

use crate::common::*;

/// Both write paths, since each compares what the server skipped in its own way.
const STRATEGIES: [&str; 2] = ["load-data", "insert"];

/// [`run_args`] into `table` instead of the seed's table.
fn into_table(topic: &str, db: &TestDb, table: &str) -> Vec<String> {
    let mut args = run_args(topic, db);
    let at = args
        .iter()
        .position(|a| a == "--table")
        .expect("run_args names a table");
    args[at + 1] = table.to_string();
    args
}

/// A child row whose parent does not exist is refused by the foreign key; under
/// `ignore-duplicates` that refusal must not pass as a skipped duplicate.
#[tokio::test]
async fn ignore_duplicates_does_not_swallow_a_foreign_key_refusal() {
    for strategy in STRATEGIES {
        let db = TestDb::new("fk").await;
        db.exec(
            "CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO parent VALUES (1);
             CREATE TABLE child (id INT PRIMARY KEY, pid INT NOT NULL,
               FOREIGN KEY (pid) REFERENCES parent (id)) ENGINE=InnoDB;
             INSERT INTO child VALUES (3, 1)",
        )
        .await;
        let topic = topic("fk");
        produce(
            &topic,
            [b"1|42".to_vec(), b"2|1".to_vec(), b"3|1".to_vec()],
            1,
        )
        .await;
        let args = with(
            into_table(&topic, &db, "child"),
            &["--mode", "ignore-duplicates", "--write-strategy", strategy],
        );
        let run = run_binary(&args).await;
        assert_ne!(run.code, 0, "{strategy}: {}", run.stdout);
        let err = run.summary["error"].as_str().unwrap_or_default();
        assert!(err.contains("1452"), "{strategy}: {err}");
        // Nothing of the batch landed, and the checkpoint did not move past the record.
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM child").await,
            1,
            "{strategy}"
        );
        // A duplicate alone is still skipped, as asked.
        db.exec(
            "DELETE FROM child; INSERT INTO parent VALUES (42); INSERT INTO child VALUES (3, 1)",
        )
        .await;
        let again = run_binary(&args).await;
        assert_eq!(again.code, 0, "{strategy}: {}", again.stderr);
        assert_eq!(again.u("rows_written"), 2, "{strategy}");
        assert_eq!(again.u("duplicates_skipped"), 1, "{strategy}");
    }
}

/// The same partition named twice would open two readers of it and write every record twice.
#[tokio::test]
async fn a_repeated_partition_is_a_configuration_error() {
    let db = TestDb::new("dup_part").await;
    let topic = topic("dup_part");
    create_partitioned(&topic, 2);
    let run = run_binary(&with(run_args(&topic, &db), &["--partitions", "0,1,0"])).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let err = run.summary["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("partition 0") && err.contains("twice"),
        "{err}"
    );
    // From the environment too.
    let mut cmd = command(&run_args(&topic, &db));
    cmd.env("PULSAR2MYSQL_PARTITIONS", "1,1");
    let run = run_command_within(cmd, std::time::Duration::from_secs(120)).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
}

/// Writes `records` under `--on-bad-record dead-letter` (`NULL` the null literal) into
/// `table`, created by `ddl` in a fresh database, once per write path: each path must write
/// `written` rows and dead-letter every other record. The databases, for further checks.
async fn dead_letters_the_rest(
    ddl: &str,
    table: &str,
    records: Vec<Vec<u8>>,
    written: u64,
) -> Vec<(&'static str, TestDb)> {
    let mut dbs = Vec::new();
    for strategy in STRATEGIES {
        let db = TestDb::new(table).await;
        db.exec(ddl).await;
        let topic = topic("edge_values");
        produce(&topic, records.clone(), 1).await;
        let run = run_binary(&with(
            into_table(&topic, &db, table),
            &[
                "--on-bad-record",
                "dead-letter",
                "--null-literal",
                "NULL",
                "--write-strategy",
                strategy,
            ],
        ))
        .await;
        assert_eq!(run.code, 0, "{strategy}: {}", run.stderr);
        assert_eq!(run.u("rows_written"), written, "{strategy}: {}", run.stdout);
        let dead = records.len() as u64 - written;
        assert_eq!(run.u("dead_lettered"), dead, "{strategy}: {}", run.stdout);
        dbs.push((strategy, db));
    }
    dbs
}

/// A fraction the column cannot hold exactly would be truncated (MariaDB) or rounded
/// (MySQL, even into the next day): a bad record, never a changed value.
#[tokio::test]
async fn fractions_beyond_the_columns_precision_are_bad_records() {
    let records = vec![
        b"1|2024-01-01 23:59:59|2024-01-01 23:59:59.123456|2024-01-01 00:00:00.123|12:00:00.5"
            .to_vec(),
        b"2|2024-01-01 23:59:59.9|NULL|NULL|NULL".to_vec(),
        b"3|NULL|2024-01-01 00:00:00.1234567|NULL|NULL".to_vec(),
        b"4|NULL|NULL|2024-01-01 00:00:00.1235|NULL".to_vec(),
        b"5|NULL|NULL|NULL|12:00:00.25".to_vec(),
        // Trailing zeros are no loss.
        b"6|2024-01-01 10:00:00.000|2024-01-01 00:00:00.100000000|NULL|01:02:03.50".to_vec(),
    ];
    let ddl = "CREATE TABLE fsp (id INT PRIMARY KEY, d0 DATETIME NULL, d6 DATETIME(6) NULL,
               t3 TIMESTAMP(3) NULL DEFAULT NULL, tm TIME(1) NULL)";
    for (strategy, db) in dead_letters_the_rest(ddl, "fsp", records, 2).await {
        let sql = "SELECT COUNT(*) FROM fsp WHERE id = 6 AND d0 = '2024-01-01 10:00:00' \
                   AND tm = '01:02:03.5'";
        assert_eq!(db.scalar(sql).await, 1, "{strategy}");
    }
}

/// A number into `BIT(n)` is that number (not its text's bytes), and one that does not fit
/// is a bad record.
#[tokio::test]
async fn bit_columns_take_numbers() {
    let records = vec![
        b"1|5|1".to_vec(),
        b"2|200|0".to_vec(),
        b"3|256|NULL".to_vec(),
        b"4|NULL|2".to_vec(),
        b"5|x|NULL".to_vec(),
        b"6|0|NULL".to_vec(),
    ];
    let ddl = "CREATE TABLE bits (id INT PRIMARY KEY, b8 BIT(8) NULL, b1 BIT(1) NULL)";
    for (strategy, db) in dead_letters_the_rest(ddl, "bits", records, 3).await {
        let sum = db.scalar("SELECT SUM(b8 + 0) * 10 + SUM(b1 + 0) FROM bits");
        assert_eq!(sum.await, 2051, "{strategy}");
    }
}

/// Values the server would refuse (and so fail the batch on every re-run, valid records
/// beside them never landing) are counted bad records instead.
#[tokio::test]
async fn poison_values_are_bad_records() {
    let records = vec![
        b"1|ok|1.50|0.5|1.5|-838:59:59|2155|a,b".to_vec(),
        b"2|NULL|NULL|NULL|NULL|NULL|NULL|NULL".to_vec(),
        b"3|ok|-1.00|NULL|NULL|NULL|NULL|NULL".to_vec(),
        b"4|ok|NULL|-0.5|NULL|NULL|NULL|NULL".to_vec(),
        b"5|ok|NULL|NULL|1e39|NULL|NULL|NULL".to_vec(),
        b"6|ok|NULL|NULL|NULL|25:61:00|NULL|NULL".to_vec(),
        b"7|ok|NULL|NULL|NULL|839:00:00|NULL|NULL".to_vec(),
        b"8|ok|NULL|NULL|NULL|NULL|1900|NULL".to_vec(),
        b"9|ok|NULL|NULL|NULL|NULL|NULL|a,c".to_vec(),
        b"10|ok|0|0|0|00:00:00|1901|".to_vec(),
    ];
    let ddl = "CREATE TABLE poison (id INT PRIMARY KEY, label VARCHAR(10) NOT NULL DEFAULT 'none',
               price DECIMAL(6,2) UNSIGNED NULL, ratio DOUBLE UNSIGNED NULL, f FLOAT NULL,
               t TIME NULL, y YEAR NULL, tags SET('a','b') NULL)";
    dead_letters_the_rest(ddl, "poison", records, 2).await;
}

/// A table whose last columns are nullable: records map to its columns in order and may omit
/// only trailing columns whose default is NULL.
#[tokio::test]
async fn default_mapping_keeps_trailing_nullable_columns() {
    let db = TestDb::new("nullable_tail").await;
    db.exec("CREATE TABLE child (id INT PRIMARY KEY, pid INT)")
        .await;
    let topic = topic("nullable_tail");
    produce(&topic, [b"1|42".to_vec(), b"2".to_vec()], 1).await;
    let run = run_binary(&into_table(&topic, &db, "child")).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 2);
    assert_eq!(
        run.summary["mapped_columns"],
        serde_json::json!(["id", "pid"])
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM child WHERE (id, pid) = (1, 42)")
            .await,
        1
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM child WHERE id = 2 AND pid IS NULL")
            .await,
        1
    );
}

/// The vendored client logs every message it receives at DEBUG (and frames at TRACE): the
/// record's bytes must never be among them, whatever the log level.
#[tokio::test]
async fn debug_logs_never_carry_a_records_content() {
    let db = TestDb::new("debuglog").await;
    let topic = topic("debuglog");
    let secret = b"1|very-private-payload";
    produce(&topic, [secret.to_vec()], 1).await;
    let mut cmd = command(&run_args(&topic, &db));
    cmd.env("RUST_LOG", "debug,pulsar::connection=trace");
    let run = run_command_within(cmd, std::time::Duration::from_secs(120)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("consumer engine"),
        "no DEBUG logs of the consumer"
    );
    let as_bytes = format!("{:?}", &secret[2..]);
    let as_bytes = as_bytes.trim_start_matches('[').trim_end_matches(']');
    for shown in ["very-private-payload", as_bytes] {
        assert!(
            !run.stderr.contains(shown),
            "the record is in the logs as {shown}"
        );
    }
}

/// Under `--mode insert` a row refused by a foreign key fails the batch (as a duplicate
/// would), with the refusal's code, not the duplicate key's hint.
#[tokio::test]
async fn a_foreign_key_refusal_is_not_called_a_duplicate() {
    for strategy in STRATEGIES {
        let db = TestDb::new("fk_insert").await;
        db.exec(
            "CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO parent VALUES (1);
             CREATE TABLE child (id INT PRIMARY KEY, pid INT NOT NULL,
               FOREIGN KEY (pid) REFERENCES parent (id)) ENGINE=InnoDB",
        )
        .await;
        let topic = topic("fk_insert");
        produce(&topic, [b"1|1".to_vec(), b"2|42".to_vec()], 1).await;
        let args = with(
            into_table(&topic, &db, "child"),
            &["--write-strategy", strategy],
        );
        let run = run_binary(&args).await;
        assert_eq!(run.code, 4, "{strategy}: {}", run.stdout);
        let err = run.summary["error"].as_str().unwrap_or_default();
        assert!(err.contains("1452"), "{strategy}: {err}");
        assert!(!err.contains("already holds a row"), "{strategy}: {err}");
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM child").await,
            0,
            "{strategy}"
        );
    }
}
