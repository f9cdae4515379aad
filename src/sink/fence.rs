//! The fence: the condition every attempt at a batch writes under, judged from the batch's
//! partitions' checkpoint rows read `FOR UPDATE` inside the batch's transaction.

use std::fmt::Write as _;

use super::checkpoint::{stored_position, Span};
use super::sql::write_literal;
use crate::range::Position;
use crate::records::Value;

/// What a fence's locking read found: each partition's checkpoint (None: nothing yet).
pub type Found = Vec<(i32, Option<Position>)>;

/// The condition every attempt at a batch writes under. Inside the batch's transaction, before
/// any row, the checkpoint rows of the batch's partitions are read `FOR UPDATE`: that waits
/// for any earlier attempt still open on the server (a COMMIT whose reply was lost, a
/// connection cut in the middle), and then tells whether to write, whether that earlier
/// attempt already landed, or whether somebody else moved a checkpoint (a second runner of the
/// same job).
#[derive(Debug, Clone)]
pub struct Fence {
    job_id: String,
    range_key: String,
    lock_sql: String,
    /// Each fenced partition: its checkpoint before the batch, and after it.
    parts: Vec<(i32, Option<Position>, Option<Position>)>,
    /// Whether the batch is complete: while a LOAD DATA batch is still being filled its ends
    /// are unknown, and only "write" can be told apart from "moved".
    complete: bool,
}

/// What an attempt found in its partitions' checkpoint rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every checkpoint is where this writer left it: write the batch.
    Write,
    /// Every checkpoint stands exactly at the batch's end: an earlier attempt committed it.
    Landed,
    /// Partition `partition`'s checkpoint is somewhere this writer did not put it.
    Moved {
        partition: i32,
        found: Option<Position>,
    },
}

impl Fence {
    /// The fence of a complete batch, from its spans: each partition's checkpoint before the
    /// batch and after it.
    pub fn for_spans(job_id: &str, range_key: &str, spans: &[Span]) -> Fence {
        let parts = spans
            .iter()
            .map(|s| (s.partition, s.after, s.end()))
            .collect();
        Fence::new(job_id, range_key, parts, true)
    }

    /// The fence of a LOAD DATA batch still being filled: `fenced` are its partitions with
    /// their checkpoints before it.
    pub fn for_open_batch(
        job_id: &str,
        range_key: &str,
        fenced: &[(i32, Option<Position>)],
    ) -> Fence {
        let parts = fenced.iter().map(|&(p, after)| (p, after, None)).collect();
        Fence::new(job_id, range_key, parts, false)
    }

    fn new(
        job_id: &str,
        range_key: &str,
        parts: Vec<(i32, Option<Position>, Option<Position>)>,
        complete: bool,
    ) -> Fence {
        let mut lock_sql = String::from(
            "SELECT partition_index, ledger_id, entry_id, batch_index FROM p2m_checkpoint \
             WHERE job_id = ",
        );
        write_literal(&mut lock_sql, &Value::Text(job_id));
        lock_sql.push_str(" AND range_key = ");
        write_literal(&mut lock_sql, &Value::Text(range_key));
        lock_sql.push_str(" AND partition_index IN (");
        for (i, (partition, _, _)) in parts.iter().enumerate() {
            if i > 0 {
                lock_sql.push(',');
            }
            let _ = write!(lock_sql, "{partition}");
        }
        if parts.is_empty() {
            lock_sql.push_str("NULL");
        }
        lock_sql.push_str(") FOR UPDATE");
        Fence {
            job_id: job_id.to_string(),
            range_key: range_key.to_string(),
            lock_sql,
            parts,
            complete,
        }
    }

    /// The job the fenced batch belongs to.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The range the fenced batch belongs to.
    pub fn range_key(&self) -> &str {
        &self.range_key
    }

    /// The locking read, as SQL text (both write paths run it); its rows are (partition
    /// index, ledger id, entry id, batch index), for [`found`].
    pub fn lock_sql(&self) -> &str {
        &self.lock_sql
    }

    /// What to do, given what the locking read found.
    pub fn judge(&self, found: &[(i32, Option<Position>)]) -> Verdict {
        let at = |partition: i32| {
            found
                .iter()
                .find(|(p, _)| *p == partition)
                .and_then(|(_, position)| *position)
        };
        let moved = self
            .parts
            .iter()
            .find(|(partition, after, _)| at(*partition) != *after);
        let Some(&(partition, _, _)) = moved else {
            return Verdict::Write;
        };
        // Exactly the batch's end, not "at or past it": past it, somebody else has written
        // rows this writer never saw, and skipping ahead would hide them.
        if self.complete && self.parts.iter().all(|(p, _, end)| at(*p) == *end) {
            return Verdict::Landed;
        }
        Verdict::Moved {
            partition,
            found: at(partition),
        }
    }

