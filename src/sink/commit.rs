//! The transaction that commits a batch's rows, dead letters and checkpoint together, under
//! the batch's fence, retried on transient failures without ever applying a batch twice.

use std::time::Instant;

use sqlx::{Connection, MySqlConnection};

use super::batch::{Batch, Body, OpenBatch};
use super::checkpoint;
use super::connect::{tls_refused, MysqlSink};
use super::dead_letter;
use super::fence::{self, Fence, Verdict};
use super::load_data::{LoadDataWriter, Loaded, Started};
use super::skipped::{only_duplicates, Warning};
use super::write_error::{bounded, WriteError};
use crate::config::WriteMode;
use crate::error::{scrub, Backoff, Error, Result};
use crate::range::Position;

/// Hint for a duplicate key under `--mode insert`, whichever path found it.
const DUPLICATE_HINT: &str = "the table already holds a row with this key: re-run with --mode \
upsert or --mode ignore-duplicates, or clear the table before --reprocess";

/// What one committed batch did, and where its time went.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommitStats {
    pub rows_written: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub retries: u64,
    /// When the batch's first statement went to the server (the attempt that committed).
    pub first_write: Option<Instant>,
    /// How long a LOAD DATA statement waited for the readers' rows.
    pub input_wait: std::time::Duration,
    /// How long the COMMIT took.
    pub commit: std::time::Duration,
}

impl MysqlSink {
    /// Commits a batch: rows, dead letters and the checkpoint in one transaction. Transient
    /// failures (including a server that stops answering within `--mysql-io-timeout-secs`) are
    /// retried within the retry budget, counted from the first failure. Every attempt passes
    /// the batch's [`Fence`] first, so an attempt whose COMMIT reply was lost is never applied
    /// twice, and a second writer of the same partition stops the run.
    ///
    /// `early` is the load [`MysqlSink::start_load`] began for this batch, if any; it counts
    /// as the first attempt.
    pub async fn commit(
        &self,
        batch: &Batch,
        job_id: &str,
        range_key: &str,
        early: Option<EarlyLoad>,
    ) -> Result<CommitStats> {
        if batch.is_empty() {
            return Ok(CommitStats::default());
        }
        let fence = Fence::for_spans(job_id, range_key, &batch.spans);
        let mut early = early;
        let mut retrying = Retrying::default();
        loop {
            let attempt_began = Instant::now();
            // An attempt dropped because the server stopped answering may still hold the
            // batch's locks (or be committing it): the next attempt ends its thread first.
            let attempt = match retrying.abandoned.take() {
                Some(thread) => self
                    .kill(thread)
                    .await
                    .inspect_err(|_| retrying.abandoned = Some(thread)),
                None => Ok(()),
            };
            let attempt = match attempt {
                Ok(()) => self.try_commit(batch, &fence, early.take()).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(Attempt::Committed(mut stats)) => {
                    stats.retries = retrying.retries;
                    return Ok(stats);
                }
                Ok(Attempt::Landed) => {
                    tracing::info!(
                        partitions = %batch.partitions(),
                        "the lost commit had landed; not writing it again"
                    );
                    return Ok(CommitStats {
                        rows_written: batch.rows,
                        duplicates: 0,
                        dead_lettered: batch.dead_letters.len() as u64,
                        retries: retrying.retries,
                        ..Default::default()
                    });
                }
                Err(e) if e.is_retriable() => {
                    retrying.failed(self, batch, e, attempt_began).await?;
                }
                Err(e) if e.is_tls() => return Err(tls_refused(&self.cfg, &e.to_string())),
                Err(WriteError::Refused(msg)) => return Err(Error::Sink(msg)),
                Err(WriteError::Moved { partition, found }) => {
                    return Err(Error::Fenced(fence.moved_message(partition, found)))
                }
                Err(e) => return Err(self.explain(e, batch)),
            }
        }
    }

    /// A connection for an attempt, within `--mysql-io-timeout-secs`: on a silent network the
    /// pool would wait for its own, longer, connect timeout.
    async fn connection(
        &self,
    ) -> std::result::Result<sqlx::pool::PoolConnection<sqlx::MySql>, WriteError> {
        bounded(
            self.cfg.io_timeout,
            "a new connection",
            None,
            self.pool.acquire(),
        )
        .await
    }

