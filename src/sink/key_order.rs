//! A LOAD DATA batch's rows in the order of the table's clustered (primary) key.
//!
//! InnoDB stores a table in its primary key's order. Rows that arrive in that order append to
//! the last page, which it splits where the insert happens (pages end 15/16 full); rows that
//! land between rows already stored split pages in half, and the server spends more time and
//! more pages. A partitioned topic written round-robin hands the readers of its partitions
//! keys `p, p + n, p + 2n, ...` each: one batch of them, read side by side, interleaves with
//! itself. MariaDB here loads 1e6 seed rows in id order in 2.19 s (a 39.6 MiB table) and the
//! same rows as readers of 4 and 16 partitions deliver them in 2.33 s and 2.81 s (56.6 and
//! 60.6 MiB): BENCHMARKS.md.
//!
//! Each partition's keys usually ascend on their own, so the batch is a merge of sorted runs:
//! a row can go to the server once every partition still reading has reached its key (none
//! of them can bring a smaller one). Rows wait, in their partition's queue, only while the
//! partitions read side by side are apart (`pipeline::lockstep` keeps them within
//! milliseconds); a heap of the queues' first rows (one per partition, not one per row)
//! merges them, and the statement streams while the batch fills. A partition whose keys go
//! backwards bounds nothing: from then on the batch's rows are held and sent sorted when it
//! closes.
//!
//! The order is stable: rows with equal keys keep their order of arrival, so a duplicate key
//! keeps the same winner (LOAD DATA keeps the first). The order never decides what is
//! written, only how fast.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::records::Value;

/// The most bytes the held rows' store may reach: its offsets are `u32`. The store stays
/// under twice a batch (with its largest row); the builder orders only batches within this.
pub(super) const MAX_ORDERED_BYTES: usize = u32::MAX as usize;

/// Below this the held rows' store is never compacted (nor shrunk between batches).
const COMPACT_FLOOR: usize = 64 * 1024;

/// A partition of the stream, and how far its keys have come.
#[derive(Debug)]
struct Source {
    partition: i32,
    /// The highest key it delivered (its rows from now on are expected at or above it).
    last: Option<u64>,
    /// Still reading: its next rows bound what may be sent.
    reading: bool,
    /// Its rows held, in the order they came (ascending keys while the batch is in order).
    held: VecDeque<Held>,
}

/// A row waiting for its turn: ordered by key, then arrival.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    key: u64,
    seq: u64,
    start: u32,
    len: u32,
}

/// Where the table's rows are ordered, the partitions feeding the batch, and the rows not
/// yet sent.
#[derive(Debug)]
pub(super) struct KeyOrder {
    /// The clustered key's position among the mapped columns (a single integer column).
    column: usize,
    sources: Vec<Source>,
    /// The source of the last row (rows come in runs of one partition).
    current: usize,
    /// A partition's keys went backwards in this batch: the rest of it waits for its close.
    unordered: bool,
    /// The lowest `last` of the partitions still reading (None while one has no row yet),
    /// kept as rows come: recomputing it per row costs a pass over every partition.
    reached: Option<u64>,
    /// The first held row of each partition holding any: (key, arrival, source).
    heads: BinaryHeap<Reverse<(u64, u64, usize)>>,
    /// Once the batch is out of order: every held row, sorted at its close.
    unsorted: Vec<Held>,
    /// The held rows' bytes (and some sent ones, until the next compaction).
    store: Vec<u8>,
    /// Bytes of the rows held.
    live: usize,
    /// Rows held so far, for the order of equal keys.
    seq: u64,
}

impl KeyOrder {
    /// Orders rows by mapped column `column`, an integer column that alone is the table's
    /// clustered index.
    pub(super) fn new(column: usize) -> KeyOrder {
        KeyOrder {
            column,
            sources: Vec::new(),
            current: 0,
            unordered: false,
            reached: Some(u64::MAX),
            heads: BinaryHeap::new(),
            unsorted: Vec::new(),
            store: Vec::new(),
            live: 0,
            seq: 0,
        }
    }

    /// Partition `partition` starts feeding the batches: until its first row, it may bring
    /// any key.
    pub(super) fn track(&mut self, partition: i32) {
        match self.sources.iter_mut().find(|s| s.partition == partition) {
            Some(source) => source.reading = true,
            None => self.sources.push(Source {
                partition,
                last: None,
                reading: true,
                held: VecDeque::new(),
            }),
        }
        self.reached = self.lowest_reached();
    }

    /// Partition `partition` has been read to its end: it bounds nothing any more.
    pub(super) fn retire(&mut self, partition: i32, pending: &mut Vec<u8>) {
        if let Some(source) = self.sources.iter_mut().find(|s| s.partition == partition) {
            source.reading = false;
        }
        self.reached = self.lowest_reached();
        self.release(self.bound(), pending);
    }

