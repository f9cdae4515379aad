//! The only code that talks to MySQL for writing: connection set-up, batched multi-row
//! statements rendered as SQL text, and the transaction that commits rows, dead letters and the
//! checkpoint together, retried on transient failures without ever applying a batch twice.

use std::fmt::Write as _;
use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Connection, Executor, MySqlConnection, MySqlPool};

use super::checkpoint;
use super::schema::{quote_ident, read_columns, TableName};
use crate::config::{SinkConfig, WriteMode};
use crate::error::{is_retriable_sql, scrub, Backoff, Error, Result};
use crate::records::{BadRecord, Column, Value};
use crate::source::{Position, SourceMessage};

/// Session settings every connection gets: strict mode so the server refuses instead of
/// truncating, explicit 0 kept in AUTO_INCREMENT columns, UTC for TIMESTAMP values, and
/// backslash escapes on (the literal writer relies on them).
const SESSION_INIT: &str = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,\
NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', time_zone = '+00:00'";

/// A connected sink for one table.
pub struct MysqlSink {
    pool: MySqlPool,
    table: TableName,
    columns: Vec<Column>,
    max_statement_bytes: usize,
    cfg: SinkConfig,
}

/// What one committed batch did.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommitStats {
    pub rows_written: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub retries: u64,
}