    /// Ends the server thread of an abandoned attempt, so that its transaction rolls back (or
    /// finishes committing) before the next attempt reads the fence. Only while the thread is
    /// still this run's: a thread id recorded before the server restarted (or failed over
    /// behind the same address) may name an unrelated session now, and so may one of another
    /// user; such a thread is left alone (its own transaction, if any, died with the server).
    async fn kill(&self, thread: u32) -> std::result::Result<(), WriteError> {
        let mut conn = self.connection().await?;
        let limit = self.cfg.io_timeout;
        let started = bounded(limit, "the server's uptime", None, async {
            Ok::<_, sqlx::Error>(super::connect::server_started(&mut conn).await)
        })
        .await?;
        let restarted = {
            let mut seen = self.server_started.lock().expect("server start lock");
            let restarted = matches!((*seen, started), (Some(a), Some(b)) if (a - b).abs() > 2);
            *seen = started.or(*seen);
            restarted
        };
        // Without the PROCESS privilege only this user's threads are listed: another user's
        // thread looks gone, and is left alone all the same.
        let ours: i64 = bounded(
            limit,
            "a thread check",
            None,
            sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.PROCESSLIST \
                 WHERE ID = ? AND USER = SUBSTRING_INDEX(USER(), '@', 1)",
            )
            .bind(thread)
            .fetch_one(&mut *conn),
        )
        .await?;
        if restarted || ours == 0 {
            tracing::info!(
                thread,
                restarted,
                "the abandoned attempt's server thread is gone or no longer this run's; not \
                 killing it"
            );
            return Ok(());
        }
        let sql = format!("KILL CONNECTION {thread}");
        let result = bounded(
            limit,
            "KILL",
            None,
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn),
        )
        .await;
        match result {
            // 1094: unknown thread, already gone; 1095: not ours after all (it ended and
            // the id was taken between the check and the KILL).
            Err(e) if matches!(e.server_code(), Some(1094 | 1095)) => Ok(()),
            Err(e @ WriteError::Stalled { .. }) => {
                conn.close_on_drop();
                Err(e)
            }
            other => other.map(|_| ()),
        }
    }

    fn explain(&self, e: WriteError, batch: &Batch) -> Error {
        let text = scrub(&e.to_string(), self.cfg.password.as_deref());
        let hint = match e.server_code() {
            Some(1062) => format!("; {DUPLICATE_HINT}"),
            Some(1142 | 1143) => "; the MySQL user lacks the INSERT privilege on the table".into(),
            Some(1148 | 4166) => {
                "; the server refuses LOAD DATA LOCAL INFILE: set local_infile=ON \
                on the server or use --write-strategy insert"
                    .into()
            }
            Some(1406 | 1264 | 1366 | 1292) => {
                "; a value did not fit its column (this is a bug in \
                pulsar2mysql's checks: please report it with the record)"
                    .into()
            }
            _ => String::new(),
        };
        Error::Sink(format!(
            "writing a batch of partition {} to {} failed: {text}{hint}",
            batch.partitions(),
            self.table
        ))
    }

    /// Begins loading a LOAD DATA batch while it is still being filled; the result goes to
    /// [`MysqlSink::commit`] once the batch is complete.
    pub async fn start_load(&self, open: &OpenBatch, job_id: &str, range_key: &str) -> EarlyLoad {
        let writer = self
            .load_data
            .as_ref()
            .expect("open batches come from a LOAD DATA sink");
        let fence = Fence::for_open_batch(job_id, range_key, &open.fenced);
        EarlyLoad(writer.start(&open.statement, &open.data, &fence).await)
    }

    async fn try_commit(
        &self,
        batch: &Batch,
        fence: &Fence,
        early: Option<EarlyLoad>,
    ) -> std::result::Result<Attempt, WriteError> {
        let mut then = dead_letter::statements(
            fence.job_id(),
            &batch.dead_letters,
            self.max_statement_bytes,
        );
        then.extend(checkpoint::advance_sql(
            fence.job_id(),
            fence.range_key(),
            &batch.spans,
        ));
        let started = match &batch.body {
            Body::Statements(statements) => {
                let mut conn = self.connection().await?;
                let result = self
                    .insert_statements(&mut conn, fence, statements, &then)
                    .await;
                if matches!(result, Err(WriteError::Stalled { .. })) {
                    // Cut in the middle of a round trip: never back to the pool.
                    drop(conn.detach());
                }
                return result.map(|attempt| match attempt {
                    Attempt::Committed(mut stats) => {
                        stats.dead_lettered = batch.dead_letters.len() as u64;
                        Attempt::Committed(stats)
                    }
                    landed => landed,
                });
            }
            Body::Tsv { statement, data } => {
                let writer = self
                    .load_data
                    .as_ref()
                    .expect("a LOAD DATA batch comes from a LOAD DATA sink");
                match early {
                    Some(EarlyLoad(started)) => started,
                    None => writer.start(statement, data, fence).await,
                }
            }
        };
        let started = match started {
            Ok(started) => started,
            // What the fence found, judged with the batch's ends (an early load could not
            // know them).
            Err(WriteError::Fenced(found)) => return judged(fence, &found),
            Err(e) => return Err(e),
        };
        let writer = self.load_data.as_ref().expect("checked above");
        let mut stats = self.finish_load(writer, started, batch.rows, &then).await?;
        stats.dead_lettered = batch.dead_letters.len() as u64;
        Ok(Attempt::Committed(stats))
    }

    /// The INSERT path: the fence, the statements, then `then`, in one sqlx transaction, each
    /// round trip bounded by `--mysql-io-timeout-secs`.
    async fn insert_statements(
        &self,
        conn: &mut MySqlConnection,
        fence: &Fence,
        statements: &[(String, u64)],
        then: &[String],
    ) -> std::result::Result<Attempt, WriteError> {
        let limit = self.cfg.io_timeout;
        let thread: u64 = bounded(
            limit,
            "a connection id",
            None,
            sqlx::query_scalar("SELECT CONNECTION_ID()").fetch_one(&mut *conn),
        )
        .await?;
        let thread = Some(thread as u32);
        let mut tx = bounded(limit, "START TRANSACTION", thread, conn.begin()).await?;
        let rows: Vec<(i32, i64, i64, i32)> = bounded(
            limit,
            "the checkpoint read",
            thread,
            sqlx::query_as(sqlx::AssertSqlSafe(fence.lock_sql())).fetch_all(&mut *tx),
        )
        .await?;
        let found = fence::found(rows);
        if fence.judge(&found) != Verdict::Write {
            bounded(limit, "ROLLBACK", thread, tx.rollback()).await?;
            return judged(fence, &found);
        }
        let mut stats = CommitStats {
            first_write: Some(Instant::now()),
            ..Default::default()
        };
        for (sql, rows) in statements {
            // Values are rendered by `write_literal`, which escapes them.
            let affected = bounded(
                limit,
                "an INSERT",
                thread,
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut *tx),
            )
            .await?
            .rows_affected();
            match self.cfg.mode {
                WriteMode::IgnoreDuplicates => {
                    let dup = rows.saturating_sub(affected);
                    bounded(
                        limit,
                        "a warning count",
                        thread,
                        check_only_duplicate_warnings(&mut tx, dup),
                    )
                    .await?;
                    stats.rows_written += affected;
                    stats.duplicates += dup;
                }
                WriteMode::Upsert => {
                    // affected = 1 per insert, 2 per changed row (1 per unchanged: FOUND_ROWS).
                    stats.duplicates += affected.saturating_sub(*rows);
                    stats.rows_written += rows;
                }
                WriteMode::Insert => stats.rows_written += affected,
            }
        }
        for sql in then {
            // Rendered by `write_literal` (dead letters, checkpoint).
            bounded(
                limit,
                "the checkpoint",
                thread,
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut *tx),
            )
            .await?;
        }
        let began = Instant::now();
        bounded(limit, "COMMIT", thread, tx.commit()).await?;
        stats.commit = began.elapsed();
        Ok(Attempt::Committed(stats))
    }

    /// Completes a LOAD DATA batch. LOCAL makes the server skip duplicates and bad values
    /// with a warning; only the duplicates `--mode ignore-duplicates` asked for may pass.
    async fn finish_load(
        &self,
        writer: &LoadDataWriter,
        started: Started,
        rows: u64,
        then: &[String],
    ) -> std::result::Result<CommitStats, WriteError> {
        let ignore = self.cfg.mode == WriteMode::IgnoreDuplicates;
        let check = |l: &Loaded| {
            let duplicates = rows.saturating_sub(l.inserted);
            let first = l.first_warning();
            let detail = first.as_deref().unwrap_or("no warning given");
            if l.inserted > rows {
                Err(format!(
                    "the server stored {} rows for a batch of {rows} ({detail}); the batch \
                     was rolled back",
                    l.inserted
                ))
            } else if duplicates > 0 && !ignore {
                // Only a duplicate key gets the duplicate's hint: a missing parent row or a
                // failed CHECK skips rows the same way.
                let hint = match only_duplicates(duplicates, l.warnings, &l.shown) {
                    Ok(_) => DUPLICATE_HINT.to_string(),
                    Err(why) => why,
                };
                Err(format!(
                    "{duplicates} of {rows} rows were not stored ({detail}); {hint}; the batch \
                     was rolled back"
                ))
            } else if ignore {
                only_duplicates(duplicates, l.warnings, &l.shown)
                    .map(|_| ())
                    .map_err(not_only_duplicates)
            } else if l.warnings > duplicates {
                Err(format!(
                    "the server reported {} warnings for {duplicates} skipped duplicates; a \
                     value was changed on the way in ({detail}); the batch was rolled back",
                    l.warnings
                ))
            } else {
                Ok(())
            }
        };
        let loaded = writer.finish(started, then, check).await?;
        Ok(CommitStats {
            rows_written: loaded.inserted,
            duplicates: rows - loaded.inserted,
            first_write: loaded.sent_at,
            input_wait: loaded.input_wait,
            commit: loaded.commit,
            ..Default::default()
        })
    }
}

