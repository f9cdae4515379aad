//! The batch builder's limits and spans, without a server.

use super::*;

/// A builder for INSERT batches of at most `max_rows` rows and statements of
/// `statement_bytes`, without a server.
fn insert_builder(max_rows: usize, statement_bytes: usize) -> BatchBuilder {
    let mut b = BatchBuilder {
        format: Format::Insert(InsertRows {
            head: "INSERT INTO t (a) VALUES ".into(),
            tail: String::new(),
            max_statement_bytes: statement_bytes,
            max_packet_statement: 2 * statement_bytes,
            current: String::new(),
            rows_in_current: 0,
            finished_bytes: 0,
            row: String::new(),
        }),
        max_rows,
        batch: Batch::default(),
        current: 0,
        retired: Vec::new(),
        dead_letter_bytes: 0,
        first_share: None,
    };
    b.track("t", 0, None);
    b
}

#[test]
fn a_staggered_builder_ends_its_first_batch_early_then_full_size() {
    let mut b = insert_builder(100, 1 << 20);
    b.stagger(1, 4); // the second of four: its first batch at 2/4 of the limits
    let pos = |e| Position::new(1, e, -1);
    let mut sizes = Vec::new();
    for e in 0..300 {
        b.push_row(&[Value::Int(e)]).unwrap();
        b.consumed(0, pos(e), 0);
        if b.is_full() {
            sizes.push(b.take().rows);
        }
    }
    assert_eq!(sizes, vec![50, 100, 100]);
}

#[test]
fn partitions_read_side_by_side_share_a_batch_and_each_keep_their_checkpoint() {
    let mut b = insert_builder(4, 1 << 20);
    b.track("t-1", 1, Some(Position::new(9, 9, -1)));
    let pos = |e| Position::new(1, e, -1);
    let mut batches = Vec::new();
    // Partition 0 and 1 in turn, then 1 alone.
    for (partition, e) in [(0, 0), (1, 0), (0, 1), (1, 1), (1, 2), (1, 3)] {
        b.push_row(&[Value::Int(e)]).unwrap();
        b.consumed(partition, pos(e), e);
        if b.is_full() {
            batches.push(b.take());
        }
    }
    b.retire(0);
    batches.push(b.take());
    let ends = |batch: &Batch| -> Vec<_> {
        batch
            .spans
            .iter()
            .map(|s| (s.partition, s.after, s.last.map(|l| l.0), s.consumed))
            .collect()
    };
    assert_eq!(batches[0].rows, 4);
    assert_eq!(
        ends(&batches[0]),
        vec![
            (0, None, Some(pos(1)), 2),
            (1, Some(Position::new(9, 9, -1)), Some(pos(1)), 2),
        ]
    );
    assert_eq!(batches[0].partitions(), "0, 1");
    // The next batch starts where the first left each partition; partition 0, with
    // nothing in it, is still fenced.
    assert_eq!(
        ends(&batches[1]),
        vec![
            (0, Some(pos(1)), None, 0),
            (1, Some(pos(1)), Some(pos(3)), 2)
        ]
    );
    assert_eq!(batches[1].partitions(), "1");
    // Retired, partition 0 leaves the batches after the one it was retired in.
    assert!(b.is_empty());
    assert_eq!(b.take().spans.len(), 1);
}

#[test]
fn a_batch_ends_at_its_bytes_not_only_at_its_rows() {
    // 1 MiB rows, 2 MiB statements: four statements' worth (8 MiB), not 1000 rows.
    let mut b = insert_builder(1000, 2 << 20);
    let big = "x".repeat(1 << 20);
    let mut rows = 0;
    while !b.is_full() {
        b.push_row(&[Value::Text(&big)]).unwrap();
        rows += 1;
        assert!(rows <= 10, "the batch held {rows} MiB");
    }
    assert!(rows >= 4, "{rows}");
    // A row larger than any statement the server accepts (here 4 MiB) is a bad record,
    // and the batch does not count it.
    let huge = "x".repeat(5 << 20);
    let refused = b.push_row(&[Value::Text(&huge)]).unwrap_err();
    assert_eq!(refused.reason, crate::records::BadReason::TooLarge);
    let batch = b.take();
    assert_eq!(batch.rows, rows);
    assert!(!b.is_full(), "a new batch starts empty");
    // Dead letters count by their payload too.
    let at = (0, Position::new(1, 1, -1), 0);
    b.push_dead_letter(at, &vec![0; 9 << 20], BadRecord::chunk(0, 2));
    assert!(b.is_full(), "9 MiB of dead letters fill an 8 MiB batch");
    b.take();
    assert!(!b.is_full());
}