impl MysqlSink {
    /// Connects, applies the project's migrations (unless `read_only`) and reads the table's
    /// columns and the server's `max_allowed_packet`.
    pub async fn connect(cfg: &SinkConfig, read_only: bool) -> Result<Self> {
        let table = TableName::parse(&cfg.table)?;
        let secret = cfg.password.clone();
        let mut options = MySqlConnectOptions::from_str(&cfg.url).map_err(|e| {
            Error::Config(format!(
                "--mysql-url '{}' is not a MySQL URL: {}",
                cfg.redacted_url(),
                scrub(&e.to_string(), secret.as_deref())
            ))
        })?;
        if let Some(pw) = &cfg.password {
            options = options.password(pw);
        }
        options = options
            .charset("utf8mb4")
            .pipes_as_concat(false)
            .timezone(Some("+00:00".to_string()));
        let pool = MySqlPoolOptions::new()
            .max_connections(cfg.writers as u32 + 2)
            .acquire_timeout(std::time::Duration::from_secs(15))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SESSION_INIT).await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let mut backoff = Backoff::new(cfg.retry_budget);
        let mut conn = loop {
            match pool.acquire().await {
                Ok(c) => break c,
                Err(e) if is_retriable_sql(&e) => {
                    tracing::warn!(error = %scrub(&e.to_string(), secret.as_deref()), "cannot connect to MySQL yet; retrying");
                    if !backoff.wait().await {
                        return Err(Error::Sink(format!(
                            "cannot connect to {}: {}",
                            cfg.redacted_url(),
                            scrub(&e.to_string(), secret.as_deref())
                        )));
                    }
                }
                Err(e) => {
                    return Err(Error::Sink(format!(
                        "cannot connect to {}: {}",
                        cfg.redacted_url(),
                        scrub(&e.to_string(), secret.as_deref())
                    )))
                }
            }
        };
        if !read_only {
            checkpoint::migrate(&mut conn).await?;
        }
        let columns = read_columns(&mut conn, &table).await?;
        let packet: i64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::Sink(format!("cannot read max_allowed_packet: {e}")))?;
        // Leave room for the statement's head and tail and the protocol's own framing.
        let max_statement_bytes = cfg
            .batch_bytes
            .min((packet as usize).saturating_sub(16 * 1024))
            .max(16 * 1024);
        Ok(MysqlSink {
            pool,
            table,
            columns,
            max_statement_bytes,
            cfg: cfg.clone(),
        })
    }

    /// The table's columns, in table order.
    pub fn table_columns(&self) -> &[Column] {
        &self.columns
    }

    /// The table being written.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The pool, for the job lock and checkpoint reads.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// A connection from the pool, with the driver's error made readable.
    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<sqlx::MySql>> {
        self.pool.acquire().await.map_err(|e| {
            Error::Sink(format!(
                "cannot connect to {}: {}",
                self.cfg.redacted_url(),
                scrub(&e.to_string(), self.cfg.password.as_deref())
            ))
        })
    }

    /// A builder for batches of one partition, writing the given (mapped) columns.
    pub fn batch_builder(&self, mapped: &[Column], topic: &str, partition: i32) -> BatchBuilder {
        let cols: Vec<String> = mapped.iter().map(|c| quote_ident(&c.name)).collect();
        let verb = match self.cfg.mode {
            WriteMode::IgnoreDuplicates => "INSERT IGNORE INTO",
            _ => "INSERT INTO",
        };
        let head = format!(
            "{verb} {} ({}) VALUES ",
            self.table.quoted(),
            cols.join(",")
        );
        let tail = match self.cfg.mode {
            WriteMode::Upsert => format!(
                " ON DUPLICATE KEY UPDATE {}",
                cols.iter()
                    .map(|c| format!("{c}=VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => String::new(),
        };
        BatchBuilder {
            head,
            tail,
            max_statement_bytes: self.max_statement_bytes,
            max_rows: self.cfg.batch_rows,
            topic: topic.to_string(),
            partition,
            current: String::new(),
            row: String::new(),
            batch: Batch::empty(partition),
        }
    }

    /// Commits a batch: rows, dead letters and the checkpoint in one transaction. Transient
    /// failures are retried within the retry budget; when a commit's reply was lost, the
    /// checkpoint tells whether it landed, so a batch is never applied twice.
    pub async fn commit(
        &self,
        batch: &Batch,
        job_id: &str,
        range_key: &str,
    ) -> Result<CommitStats> {
        let Some(last) = batch.last else {
            return Ok(CommitStats::default());
        };
        let mut backoff = Backoff::new(self.cfg.retry_budget);
        let mut retries = 0;
        loop {
            match self.try_commit(batch, job_id, range_key).await {
                Ok(mut stats) => {
                    stats.retries = retries;
                    return Ok(stats);
                }
                Err(WriteError::Sql(e)) if is_retriable_sql(&e) => {
                    retries += 1;
                    let cause = scrub(&e.to_string(), self.cfg.password.as_deref());
                    tracing::warn!(partition = batch.partition, retries, %cause, "batch failed with a transient error; retrying");
                    if !backoff.wait().await {
                        return Err(Error::Sink(format!(
                            "gave up writing to {} after {retries} retries over {:?}: {cause}",
                            self.cfg.redacted_url(),
                            self.cfg.retry_budget
                        )));
                    }
                    if self
                        .landed(batch.partition, last.0, job_id, range_key)
                        .await
                    {
                        tracing::info!(
                            partition = batch.partition,
                            "the lost commit had landed; not writing it again"
                        );
                        return Ok(CommitStats {
                            rows_written: batch.rows,
                            duplicates: 0,
                            dead_lettered: batch.dead_letters.len() as u64,
                            retries,
                        });
                    }
                }
                Err(WriteError::Sql(e)) => return Err(self.explain(e, batch)),
                Err(WriteError::Refused(msg)) => return Err(Error::Sink(msg)),
            }
        }
    }

    async fn landed(&self, partition: i32, last: Position, job_id: &str, range_key: &str) -> bool {
        let Ok(mut conn) = self.pool.acquire().await else {
            return false;
        };
        matches!(
            checkpoint::position_of(&mut conn, job_id, range_key, partition).await,
            Ok(Some(p)) if p >= last
        )
    }

    fn explain(&self, e: sqlx::Error, batch: &Batch) -> Error {
        let text = scrub(&e.to_string(), self.cfg.password.as_deref());
        let code = e
            .as_database_error()
            .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .map(|d| d.number());
        let hint = match code {
            Some(1062) => "; the table already holds a row with this key: re-run with --mode upsert or --mode ignore-duplicates, or clear the table before --reprocess",
            Some(1142 | 1143) => "; the MySQL user lacks the INSERT privilege on the table",
            Some(1406 | 1264 | 1366 | 1292) => "; a value did not fit its column (this is a bug in pulsar2mysql's checks: please report it with the record)",
            _ => "",
        };
        Error::Sink(format!(
            "writing partition {} to {} failed: {text}{hint}",
            batch.partition, self.table
        ))
    }

    async fn try_commit(
        &self,
        batch: &Batch,
        job_id: &str,
        range_key: &str,
    ) -> std::result::Result<CommitStats, WriteError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut stats = CommitStats::default();
        for (sql, rows) in &batch.statements {
            // Values are rendered by `write_literal`, which escapes them.
            let affected = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            match self.cfg.mode {
                WriteMode::IgnoreDuplicates => {
                    let dup = rows.saturating_sub(affected);
                    check_only_duplicate_warnings(&mut tx, dup).await?;
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
        if !batch.dead_letters.is_empty() {
            let sql = dead_letter_sql(job_id, &batch.topic, batch.partition, &batch.dead_letters);
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
                .execute(&mut *tx)
                .await?;
            stats.dead_lettered = batch.dead_letters.len() as u64;
        }
        let (position, publish_time) = batch.last.expect("checked by commit");
        checkpoint::advance(
            &mut tx,
            job_id,
            range_key,
            batch.partition,
            position,
            publish_time,
            batch.consumed,
        )
        .await?;
        tx.commit().await?;
        Ok(stats)
    }
}

enum WriteError {
    Sql(sqlx::Error),
    Refused(String),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        WriteError::Sql(e)
    }
}

/// `INSERT IGNORE` turns every error into a warning; only duplicate-key warnings are what the
/// user asked to ignore. Anything else (a truncation, a bad value) rolls the batch back.
async fn check_only_duplicate_warnings(
    conn: &mut MySqlConnection,
    duplicates: u64,
) -> std::result::Result<(), WriteError> {
    let warnings: i64 = sqlx::query_scalar("SELECT CAST(@@warning_count AS SIGNED)")
        .fetch_one(&mut *conn)
        .await?;
    if warnings as u64 > duplicates {
        let first: Option<(String, i64, String)> = sqlx::query_as("SHOW WARNINGS LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
        let detail = first
            .map(|(_, code, msg)| format!("{code}: {msg}"))
            .unwrap_or_default();
        return Err(WriteError::Refused(format!(
            "the server reported {warnings} warnings for {duplicates} ignored duplicates; a value \
             was changed on the way in ({detail}); the batch was rolled back"
        )));
    }
    Ok(())
}

fn dead_letter_sql(job_id: &str, topic: &str, partition: i32, dead: &[DeadLetter]) -> String {
    let mut sql = String::from(
        "INSERT INTO p2m_dead_letter (job_id, topic, partition_index, message_id, publish_time, payload, reason, detail) VALUES ",
    );
    for (i, d) in dead.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        write_literal(&mut sql, &Value::Text(job_id));
        sql.push(',');
        write_literal(&mut sql, &Value::Text(topic));
        let _ = write!(sql, ",{partition},");
        write_literal(&mut sql, &Value::Text(&d.position.to_string()));
        let _ = write!(sql, ",{},", d.publish_time);
        write_literal(&mut sql, &Value::Bytes(&d.payload));
        sql.push(',');
        write_literal(&mut sql, &Value::Text(d.reason.reason.as_str()));
        sql.push(',');
        let detail: String = d.reason.to_string().chars().take(1000).collect();
        write_literal(&mut sql, &Value::Text(&detail));
        sql.push(')');
    }
    sql.push_str(" ON DUPLICATE KEY UPDATE reason = VALUES(reason), detail = VALUES(detail)");
    sql
}

/// A record that went to the dead-letter table.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub position: Position,
    pub publish_time: i64,
    pub payload: Vec<u8>,
    pub reason: BadRecord,
}

/// Rows of one partition ready to commit, with the position they bring the checkpoint to.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub topic: String,
    pub partition: i32,
    /// Complete statements and the number of rows in each.
    pub statements: Vec<(String, u64)>,
    pub rows: u64,
    pub dead_letters: Vec<DeadLetter>,
    /// Records consumed by this batch (rows + bad records).
    pub consumed: u64,
    /// Last position consumed, with its publish time: the checkpoint after commit.
    pub last: Option<(Position, i64)>,
}

impl Batch {
    fn empty(partition: i32) -> Self {
        Batch {
            partition,
            ..Default::default()
        }
    }

    /// Bytes of SQL held (for memory accounting).
    pub fn sql_bytes(&self) -> usize {
        self.statements.iter().map(|(s, _)| s.len()).sum()
    }
}

/// Accumulates rows of one partition into statements no larger than the server accepts and
/// batches of at most `--batch-rows` rows.
pub struct BatchBuilder {
    head: String,
    tail: String,
    max_statement_bytes: usize,
    max_rows: usize,
    topic: String,
    partition: i32,
    current: String,
    row: String,
    batch: Batch,
}

impl BatchBuilder {
    /// Adds one converted row.
    pub fn push_row(&mut self, values: &[Value<'_>]) {
        self.row.clear();
        self.row.push('(');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.row.push(',');
            }
            write_literal(&mut self.row, v);
        }
        self.row.push(')');
        if !self.current.is_empty()
            && self.current.len() + 1 + self.row.len() + self.tail.len() > self.max_statement_bytes
        {
            self.finish_statement();
        }
        if self.current.is_empty() {
            self.current.reserve(self.max_statement_bytes.min(1 << 20));
            self.current.push_str(&self.head);
        } else {
            self.current.push(',');
        }
        self.current.push_str(&self.row);
        self.batch.rows += 1;
    }

    /// Adds a record that goes to the dead-letter table.
    pub fn push_dead_letter(&mut self, msg: &SourceMessage, reason: BadRecord) {
        self.batch.dead_letters.push(DeadLetter {
            position: msg.position,
            publish_time: msg.publish_time,
            payload: msg.payload.clone(),
            reason,
        });
    }

    /// Records that the message at `position` has been consumed (as a row or a bad record).
    pub fn consumed(&mut self, position: Position, publish_time: i64) {
        self.batch.consumed += 1;
        self.batch.last = Some((position, publish_time));
    }

    /// Whether the batch reached its row limit (rows plus dead letters).
    pub fn is_full(&self) -> bool {
        self.batch.rows as usize + self.batch.dead_letters.len() >= self.max_rows
    }

    /// Whether anything was consumed since the last [`BatchBuilder::take`].
    pub fn is_empty(&self) -> bool {
        self.batch.last.is_none()
    }

    fn finish_statement(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let rows_before: u64 = self.batch.statements.iter().map(|(_, n)| n).sum();
        self.current.push_str(&self.tail);
        let sql = std::mem::take(&mut self.current);
        self.batch
            .statements
            .push((sql, self.batch.rows - rows_before));
    }

    /// The batch so far; the builder starts a new one.
    pub fn take(&mut self) -> Batch {
        self.finish_statement();
        let mut batch = std::mem::replace(&mut self.batch, Batch::empty(self.partition));
        batch.topic = self.topic.clone();
        batch
    }
}