/// The state of a batch's retries: how many, since when, the first cause, the backoff, and
/// the server thread of an attempt abandoned mid-way.
#[derive(Default)]
struct Retrying {
    retries: u64,
    first_failure: Option<(Instant, String)>,
    backoff: Option<Backoff>,
    abandoned: Option<u32>,
}

impl Retrying {
    /// Counts a transient failure of an attempt begun at `began` and waits before the next
    /// one; the error that gives up once the retry budget is spent.
    async fn failed(
        &mut self,
        sink: &MysqlSink,
        batch: &Batch,
        e: WriteError,
        began: Instant,
    ) -> Result<()> {
        if let WriteError::Stalled { thread, .. } = e {
            self.abandoned = self.abandoned.or(thread);
        }
        self.retries += 1;
        let retries = self.retries;
        let cause = scrub(&e.to_string(), sink.cfg.password.as_deref());
        let (since, first) = self
            .first_failure
            .get_or_insert_with(|| (began, cause.clone()));
        tracing::warn!(partitions = %batch.partitions(), retries, %cause, "batch failed with a transient error; retrying");
        let budget = sink.cfg.retry_budget;
        if self
            .backoff
            .get_or_insert_with(|| Backoff::new(budget))
            .wait()
            .await
        {
            return Ok(());
        }
        let first = if *first == cause {
            String::new()
        } else {
            format!(" (the first failure: {first})")
        };
        Err(Error::Sink(format!(
            "gave up writing a batch of partition {} to {} after {retries} failed attempts \
             over {:.1}s (retry budget {}s): {cause}{first}",
            batch.partitions(),
            sink.cfg.redacted_url(),
            since.elapsed().as_secs_f64(),
            budget.as_secs()
        )))
    }
}

