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
//! So a batch streams its rows as they come while their keys ascend (the usual case on one
//! partition, where the server starts while the batch fills); from the first row out of order
//! on, the batch holds its rows and sends them sorted when it closes. The sort is stable:
//! rows with equal keys keep their order, so a duplicate key keeps the same winner (LOAD DATA
//! keeps the first). The order never decides what is written, only how fast.

use crate::records::Value;

/// The largest batch (in bytes of rows, a row over it included) whose rows are put in key
/// order: their offsets fit `u32`.
pub(super) const MAX_ORDERED_BYTES: usize = u32::MAX as usize;

/// Where the table's rows are ordered, and the rows not yet sent with their keys.
#[derive(Debug)]
pub(super) struct KeyOrder {
    /// The clustered key's position among the mapped columns (a single integer column).
    column: usize,
    /// The last key seen in this batch (a row without an integer key takes it as its own).
    last: Option<u64>,
    /// Since a row came out of order: the batch's remaining rows wait for [`KeyOrder::sorted`].
    holding: bool,
    /// The rows of the pending buffer, in arrival order: key, start, length (16 bytes a row;
    /// the builder orders only batches whose bytes fit `u32`, see [`MAX_ORDERED_BYTES`]).
    rows: Vec<(u64, u32, u32)>,
}

impl KeyOrder {
    /// Orders rows by mapped column `column`, an integer column that alone is the table's
    /// clustered index.
    pub(super) fn new(column: usize) -> KeyOrder {
        KeyOrder {
            column,
            last: None,
            holding: false,
            rows: Vec::new(),
        }
    }

    /// Notes a row rendered at `start..start + len` of the pending buffer.
    pub(super) fn push(&mut self, values: &[Value<'_>], start: usize, len: usize) {
        let key = match values.get(self.column) {
            // Order-preserving in u64: a column is either signed or unsigned throughout.
            Some(Value::Int(i)) => Some((*i as u64) ^ (1 << 63)),
            Some(Value::UInt(u)) => Some(*u),
            _ => None,
        };
        if let (Some(key), Some(last)) = (key, self.last) {
            if key < last {
                self.holding = true;
            }
        }
        let key = key.or(self.last).unwrap_or(0);
        self.last = Some(key);
        let offset = |n: usize| u32::try_from(n).expect("within MAX_ORDERED_BYTES");
        self.rows.push((key, offset(start), offset(len)));
    }

    /// Whether the pending rows must wait for the batch's end (they are out of order).
    pub(super) fn holding(&self) -> bool {
        self.holding
    }

    /// The pending rows were sent as they are (mid-batch).
    pub(super) fn sent(&mut self) {
        self.rows.clear();
    }

    /// The batch closed: the next one starts streaming, compared with nothing before it.
    pub(super) fn reset(&mut self) {
        self.rows.clear();
        self.rows.shrink_to(1024);
        self.last = None;
        self.holding = false;
    }

    /// The pending rows `pending` in key order, in pieces of about `chunk` bytes; ready for
    /// the next batch.
    pub(super) fn sorted(&mut self, pending: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by_key(|&(key, _, _)| key);
        let mut out = Vec::new();
        let mut piece = Vec::with_capacity(chunk.min(pending.len()) + 1024);
        for &(_, start, len) in &rows {
            let (start, len) = (start as usize, len as usize);
            piece.extend_from_slice(&pending[start..start + len]);
            if piece.len() >= chunk {
                out.push(std::mem::replace(
                    &mut piece,
                    Vec::with_capacity(chunk + 1024),
                ));
            }
        }
        if !piece.is_empty() {
            out.push(piece);
        }
        self.rows = rows;
        self.reset();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows `key\n` pushed in `keys` order, then what `sorted` sends.
    fn order(keys: &[Option<i64>]) -> (bool, String) {
        let mut order = KeyOrder::new(0);
        let mut pending = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let start = pending.len();
            let v = key.map_or(Value::Null, Value::Int);
            pending.extend_from_slice(format!("{key:?}#{i}\n").as_bytes());
            order.push(&[v], start, pending.len() - start);
        }
        let holding = order.holding();
        let sent = order.sorted(&pending, 8).concat();
        (holding, String::from_utf8(sent).unwrap())
    }

    #[test]
    fn ascending_rows_are_not_held() {
        let (holding, _) = order(&[Some(-5), Some(0), Some(0), Some(7)]);
        assert!(!holding);
    }

    #[test]
    fn rows_out_of_order_are_held_and_sent_by_key_equal_keys_in_arrival_order() {
        let (holding, sent) = order(&[Some(4), Some(8), Some(1), Some(-3), Some(4), Some(5)]);
        assert!(holding);
        assert_eq!(
            sent,
            "Some(-3)#3\nSome(1)#2\nSome(4)#0\nSome(4)#4\nSome(5)#5\nSome(8)#1\n"
        );
    }

    #[test]
    fn a_row_without_a_key_stays_behind_the_row_before_it() {
        let (_, sent) = order(&[Some(9), None, Some(2), None]);
        assert_eq!(sent, "Some(2)#2\nNone#3\nSome(9)#0\nNone#1\n");
    }

    #[test]
    fn unsigned_keys_order_as_numbers() {
        let mut order = KeyOrder::new(0);
        order.push(&[Value::UInt(u64::MAX)], 0, 1);
        order.push(&[Value::UInt(1)], 1, 1);
        assert!(order.holding());
        assert_eq!(order.sorted(b"ab", 64), vec![b"ba".to_vec()]);
        assert!(!order.holding(), "the next batch starts streaming again");
    }
}