/// Appends `v` as a SQL literal. Text is quoted with backslash escapes (the session's sql_mode
/// has no NO_BACKSLASH_ESCAPES), bytes are written as hex, numbers as digits.
pub fn write_literal(out: &mut String, v: &Value<'_>) {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Decimal(d) => out.push_str(d),
        Value::Float(f) => {
            let _ = write!(out, "{f:e}");
        }
        Value::Text(s) => {
            out.push('\'');
            let bytes = s.as_bytes();
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                let esc = match b {
                    b'\'' => "\\'",
                    b'\\' => "\\\\",
                    0 => "\\0",
                    b'\n' => "\\n",
                    b'\r' => "\\r",
                    0x1a => "\\Z",
                    _ => continue,
                };
                out.push_str(&s[start..i]);
                out.push_str(esc);
                start = i + 1;
            }
            out.push_str(&s[start..]);
            out.push('\'');
        }
        Value::Bytes(b) => {
            out.push_str("X'");
            for byte in b.iter() {
                let _ = write!(out, "{byte:02X}");
            }
            out.push('\'');
        }
        Value::Date(d) => {
            let _ = write!(out, "'{}'", d.format("%Y-%m-%d"));
        }
        Value::DateTime(dt) => {
            let _ = write!(out, "'{}'", dt.format("%Y-%m-%d %H:%M:%S%.6f"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value<'_>) -> String {
        let mut s = String::new();
        write_literal(&mut s, &v);
        s
    }

    #[test]
    fn literals_escape_everything_that_matters() {
        assert_eq!(lit(Value::Text("it's")), r"'it\'s'");
        assert_eq!(lit(Value::Text("a\\b")), r"'a\\b'");
        assert_eq!(lit(Value::Text("n\0\n\r\u{1a}")), r"'n\0\n\r\Z'");
        assert_eq!(lit(Value::Text("é")), "'é'");
        assert_eq!(lit(Value::Bytes(&[0, 255])), "X'00FF'");
        assert_eq!(lit(Value::Int(-5)), "-5");
        assert_eq!(lit(Value::Null), "NULL");
        assert_eq!(lit(Value::Float(1.5)), "1.5e0");
    }
}