/// A load begun early by [`MysqlSink::start_load`].
pub struct EarlyLoad(std::result::Result<Started, WriteError>);

/// How an attempt at a batch ended, when it did not fail.
enum Attempt {
    Committed(CommitStats),
    /// An earlier attempt had committed the batch; this one wrote nothing.
    Landed,
}

/// An attempt the fence stopped, by what it found: the batch had landed, or a checkpoint
/// moved.
fn judged(fence: &Fence, found: &[(i32, Option<Position>)]) -> Result<Attempt, WriteError> {
    match fence.judge(found) {
        Verdict::Landed => Ok(Attempt::Landed),
        Verdict::Moved { partition, found } => Err(WriteError::Moved { partition, found }),
        Verdict::Write => Err(WriteError::Refused(
            "internal error: the fence stopped a batch it lets pass".into(),
        )),
    }
}

/// `INSERT IGNORE` turns every error into a warning; only duplicate-key warnings are what the
/// user asked to ignore. Anything else (a missing parent row, a failed CHECK, a truncation)
/// rolls the batch back.
async fn check_only_duplicate_warnings(
    conn: &mut MySqlConnection,
    skipped: u64,
) -> std::result::Result<(), WriteError> {
    let warnings: i64 = sqlx::query_scalar("SELECT CAST(@@warning_count AS SIGNED)")
        .fetch_one(&mut *conn)
        .await?;
    if warnings == 0 && skipped == 0 {
        return Ok(());
    }
    let shown: Vec<(String, u32, String)> = sqlx::query_as("SHOW WARNINGS")
        .fetch_all(&mut *conn)
        .await?;
    let shown: Vec<Warning> = shown
        .into_iter()
        .map(|(_, code, message)| Warning { code, message })
        .collect();
    only_duplicates(skipped, warnings as u64, &shown)
        .map(|_| ())
        .map_err(|why| WriteError::Refused(not_only_duplicates(why)))
}

/// The error of a batch under `--mode ignore-duplicates` that skipped more than duplicates.
fn not_only_duplicates(why: String) -> String {
    format!(
        "{why}; --mode ignore-duplicates skips duplicate keys only, so the batch was rolled back"
    )
}
