//! The batch builder's formats, limits and spans, built from a [`Shape`] alone: no server.

use super::*;
use crate::records::ColumnType;

/// One integer column `a`, as the table `t` maps it.
fn columns() -> Vec<Column> {
    vec![Column {
        name: "a".into(),
        ty: ColumnType::Text {
            max_chars: u64::MAX,
            max_bytes: u64::MAX,
            charset: crate::records::Charset::Unicode,
        },
        nullable: true,
        has_default: false,
        auto_increment: false,
    }]
}

/// A builder for `t (a)` in `strategy` and `mode`, with batches of at most `max_rows` rows,
/// INSERT statements of `statement_bytes` and LOAD DATA batches of `batch_bytes`.
fn builder(
    strategy: WriteStrategy,
    mode: WriteMode,
    max_rows: usize,
    statement_bytes: usize,
    batch_bytes: usize,
) -> BatchBuilder {
    let table = TableName::parse("t").unwrap();
    let mapped = columns();
    let mut b = BatchBuilder::new(&Shape {
        table: &table,
        mapped: &mapped,
        mode,
        strategy,
        max_rows,
        max_batch_bytes: batch_bytes,
        max_statement_bytes: statement_bytes,
        max_packet_statement: 2 * statement_bytes,
        order_by: None,
    });
    b.track("t", 0, None);
    b
}

/// A builder for INSERT batches of at most `max_rows` rows and statements of
/// `statement_bytes`.
fn insert_builder(max_rows: usize, statement_bytes: usize) -> BatchBuilder {
    builder(
        WriteStrategy::Insert,
        WriteMode::Insert,
        max_rows,
        statement_bytes,
        1 << 20,
    )
}

