//! Messages from a non-Rust producer (the official Python client, C++ inside), batched and
//! not, under every compression codec the Java and C++ clients write.

use std::process::Command;

use crate::common::*;

/// The Python interpreter with `pulsar-client` installed (scripts/test.sh sets it up).
fn python() -> String {
    std::env::var("P2M_PYTHON").unwrap_or_else(|_| ".cache/venv-pulsar/bin/python".into())
}

fn produce_with_python(topic: &str, count: u32, compression: &str, batching: bool) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/producers/python_producer.py"
    );
    must_succeed(
        Command::new(python())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                script,
                &pulsar_url(),
                topic,
                "0",
                &count.to_string(),
                compression,
            ])
            .arg(if batching { "1" } else { "0" }),
        "python producer (with pulsar-client, installed by scripts/test.sh into .cache/venv-pulsar)",
    );
}

async fn check_codec(compression: &str, batching: bool) {
    let db = TestDb::new(&format!("codec_{}", compression.to_lowercase())).await;
    let topic = topic(&format!("codec-{}-{batching}", compression.to_lowercase()));
    produce_with_python(&topic, 2000, compression, batching);
    let run = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(
        run.code, 0,
        "{compression} batching={batching}: {}",
        run.stderr
    );
    assert_eq!(run.u("rows_written"), 2000);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        2000
    );
    assert_eq!(
        db.scalar("SELECT SUM(name <> CONCAT('msg-', id)) FROM sink_table")
            .await,
        0
    );
}

#[tokio::test]
async fn uncompressed_from_python() {
    check_codec("NONE", false).await;
    check_codec("NONE", true).await;
}

#[tokio::test]
async fn lz4_from_python() {
    check_codec("LZ4", true).await;
    check_codec("LZ4", false).await;
}

#[tokio::test]
async fn zlib_from_python() {
    check_codec("ZLib", true).await;
}

#[tokio::test]
async fn zstd_from_python() {
    check_codec("ZSTD", true).await;
}

/// The Java and C++ clients write raw Snappy blocks; stock pulsar-rs 6.9 only reads the framed
/// format, so this exercises the patch in vendor/pulsar.
#[tokio::test]
async fn snappy_from_python() {
    check_codec("SNAPPY", true).await;
    check_codec("SNAPPY", false).await;
}

/// pulsar-rs producers write framed Snappy; the patched decoder must still read it.
#[tokio::test]
async fn snappy_framed_from_rust() {
    use pulsar::compression::{Compression, CompressionSnappy};

    let db = TestDb::new("codec_snappy_framed").await;
    let topic = topic("codec-snappy-framed");
    let snappy = Compression::Snappy(CompressionSnappy::default());
    produce_with(&topic, seed_records(0..300), 1, Some(snappy)).await;
    let run = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 300);
    assert_eq!(
        db.scalar("SELECT SUM(name = CONCAT('msg-', id)) FROM sink_table")
            .await,
        300
    );
}

/// Producer chunking (Java, C++ and Python clients): a message over the broker's
/// maxMessageSize (5 MiB here) is split into chunks, each a message of its own on the log.
/// pulsar2mysql does not reassemble them: every chunk is a bad record of its own reason, never
/// a row, and the records around it are written as usual.
#[tokio::test]
async fn chunked_messages_are_bad_records_never_rows() {
    let db = TestDb::new("chunked").await;
    let topic = topic("chunked");
    produce(&topic, seed_records(0..5), 1).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/producers/python_chunked_producer.py"
    );
    // One record of 6 MiB: two chunks.
    must_succeed(
        Command::new(python())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([script, &pulsar_url(), &topic, "1", &(6 << 20).to_string()]),
        "python chunked producer",
    );
    produce(&topic, seed_records(6..10), 1).await;

    // The default policy fails on the first chunk and says what it is.
    let run = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    let error = run.summary["error"].as_str().unwrap();
    assert!(error.contains("does not reassemble chunked"), "{error}");

    let run = run_binary(&with(
        run_args(&topic, &db),
        &["--on-bad-record", "dead-letter", "--reprocess"],
    ))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 9);
    assert_eq!(run.summary["bad_records_by_reason"]["chunked"], 2);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM p2m_dead_letter WHERE reason = 'chunked'")
            .await,
        2
    );
    assert_eq!(
        db.scalar("SELECT SUM(name <> CONCAT('msg-', id)) FROM sink_table")
            .await,
        0
    );
}

/// A decompression bomb: a few kB of ZSTD that expand to 100 MiB, more than the reader's cap
/// (64 MiB per entry). It is a `too_large` bad record; the runner never inflates it.
#[tokio::test]
async fn an_entry_that_inflates_past_the_cap_is_a_too_large_bad_record() {
    use pulsar::compression::{Compression, CompressionZstd};

    let db = TestDb::new("bomb").await;
    let topic = topic("bomb");
    produce(&topic, seed_records(0..3), 1).await;
    let zstd = Compression::Zstd(CompressionZstd::default());
    produce_with(&topic, [vec![b'7'; 100 << 20]], 1, Some(zstd)).await;
    produce(&topic, seed_records(3..6), 1).await;

    let run = run_binary(&run_args(&topic, &db)).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.summary["error"].as_str().unwrap().contains("too_large"),
        "{}",
        run.stdout
    );

    let run = run_binary(&with(run_args(&topic, &db), &["--on-bad-record", "skip"])).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 6);
    assert_eq!(
        run.summary["bad_records_by_reason"]["too_large"], 1,
        "{}",
        run.stdout
    );
}
