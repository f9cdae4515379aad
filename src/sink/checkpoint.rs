//! Checkpoints, the fence every batch writes under, and window ends (the job lock, in
//! `job_lock.rs`, is re-exported here).
//!
//! A checkpoint row says, per job, range and partition, which message was the last one
//! committed; it is written in the same transaction as the rows it covers, so after a crash
//! the table and the checkpoint agree and a re-run resumes right after it.

use std::collections::HashMap;

use sqlx::{MySqlConnection, Row};

use std::fmt::Write as _;

use super::batch::{Batch, Span};
pub use super::job_lock::{lock_name, JobLock, LockKeeper};
use super::sql::write_literal;
use crate::error::{Error, Result};
use crate::range::Position;
use crate::records::Value;

/// The migrations the binary applies at start-up (idempotent `CREATE TABLE IF NOT EXISTS`).
pub const MIGRATIONS: &[(&str, &str, &str)] = &[
    (
        "001_checkpoint",
        "p2m_checkpoint",
        include_str!("../../sql/migrations/001_checkpoint.sql"),
    ),
    (
        "002_dead_letter",
        "p2m_dead_letter",
        include_str!("../../sql/migrations/002_dead_letter.sql"),
    ),
    (
        "003_window_end",
        "p2m_window_end",
        include_str!("../../sql/migrations/003_window_end.sql"),
    ),
];

/// Creates the project's own tables if they are missing. Looks first: `CREATE TABLE IF NOT
/// EXISTS` on an existing table still costs a few milliseconds of DDL on every run, and needs
/// the CREATE privilege that a user of existing tables may not have.
pub async fn migrate(conn: &mut MySqlConnection) -> Result<()> {
    let names: Vec<String> = MIGRATIONS.iter().map(|m| format!("'{}'", m.1)).collect();
    // The names are our own constants.
    let present: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({})",
        names.join(", ")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::Sink(format!("cannot list the project's tables: {e}")))?;
    for (name, table, sql) in MIGRATIONS {
        if present.iter().any(|t| t == table) {
            continue;
        }
        // Our own DDL, compiled into the binary.
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                Error::Sink(format!(
                "cannot create the project's table (migration {name}): {e}; the user needs the \
                 CREATE privilege on this database"
            ))
            })?;
    }
    Ok(())
}

/// A checkpoint read back from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub position: Position,
}

/// The checkpoints of one job and range, keyed by partition index (-1 = not partitioned).
///
/// `settled` makes it a locking read, which waits for a transaction still writing these
/// checkpoints: a run killed (or cut off) right after sending COMMIT leaves that COMMIT to
/// finish on the server after its job lock is already released, and a plain read would return
/// the checkpoint from before it, so its batch would be written twice. Dry runs, which write
/// nothing, read without locking (and need no write privilege).
pub async fn load(
    conn: &mut MySqlConnection,
    job_id: &str,
    range_key: &str,
    settled: bool,
) -> Result<HashMap<i32, Checkpoint>> {
    let sql = if settled {
        "SELECT partition_index, ledger_id, entry_id, batch_index
           FROM p2m_checkpoint WHERE job_id = ? AND range_key = ? LOCK IN SHARE MODE"
    } else {
        "SELECT partition_index, ledger_id, entry_id, batch_index
           FROM p2m_checkpoint WHERE job_id = ? AND range_key = ?"
    };
    let rows = sqlx::query(sql)
        .bind(job_id)
        .bind(range_key)
        .fetch_all(&mut *conn)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        // A dry run skips the migrations: no checkpoint table means no checkpoints yet.
        Err(e) if is_missing_table(&e) => Vec::new(),
        Err(e) => return Err(Error::Sink(format!("cannot read checkpoints: {e}"))),
    };
    let mut out = HashMap::new();
    for row in rows {
        let get = |i: usize| row.try_get::<i64, _>(i).unwrap_or(0);
        let stored = (get(1), get(2), row.try_get::<i32, _>(3).unwrap_or(-1));
        if let Some(position) = stored_position(stored) {
            out.insert(
                row.try_get::<i32, _>(0).unwrap_or(-1),
                Checkpoint { position },
            );
        }
    }
    Ok(out)
}

/// The position a checkpoint row holds: `None` for a row [`reserve`]d before its partition's
/// first batch (ledger -1: no message id has one).
pub fn stored_position((ledger_id, entry_id, batch_index): (i64, i64, i32)) -> Option<Position> {
    (ledger_id >= 0).then(|| Position::new(ledger_id, entry_id, batch_index))
}

/// Creates a checkpoint row holding nothing yet for each of `partitions` that has none, before
/// any batch is written. Every batch's fence then locks an existing row: a locking read of a
/// missing row takes a gap lock instead, and two partitions' first batches inserting their
/// rows into the same gap deadlock (1213) when written in parallel.
pub async fn reserve(
    conn: &mut MySqlConnection,
    job_id: &str,
    range_key: &str,
    partitions: &[i32],
) -> Result<()> {
    if partitions.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO p2m_checkpoint (job_id, range_key, partition_index, ledger_id, entry_id, \
         batch_index, publish_time, records) VALUES ",
    );
    for (i, partition) in partitions.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        write_literal(&mut sql, &Value::Text(job_id));
        sql.push(',');
        write_literal(&mut sql, &Value::Text(range_key));
        let _ = write!(sql, ",{partition},-1,-1,-1,0,0)");
    }
    // An existing row (a checkpoint, or a reservation) stays as it is.
    sql.push_str(" ON DUPLICATE KEY UPDATE job_id = job_id");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::Sink(format!("cannot reserve the checkpoint rows: {e}")))?;
    Ok(())
}

