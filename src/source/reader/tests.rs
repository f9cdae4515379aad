//! The reader's unit tests: where a resume subscribes, and the bounds of the vendored
//! receiver queue that the reader's memory depends on.

use super::*;

#[test]
fn resume_asks_for_the_entry_again() {
    let id = resume_id(Position::new(7, 3, -1));
    assert_eq!((id.ledger_id, id.entry_id, id.batch_index), (7, 3, Some(0)));
}

/// The vendored pulsar-rs bounds its receiver queue in messages while handing over whole
/// entries (vendor/README.md): the reader's memory depends on it.
#[test]
fn the_receiver_queue_holds_its_bound_in_messages() {
    use futures::FutureExt;
    use pulsar::consumer::data::QueueCredit;

    let credit = QueueCredit::new(1000, None);
    // Room: entries go in whole, the last one may overshoot the bound.
    assert_eq!(credit.acquire(500, 10).now_or_never(), Some(true));
    assert_eq!(credit.acquire(600, 10).now_or_never(), Some(true));
    // Full (1,100 buffered): the engine waits...
    let mut waiting = Box::pin(credit.acquire(500, 10));
    assert_eq!(waiting.as_mut().now_or_never(), None);
    // ...until the consumer takes an entry out.
    credit.release(500, 10);
    assert_eq!(waiting.as_mut().now_or_never(), Some(true));

    // A waiting engine is woken by a release from another thread, and stops waiting
    // (false) once the consumer is gone.
    let credit = std::sync::Arc::new(QueueCredit::new(1, None));
    assert_eq!(credit.acquire(10, 10).now_or_never(), Some(true));
    let releaser = {
        let credit = credit.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            credit.release(10, 10);
        })
    };
    assert!(futures::executor::block_on(credit.acquire(10, 10)));
    releaser.join().unwrap();
    let closer = {
        let credit = credit.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            credit.close();
        })
    };
    assert!(!futures::executor::block_on(credit.acquire(10, 10)));
    closer.join().unwrap();
}

/// ...and in bytes: two messages of 3 MiB fill a 4 MiB queue however few messages it
/// holds.
#[test]
fn the_receiver_queue_holds_its_bound_in_bytes() {
    use futures::FutureExt;
    use pulsar::consumer::data::QueueCredit;

    const MIB: usize = 1024 * 1024;
    let alone = ReadAhead::shared_by(1);
    let credit = QueueCredit::new(alone.messages, Some(alone.bytes));
    assert_eq!(credit.acquire(1, 3 * MIB).now_or_never(), Some(true));
    // 1 MiB of room left: one more entry may overshoot...
    assert_eq!(credit.acquire(1, 3 * MIB).now_or_never(), Some(true));
    // ...then the engine waits with 2 of its 2,000 messages used.
    let mut waiting = Box::pin(credit.acquire(1, 3 * MIB));
    assert_eq!(waiting.as_mut().now_or_never(), None);
    credit.release(1, 3 * MIB);
    assert_eq!(waiting.as_mut().now_or_never(), Some(true));
}

/// Messages skipped as before the window and replays after a reconnect are progress (they
/// used to leave the stall counter running, so a long scan with a reconnect or two could use
/// up the retry budget); a replay counts once per last position, so a broker failing again
/// right after each redelivery still ends the run.
#[test]
fn skipped_and_replayed_messages_are_progress() {
    let read_skipped = Admit::Read {
        deliver: false,
        then_stop: None,
    };
    let mut credited = None;
    let at = Some(Position::new(4, 2, -1));
    assert!(is_progress(&read_skipped, at, &mut credited));
    assert!(is_progress(&Admit::Replay, at, &mut credited));
    assert!(!is_progress(&Admit::Replay, at, &mut credited));
    let further = Some(Position::new(4, 9, -1));
    assert!(is_progress(&Admit::Replay, further, &mut credited));
}

/// Partitions read at once share one read-ahead: reading 64 of them side by side must not
/// buffer 64 times what one does.
#[test]
fn the_read_ahead_is_shared_by_the_partitions_read_at_once() {
    const MIB: u64 = 1024 * 1024;
    let share = |readers| {
        let r = ReadAhead::shared_by(readers);
        (r.messages, r.bytes)
    };
    const KIB: u64 = 1024;
    assert_eq!(share(1), (2_000, 4 * MIB));
    assert_eq!(share(8), (2_000, 3 * MIB));
    assert_eq!(share(16), (1_000, 1_536 * KIB));
    assert_eq!(share(32), (1_000, 768 * KIB));
    assert_eq!(share(64), (1_000, 384 * KIB));
    assert_eq!(
        share(1_000),
        (1_000, 256 * KIB),
        "a floor: tiny reads would crawl"
    );
    assert_eq!(share(0), (2_000, 4 * MIB));
}