    /// The sentence for a [`Verdict::Moved`] checkpoint.
    pub fn moved_message(&self, partition: i32, found: Option<Position>) -> String {
        let show = |p: Option<Position>| p.map_or("nothing".to_string(), |p| p.to_string());
        let after = self
            .parts
            .iter()
            .find(|(p, _, _)| *p == partition)
            .and_then(|(_, after, _)| *after);
        format!(
            "the checkpoint of partition {partition} holds {} where this run left {}: another \
             run of the same job is writing this range (or its checkpoints were changed by \
             hand); this run stopped without writing its batch",
            show(found),
            show(after)
        )
    }
}

/// The rows of a fence's locking read as [`Found`].
pub fn found(rows: impl IntoIterator<Item = (i32, i64, i64, i32)>) -> Found {
    rows.into_iter()
        .map(|(partition, l, e, b)| (partition, stored_position((l, e, b))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::checkpoint::advance_sql;

    #[test]
    fn the_fence_writes_only_where_this_writer_left_the_checkpoint() {
        let p = |e: i64| Position::new(7, e, -1);
        let one = |after, end| Fence::new("job", "range", vec![(3, after, end)], true);
        let at = |found| vec![(3, found)];
        let fence = one(Some(p(10)), Some(p(20)));
        assert!(fence
            .lock_sql()
            .ends_with("partition_index IN (3) FOR UPDATE"));
        assert_eq!(fence.judge(&at(Some(p(10)))), Verdict::Write);
        // An earlier attempt's COMMIT landed after all.
        assert_eq!(fence.judge(&at(Some(p(20)))), Verdict::Landed);
        let moved = |found| Verdict::Moved {
            partition: 3,
            found,
        };
        assert_eq!(fence.judge(&at(Some(p(25)))), moved(Some(p(25))));
        // Somebody else wrote part of the way, or took the checkpoint back.
        assert_eq!(fence.judge(&at(Some(p(15)))), moved(Some(p(15))));
        assert_eq!(fence.judge(&at(Some(p(5)))), moved(Some(p(5))));
        assert_eq!(fence.judge(&at(None)), moved(None));
        assert_eq!(fence.judge(&[]), moved(None), "no row at all");
        // A partition's first batch: nothing yet.
        let first = one(None, Some(p(20)));
        assert_eq!(first.judge(&at(None)), Verdict::Write);
        assert_eq!(first.judge(&at(Some(p(20)))), Verdict::Landed);
        // While a LOAD DATA batch is still filling, its end is unknown: any move is suspect.
        let open = Fence::for_open_batch("job", "range", &[(3, Some(p(10)))]);
        assert_eq!(open.judge(&at(Some(p(10)))), Verdict::Write);
        assert_eq!(open.judge(&at(Some(p(99)))), moved(Some(p(99))));
        // Quotes in the job id stay inside the literal.
        let quoted = Fence::new("it's", "r", vec![(0, None, None)], true);
        assert!(
            quoted.lock_sql().contains(r"'it\'s'"),
            "{}",
            quoted.lock_sql()
        );
    }

    #[test]
    fn a_batch_of_several_partitions_is_fenced_and_checkpointed_as_one() {
        let p = |e: i64| Position::new(7, e, -1);
        let span = |partition, after, last: Option<i64>| Span {
            topic: "t".into(),
            partition,
            after,
            last: last.map(|e| (p(e), 1_000 + e)),
            consumed: last.map_or(0, |_| 5),
        };
        // Partition 2 has no record in this batch: fenced, not advanced.
        let spans = vec![
            span(0, Some(p(10)), Some(20)),
            span(1, None, Some(4)),
            span(2, Some(p(3)), None),
        ];
        let fence = Fence::for_spans("job", "range", &spans);
        assert!(fence
            .lock_sql()
            .ends_with("partition_index IN (0,1,2) FOR UPDATE"));
        let before = vec![(0, Some(p(10))), (1, None), (2, Some(p(3)))];
        assert_eq!(fence.judge(&before), Verdict::Write);
        let after = vec![(0, Some(p(20))), (1, Some(p(4))), (2, Some(p(3)))];
        assert_eq!(fence.judge(&after), Verdict::Landed);
        // One partition moved by somebody else: the batch stops, naming it.
        let other = vec![(0, Some(p(10))), (1, Some(p(9))), (2, Some(p(3)))];
        assert_eq!(
            fence.judge(&other),
            Verdict::Moved {
                partition: 1,
                found: Some(p(9))
            }
        );
        // Half landed is not landed: checkpoints commit together or not at all.
        let half = vec![(0, Some(p(20))), (1, None), (2, Some(p(3)))];
        assert!(matches!(
            fence.judge(&half),
            Verdict::Moved { partition: 0, .. }
        ));
        let sql = advance_sql("job", "range", &spans).unwrap();
        assert!(sql.contains(",0,7,20,-1,1020,5)"), "{sql}");
        assert!(sql.contains(",1,7,4,-1,1004,5)"), "{sql}");
        assert!(!sql.contains(",2,"), "{sql}");
        assert_eq!(
            advance_sql("job", "range", &[span(2, Some(p(3)), None)]),
            None
        );
    }
}