fn is_missing_table(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|d| d.number() == 1146)
}

/// Where the job's window that ends at `window_to` stopped reading, per partition index: the
/// job's next window starts right after it (see `sql/migrations/003_window_end.sql`).
pub async fn window_ends(
    conn: &mut MySqlConnection,
    job_id: &str,
    window_to: i64,
) -> Result<HashMap<i32, Position>> {
    let rows = sqlx::query_as::<_, (i32, i64, i64, i32)>(
        "SELECT partition_index, ledger_id, entry_id, batch_index FROM p2m_window_end \
          WHERE job_id = ? AND window_to = ?",
    )
    .bind(job_id)
    .bind(window_to)
    .fetch_all(&mut *conn)
    .await;
    match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|(p, l, e, b)| (p, Position::new(l, e, b)))
            .collect()),
        Err(e) if is_missing_table(&e) => Ok(HashMap::new()),
        Err(e) => Err(Error::Sink(format!(
            "cannot read the previous window's end: {e}"
        ))),
    }
}

/// Records where a window stopped reading in one partition (idempotent).
pub async fn record_window_end(
    conn: &mut MySqlConnection,
    job_id: &str,
    window_to: i64,
    partition: i32,
    last_read: Position,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO p2m_window_end (job_id, window_to, partition_index, ledger_id, entry_id, \
         batch_index) VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         ledger_id = VALUES(ledger_id), entry_id = VALUES(entry_id), \
         batch_index = VALUES(batch_index)",
    )
    .bind(job_id)
    .bind(window_to)
    .bind(partition)
    .bind(last_read.ledger_id)
    .bind(last_read.entry_id)
    .bind(last_read.batch_index)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Forgets the checkpoints of one job and range (`--reprocess`).
pub async fn clear(conn: &mut MySqlConnection, job_id: &str, range_key: &str) -> Result<u64> {
    sqlx::query("DELETE FROM p2m_checkpoint WHERE job_id = ? AND range_key = ?")
        .bind(job_id)
        .bind(range_key)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| Error::Sink(format!("cannot clear checkpoints: {e}")))
}

/// The statement that moves the checkpoints of a batch's partitions forward (those with
/// records in it), as SQL text so that both write paths run it inside the batch's transaction;
/// None when the batch consumed nothing.
pub fn advance_sql(job_id: &str, range_key: &str, spans: &[Span]) -> Option<String> {
    let mut sql = String::from(
        "INSERT INTO p2m_checkpoint (job_id, range_key, partition_index, ledger_id, entry_id, \
         batch_index, publish_time, records) VALUES ",
    );
    let mut any = false;
    for span in spans {
        let Some((position, publish_time)) = span.last else {
            continue;
        };
        if any {
            sql.push(',');
        }
        any = true;
        sql.push('(');
        write_literal(&mut sql, &Value::Text(job_id));
        sql.push(',');
        write_literal(&mut sql, &Value::Text(range_key));
        let _ = write!(
            sql,
            ",{},{},{},{},{publish_time},{})",
            span.partition,
            position.ledger_id,
            position.entry_id,
            position.batch_index,
            span.consumed
        );
    }
    sql.push_str(
        " ON DUPLICATE KEY UPDATE ledger_id = VALUES(ledger_id), entry_id = VALUES(entry_id), \
         batch_index = VALUES(batch_index), publish_time = VALUES(publish_time), \
         records = records + VALUES(records)",
    );
    any.then_some(sql)
}

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
    /// The fence of a complete batch.
    pub fn for_batch(job_id: &str, range_key: &str, batch: &Batch) -> Fence {
        let parts = batch
            .spans
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

    #[test]
    fn each_migration_creates_the_table_it_is_checked_by() {
        for (name, table, sql) in MIGRATIONS {
            assert!(
                sql.contains(&format!("CREATE TABLE IF NOT EXISTS {table} (")),
                "{name} does not create {table}"
            );
        }
    }

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
        let batch = Batch {
            spans: vec![
                span(0, Some(p(10)), Some(20)),
                span(1, None, Some(4)),
                span(2, Some(p(3)), None),
            ],
            ..Default::default()
        };
        let fence = Fence::for_batch("job", "range", &batch);
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
        let sql = advance_sql("job", "range", &batch.spans).unwrap();
        assert!(sql.contains(",0,7,20,-1,1020,5)"), "{sql}");
        assert!(sql.contains(",1,7,4,-1,1004,5)"), "{sql}");
        assert!(!sql.contains(",2,"), "{sql}");
        let nothing = Batch {
            spans: vec![span(2, Some(p(3)), None)],
            ..Default::default()
        };
        assert_eq!(advance_sql("job", "range", &nothing.spans), None);
    }
}
