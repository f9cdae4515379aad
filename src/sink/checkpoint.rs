//! Checkpoints and window ends, and [`Span`], a checkpoint's move across one batch (the fence
//! every batch writes under is in `fence.rs`, the job lock in `job_lock.rs`, the tables'
//! migrations in `migrations.rs`).
//!
//! A checkpoint row says, per job, range and partition, which message was the last one
//! committed; it is written in the same transaction as the rows it covers, so after a crash
//! the table and the checkpoint agree and a re-run resumes right after it.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{MySqlConnection, Row};

use std::fmt::Write as _;

use super::sql::write_literal;
use crate::error::{Error, Result};
use crate::range::Position;
use crate::records::Value;

/// One partition's share of a batch: where its checkpoint stands before the batch and where
/// the batch brings it. A batch carries a span for every partition its stream reads, with
/// records in it or not, so that every attempt fences them all in one locking read.
#[derive(Debug, Clone)]
pub struct Span {
    pub topic: Arc<str>,
    pub partition: i32,
    /// The checkpoint before this batch (None: the partition has none yet). An attempt writes
    /// only if the checkpoint is still there (see `Fence` in fence.rs).
    pub after: Option<Position>,
    /// Last position consumed in this batch, with its publish time: the checkpoint after
    /// commit (None: nothing of this partition in the batch).
    pub last: Option<(Position, i64)>,
    /// Records of this partition consumed by the batch (rows + bad records).
    pub consumed: u64,
}

impl Span {
    /// Where the checkpoint stands once the batch is committed.
    pub fn end(&self) -> Option<Position> {
        self.last.map(|(p, _)| p).or(self.after)
    }
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