    /// Orders the row of partition `partition` just rendered at the end of `pending`, from
    /// `start` on: it stays there when its turn has come (and nothing is held), else it is
    /// held; rows whose turn came meanwhile follow it into `pending`.
    pub(super) fn push(
        &mut self,
        partition: i32,
        values: &[Value<'_>],
        pending: &mut Vec<u8>,
        start: usize,
    ) {
        let source = self.source(partition);
        let last = self.sources[source].last;
        let key = match values.get(self.column) {
            // Order-preserving in u64: a column is either signed or unsigned throughout.
            Some(Value::Int(i)) => Some((*i as u64) ^ (1 << 63)),
            Some(Value::UInt(u)) => Some(*u),
            // A row without a key stays behind its partition's row before it.
            _ => None,
        }
        .or(last)
        .unwrap_or(0);
        if last.is_some_and(|last| key < last) && !self.unordered {
            self.unordered = true;
            // Merged no more: everything held waits for the close, sorted then.
            self.heads.clear();
            for source in &mut self.sources {
                self.unsorted.extend(source.held.drain(..));
            }
        }
        self.sources[source].last = Some(last.map_or(key, |last| last.max(key)));
        // Only the partition that was lowest (or had no row yet) can raise the lowest.
        if last.is_none() || last == self.reached {
            self.reached = self.lowest_reached();
        }
        let bound = self.bound();
        if self.live == 0 && bound.is_some_and(|bound| key <= bound) {
            return; // its turn: it goes as it is
        }
        let len = pending.len() - start;
        let at = self.store.len();
        self.store.extend_from_slice(&pending[start..]);
        pending.truncate(start);
        self.live += len;
        let offset = |n: usize| u32::try_from(n).expect("within MAX_ORDERED_BYTES");
        let row = Held {
            key,
            seq: self.seq,
            start: offset(at),
            len: offset(len),
        };
        self.seq += 1;
        if self.unordered {
            self.unsorted.push(row);
            return;
        }
        let queue = &mut self.sources[source].held;
        if queue.is_empty() {
            self.heads.push(Reverse((row.key, row.seq, source)));
        }
        queue.push_back(row);
        self.release(bound, pending);
    }

    /// Whether the batch's rows wait for its close (a partition's keys went backwards).
    pub(super) fn holding(&self) -> bool {
        self.unordered
    }

    /// Bytes of the rows held.
    pub(super) fn held_bytes(&self) -> usize {
        self.live
    }

    /// The batch closes: every held row goes into `pending` in key order, `publish` called
    /// after each (to send `pending` on when it has grown to a piece). The next batch starts
    /// streaming again; the partitions' keys still bound it.
    pub(super) fn close(&mut self, pending: &mut Vec<u8>, mut publish: impl FnMut(&mut Vec<u8>)) {
        // Rows held at the close land between the next batch's: many of them mean the
        // partitions' readers were apart (see `pipeline::lockstep`).
        tracing::debug!(
            held_rows =
                self.unsorted.len() + self.sources.iter().map(|s| s.held.len()).sum::<usize>(),
            held_bytes = self.live,
            unordered = self.unordered,
            "a key-ordered batch closes"
        );
        let mut unsorted = std::mem::take(&mut self.unsorted);
        // (key, arrival) is unique: the unstable sort keeps equal keys in arrival order.
        unsorted.sort_unstable();
        for row in unsorted.drain(..) {
            pending.extend_from_slice(self.bytes(&row));
            publish(pending);
        }
        unsorted.shrink_to(1024);
        self.unsorted = unsorted;
        while let Some(row) = self.next_held(u64::MAX) {
            pending.extend_from_slice(self.bytes(&row));
            publish(pending);
        }
        for source in &mut self.sources {
            source.held.shrink_to(256);
        }
        self.live = 0;
        self.seq = 0;
        self.unordered = false;
        self.store.clear();
        self.store.shrink_to(COMPACT_FLOOR);
    }

    /// The source of `partition`, added if it was not tracked (a builder tracks every
    /// partition before its rows).
    fn source(&mut self, partition: i32) -> usize {
        if self.sources.get(self.current).map(|s| s.partition) != Some(partition) {
            self.current = match self.sources.iter().position(|s| s.partition == partition) {
                Some(i) => i,
                None => {
                    self.track(partition);
                    self.sources.len() - 1
                }
            };
        }
        self.current
    }

    /// The highest key every partition still reading has reached: no row at or below it is
    /// still to come. None while the batch waits for its close, or a partition has not
    /// delivered its first row yet.
    fn bound(&self) -> Option<u64> {
        debug_assert_eq!(
            self.reached,
            self.lowest_reached(),
            "the kept lowest is current"
        );
        if self.unordered {
            None
        } else {
            self.reached
        }
    }

    /// The lowest `last` of the partitions still reading, None while one has no row yet
    /// (`u64::MAX` when none is reading).
    fn lowest_reached(&self) -> Option<u64> {
        let mut lowest = u64::MAX;
        for source in self.sources.iter().filter(|s| s.reading) {
            lowest = lowest.min(source.last?);
        }
        Some(lowest)
    }

    /// Moves the held rows at or below `bound` (see [`KeyOrder::bound`]) into `pending`.
    fn release(&mut self, bound: Option<u64>, pending: &mut Vec<u8>) {
        let Some(bound) = bound else { return };
        while let Some(row) = self.next_held(bound) {
            pending.extend_from_slice(self.bytes(&row));
            self.live -= row.len as usize;
        }
        if self.live == 0 {
            self.store.clear();
        } else if self.store.len() >= COMPACT_FLOOR && self.live * 2 <= self.store.len() {
            self.compact();
        }
    }

    /// A held row's rendered bytes.
    fn bytes(&self, row: &Held) -> &[u8] {
        let start = row.start as usize;
        &self.store[start..start + row.len as usize]
    }

    /// Takes the held row first in key order if its key is at or below `bound`: the first
    /// of the partitions' first rows (each partition's held rows ascend).
    fn next_held(&mut self, bound: u64) -> Option<Held> {
        let &Reverse((key, _, source)) = self.heads.peek()?;
        if key > bound {
            return None;
        }
        self.heads.pop();
        let queue = &mut self.sources[source].held;
        let row = queue
            .pop_front()
            .expect("a head names a partition's first held row");
        if let Some(next) = queue.front() {
            self.heads.push(Reverse((next.key, next.seq, source)));
        }
        Some(row)
    }

    /// Drops the sent rows' bytes from the store: it stays within twice the rows held.
    fn compact(&mut self) {
        let mut store = Vec::with_capacity(self.live * 2 + COMPACT_FLOOR);
        let queues = self.sources.iter_mut().flat_map(|s| s.held.iter_mut());
        for row in queues.chain(self.unsorted.iter_mut()) {
            let at = store.len();
            let start = row.start as usize;
            store.extend_from_slice(&self.store[start..start + row.len as usize]);
            row.start = at as u32;
        }
        self.store = store;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds rows `(partition, key)` as `key#i\n`: what went out before the close, the most
    /// bytes held at once, and everything sent once the batch closed.
    fn feed(order: &mut KeyOrder, rows: &[(i32, Option<i64>)]) -> (String, usize, String) {
        let mut pending = Vec::new();
        let mut most_held = 0;
        for (i, &(partition, key)) in rows.iter().enumerate() {
            let start = pending.len();
            pending.extend_from_slice(format!("{key:?}#{i}\n").as_bytes());
            let v = key.map_or(Value::Null, Value::Int);
            order.push(partition, &[v], &mut pending, start);
            most_held = most_held.max(order.held_bytes());
        }
        let before = String::from_utf8(pending.clone()).unwrap();
        order.close(&mut pending, |_| {});
        (before, most_held, String::from_utf8(pending).unwrap())
    }

    /// A key order over mapped column 0 fed by partitions `0..partitions`.
    fn tracking(partitions: i32) -> KeyOrder {
        let mut order = KeyOrder::new(0);
        for p in 0..partitions {
            order.track(p);
        }
        order
    }

    /// Renders `key\n` at the end of `pending` and orders it as a row of `partition`.
    fn push_key(order: &mut KeyOrder, pending: &mut Vec<u8>, partition: i32, key: i64) {
        let start = pending.len();
        pending.extend_from_slice(format!("{key}\n").as_bytes());
        order.push(partition, &[Value::Int(key)], pending, start);
    }

    fn keys(sent: &str) -> Vec<i64> {
        sent.lines()
            .map(|l| l.trim_start_matches("Some(").split(')').next().unwrap())
            .map(|k| k.parse().unwrap())
            .collect()
    }

    #[test]
    fn one_partitions_ascending_rows_stream_as_they_come() {
        let mut order = tracking(1);
        let rows: Vec<_> = [-5, 0, 0, 7].into_iter().map(|k| (0, Some(k))).collect();
        let (before, most_held, sent) = feed(&mut order, &rows);
        assert_eq!(most_held, 0);
        assert_eq!(before, sent);
        assert!(!order.holding());
    }

    #[test]
    fn partitions_read_side_by_side_are_merged_while_the_batch_streams() {
        // Round-robin keys over 4 partitions, read in runs of 3 rows a partition.
        let mut order = tracking(4);
        let mut rows = Vec::new();
        for round in 0..50i64 {
            for p in 0..4 {
                for k in 0..3 {
                    rows.push((p, Some((round * 3 + k) * 4 + i64::from(p))));
                }
            }
        }
        let (before, most_held, sent) = feed(&mut order, &rows);
        assert_eq!(keys(&sent), (0..600).collect::<Vec<_>>());
        assert!(
            keys(&before).len() > 550,
            "streams before the close: {}",
            keys(&before).len()
        );
        assert!(most_held < 20 * 12, "held {most_held} bytes");
        assert!(!order.holding());
    }

    #[test]
    fn a_partition_without_a_first_row_holds_the_others_back_until_it_ends() {
        let mut order = tracking(2);
        let mut pending = Vec::new();
        for key in [3, 1, 2] {
            push_key(&mut order, &mut pending, 0, key);
        }
        assert!(pending.is_empty(), "partition 1 may still bring key 0");
        assert!(order.holding(), "partition 0 went backwards");
        order.retire(1, &mut pending);
        assert!(
            pending.is_empty(),
            "held for the close: 0's keys bound nothing"
        );
        order.close(&mut pending, |_| {});
        assert_eq!(pending, b"1\n2\n3\n");
    }

    #[test]
    fn a_retired_partition_bounds_nothing() {
        let mut order = tracking(2);
        let mut pending = Vec::new();
        push_key(&mut order, &mut pending, 0, 5);
        assert!(pending.is_empty());
        order.retire(1, &mut pending);
        assert_eq!(pending, b"5\n");
    }

    #[test]
    fn keys_going_backwards_hold_the_batch_sorted_equal_keys_in_arrival_order() {
        let mut order = tracking(1);
        let rows: Vec<_> = [4, 8, 1, -3, 4, 5]
            .into_iter()
            .map(|k| (0, Some(k)))
            .collect();
        let (before, _, sent) = feed(&mut order, &rows);
        assert_eq!(before, "Some(4)#0\nSome(8)#1\n");
        assert_eq!(
            sent,
            "Some(4)#0\nSome(8)#1\nSome(-3)#3\nSome(1)#2\nSome(4)#4\nSome(5)#5\n"
        );
        assert!(!order.holding(), "the next batch streams again");
    }

    #[test]
    fn equal_keys_of_two_partitions_keep_their_arrival_order() {
        let mut order = tracking(2);
        let rows = [(0, Some(2)), (0, Some(4)), (1, Some(4)), (1, Some(5))];
        let (_, _, sent) = feed(&mut order, &rows);
        assert_eq!(sent, "Some(2)#0\nSome(4)#1\nSome(4)#2\nSome(5)#3\n");
    }

    #[test]
    fn a_row_without_a_key_stays_behind_its_partitions_row_before_it() {
        let mut order = tracking(2);
        let rows = [
            (0, Some(9)),
            (0, None),
            (1, Some(2)),
            (1, None),
            (1, Some(10)),
        ];
        let (_, _, sent) = feed(&mut order, &rows);
        assert_eq!(sent, "Some(2)#2\nNone#3\nSome(9)#0\nNone#1\nSome(10)#4\n");
    }

    #[test]
    fn unsigned_keys_order_as_numbers() {
        let mut order = tracking(2);
        let mut pending = b"a".to_vec();
        order.push(0, &[Value::UInt(u64::MAX)], &mut pending, 0);
        assert!(pending.is_empty());
        pending.push(b'b');
        order.push(1, &[Value::UInt(1)], &mut pending, 0);
        assert_eq!(pending, b"b");
        order.close(&mut pending, |_| {});
        assert_eq!(pending, b"ba");
    }

    #[test]
    fn the_store_of_held_rows_stays_within_twice_what_is_held() {
        // Two partitions, one 100 keys ahead of the other: ~100 rows held at any time while
        // 100,000 pass through.
        let mut order = tracking(2);
        let mut pending = Vec::new();
        let mut most_store = 0;
        for i in 0..50_000i64 {
            for (p, key) in [(0, 2 * i + 200), (1, 2 * i + 1)] {
                push_key(&mut order, &mut pending, p, key);
                most_store = most_store.max(order.store.len());
            }
        }
        order.retire(1, &mut pending);
        order.close(&mut pending, |_| {});
        let sent: Vec<i64> = String::from_utf8(pending)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let mut expected: Vec<i64> = (0..50_000).flat_map(|i| [2 * i + 200, 2 * i + 1]).collect();
        expected.sort();
        assert_eq!(sent, expected);
        assert!(
            most_store < 2 * COMPACT_FLOOR,
            "store reached {most_store} bytes"
        );
    }
}