#[test]
fn insert_statements_say_what_the_mode_asks() {
    let statement = |mode| {
        let mut b = builder(WriteStrategy::Insert, mode, 10, 1 << 20, 1 << 20);
        b.push_row(0, &[Value::Text("x'y")]).unwrap();
        b.consumed(0, Position::new(1, 0, -1), 0);
        match b.take().body {
            Body::Statements(s) => s,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        statement(WriteMode::Insert),
        vec![("INSERT INTO `t` (`a`) VALUES ('x\\'y')".to_string(), 1)]
    );
    assert!(statement(WriteMode::IgnoreDuplicates)[0]
        .0
        .starts_with("INSERT IGNORE INTO `t` (`a`) VALUES "));
    assert!(statement(WriteMode::Upsert)[0]
        .0
        .ends_with(" ON DUPLICATE KEY UPDATE `a`=VALUES(`a`)"));
}

/// LOAD DATA batches: opened at their first row (the writer may start loading), fenced on
/// every partition tracked, rows as escaped tab-separated lines, ended at their bytes.
#[test]
fn load_data_batches_open_early_and_end_at_their_bytes() {
    let mut b = builder(
        WriteStrategy::LoadData,
        WriteMode::Insert,
        1000,
        1 << 20,
        64,
    );
    b.track("t-1", 1, Some(Position::new(9, 9, -1)));
    assert!(
        b.take_opened().is_none(),
        "nothing to load before the first row"
    );
    b.push_row(0, &[Value::Text("tab\there")]).unwrap();
    b.consumed(0, Position::new(1, 0, -1), 0);
    let opened = b.take_opened().expect("opened by its first row");
    assert!(opened
        .statement
        .starts_with("LOAD DATA LOCAL INFILE 'pulsar2mysql-batch' IGNORE INTO TABLE `t`"));
    assert_eq!(
        opened.fenced,
        vec![(0, None), (1, Some(Position::new(9, 9, -1)))]
    );
    assert!(!opened.data.is_closed());
    b.push_row(0, &[Value::Null]).unwrap();
    b.consumed(1, Position::new(1, 1, -1), 0);
    assert!(!b.is_full());
    b.push_row(0, &[Value::Text(&"x".repeat(64))]).unwrap();
    b.consumed(1, Position::new(1, 2, -1), 0);
    assert!(b.is_full(), "64 bytes of rows fill a 64-byte batch");
    let batch = b.take();
    assert_eq!(batch.rows, 3);
    let Body::Tsv { data, .. } = &batch.body else {
        panic!("{:?}", batch.body)
    };
    assert!(data.is_closed());
    let expected = format!("tab\\there\n\\N\n{}\n", "x".repeat(64));
    assert_eq!(String::from_utf8(data.bytes_so_far()).unwrap(), expected);
    // The next batch opens anew.
    assert!(b.take_opened().is_none());
}

#[test]
fn a_staggered_builder_ends_its_first_batch_early_then_full_size() {
    let mut b = insert_builder(100, 1 << 20);
    b.stagger(1, 4); // the second of four: its first batch at 2/4 of the limits
    let pos = |e| Position::new(1, e, -1);
    let mut sizes = Vec::new();
    for e in 0..300 {
        b.push_row(0, &[Value::Int(e)]).unwrap();
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
        b.push_row(0, &[Value::Int(e)]).unwrap();
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
        b.push_row(0, &[Value::Text(&big)]).unwrap();
        rows += 1;
        assert!(rows <= 10, "the batch held {rows} MiB");
    }
    assert!(rows >= 4, "{rows}");
    // A row larger than any statement the server accepts (here 4 MiB) is a bad record,
    // and the batch does not count it.
    let huge = "x".repeat(5 << 20);
    let refused = b.push_row(0, &[Value::Text(&huge)]).unwrap_err();
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

/// A LOAD DATA builder for `t (id)`, `id` an INT that alone is the clustered index.
fn keyed_builder(max_rows: usize) -> BatchBuilder {
    let table = TableName::parse("t").unwrap();
    let mapped = vec![Column {
        name: "id".into(),
        ty: ColumnType::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        nullable: false,
        has_default: false,
        auto_increment: false,
    }];
    let mut b = BatchBuilder::new(&Shape {
        table: &table,
        mapped: &mapped,
        mode: WriteMode::Insert,
        strategy: WriteStrategy::LoadData,
        max_rows,
        max_batch_bytes: 1 << 20,
        max_statement_bytes: 1 << 20,
        max_packet_statement: 2 << 20,
        order_by: Some(0),
    });
    b.track("t", 0, None);
    b
}

/// The LOAD DATA input of a closed batch, as text.
fn tsv_of(batch: &Batch) -> String {
    let Body::Tsv { data, .. } = &batch.body else {
        panic!("a LOAD DATA batch")
    };
    assert!(data.is_closed());
    String::from_utf8(data.bytes_so_far()).unwrap()
}

#[test]
fn keys_going_backwards_are_held_and_sent_sorted_and_the_first_batches_ramp_up() {
    let mut b = keyed_builder(80);
    // Ascending rows stream as they come: nothing held.
    for id in [1, 2, 3] {
        b.push_row(0, &[Value::Int(id)]).unwrap();
    }
    assert!(!b.is_full());
    // A partition whose keys go backwards (5, 4, 7, 6, ...): the batch's rows from then on
    // are held, then sorted. Held, the first batch ends at 1/8 of its rows (10), the next ones
    // at 1/4 and 1/2.
    let mut ids = (4..)
        .step_by(2)
        .zip((5..).step_by(2))
        .flat_map(|(a, b)| [b, a]);
    let mut sizes = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..4 {
        while !b.is_full() {
            b.push_row(0, &[Value::Int(ids.next().unwrap())]).unwrap();
        }
        let batch = b.take();
        sizes.push(batch.rows);
        sent.push(tsv_of(&batch));
    }
    assert_eq!(sizes, vec![10, 20, 40, 80]);
    // 5 went before 4 came.
    assert_eq!(sent[0], "1\n2\n3\n5\n4\n6\n7\n8\n9\n11\n");
    let second: Vec<i64> = sent[1].lines().map(|l| l.parse().unwrap()).collect();
    assert!(second.windows(2).all(|w| w[0] < w[1]), "{second:?}");
}

#[test]
fn partitions_read_side_by_side_stream_their_rows_merged_by_key() {
    let mut b = keyed_builder(100_000);
    b.track("t-1", 1, None);
    // Two partitions, round-robin keys (0, 2, 4, ... and 1, 3, 5, ...), read in runs of 500.
    for run in 0..20i64 {
        for p in 0..2 {
            for k in 0..500 {
                let id = (run * 500 + k) * 2 + i64::from(p);
                b.push_row(p, &[Value::Int(id)]).unwrap();
            }
        }
    }
    let Format::Tsv(rows) = &b.format else {
        panic!("a LOAD DATA builder")
    };
    let streamed = rows.open.as_ref().unwrap().1.bytes_so_far().len();
    assert!(
        streamed > 20_000 * 5 / 2,
        "the statement streams while the batch fills: {streamed} bytes"
    );
    assert!(!b.is_full());
    let sent = tsv_of(&b.take());
    let ids: Vec<i64> = sent.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids, (0..20_000).collect::<Vec<_>>());
}
