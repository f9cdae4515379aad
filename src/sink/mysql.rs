//! The only code that talks to MySQL for writing: connection set-up, batches rendered as
//! multi-row INSERT statements or as LOAD DATA input ([`super::load_data`]), and the
//! transaction that commits rows, dead letters and the checkpoint together, retried on
//! transient failures without ever applying a batch twice.

use std::fmt::Write as _;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Connection, Executor, MySql, MySqlConnection, MySqlPool};

use super::checkpoint::{self, Fence, Verdict};
use super::load_data::{self, LoadDataWriter, LoadError, Loaded, Started, TsvData, TsvWriter};
use super::schema::{quote_ident, read_columns, TableName};
use crate::config::{MysqlTls, SinkConfig, SslMode, WriteMode, WriteStrategy};
use crate::error::{is_retriable_sql, is_tls_sql, scrub, Backoff, Error, Result};
use crate::records::{BadRecord, Column, Value};
use crate::source::{Position, SourceMessage};

/// Session settings every connection gets: strict mode so the server refuses instead of
/// truncating, explicit 0 kept in AUTO_INCREMENT columns, UTC for TIMESTAMP values, and
/// backslash escapes on (the literal writer relies on them).
const SESSION_INIT: &str = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,\
NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', time_zone = '+00:00'";

/// How many full-size statements an INSERT batch holds at most (with `--batch-bytes` 4 MiB:
/// 16 MiB of SQL per transaction).
const INSERT_BATCH_STATEMENTS: usize = 4;

/// Hint for a duplicate key under `--mode insert`, whichever path found it.
const DUPLICATE_HINT: &str = "the table already holds a row with this key: re-run with --mode \
upsert or --mode ignore-duplicates, or clear the table before --reprocess";

/// A connected sink for one table.
pub struct MysqlSink {
    pool: MySqlPool,
    table: TableName,
    columns: Vec<Column>,
    max_statement_bytes: usize,
    /// The largest statement the server accepts (`max_allowed_packet` less framing).
    max_packet_statement: usize,
    /// Resolved: never `Auto`.
    strategy: WriteStrategy,
    /// The LOAD DATA pool (strategy `LoadData`, and not a read-only sink).
    load_data: Option<LoadDataWriter>,
    /// Whether the control connection got TLS (decides `preferred` for the LOAD DATA pool).
    tls_in_use: bool,
    /// The server's `innodb_autoinc_lock_mode` (None if it has none): whether parallel LOAD
    /// DATA streams take turns on the table's AUTO-INC lock.
    autoinc_lock_mode: Option<i64>,
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

/// Connects the control pool (sqlx) and takes its first connection, retrying a server that
/// is not up yet within the retry budget; a certificate the run will never trust fails at once.
async fn open_control(cfg: &SinkConfig) -> Result<(MySqlPool, PoolConnection<MySql>)> {
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
    options = with_tls(options, &cfg.tls);
    options = options
        .charset("utf8mb4")
        .pipes_as_concat(false)
        .timezone(Some("+00:00".to_string()))
        // sqlx logs every statement, and slow ones whole at WARN: batches are megabytes of
        // row values. Logs never carry rows; slowness shows in the batch metrics.
        .disable_statement_logging();
    let pool = MySqlPoolOptions::new()
        .max_connections(cfg.max_writers() as u32 + 2)
        .acquire_timeout(super::CONNECT_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(SESSION_INIT).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options.clone());
    let mut backoff = Backoff::new(cfg.retry_budget);
    let conn = loop {
        match pool.acquire().await {
            Ok(c) => break c,
            Err(e) if is_retriable_sql(&e) => {
                // The pool retries inside its own timeout and reports only that; one direct
                // attempt tells a certificate the run will never trust from a server that
                // is not up yet.
                let direct =
                    tokio::time::timeout(cfg.io_timeout, MySqlConnection::connect_with(&options))
                        .await;
                match direct {
                    Ok(Err(e)) if is_tls_sql(&e) => return Err(tls_refused(cfg, &e.to_string())),
                    Ok(Ok(conn)) => drop(conn),
                    _ => {}
                }
                tracing::warn!(error = %scrub(&e.to_string(), secret.as_deref()), "cannot connect to MySQL yet; retrying");
                if !backoff.wait().await {
                    return Err(Error::Sink(format!(
                        "cannot connect to {}: {}",
                        cfg.redacted_url(),
                        scrub(&e.to_string(), secret.as_deref())
                    )));
                }
            }
            Err(e) if is_tls_sql(&e) => {
                return Err(tls_refused(cfg, &e.to_string()));
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
    Ok((pool, conn))
}

/// Applies the project's migrations (checkpoints, dead letters, window ends) and nothing else:
/// no sink table needed, so a database can be prepared before the first job is configured.
pub async fn migrate(cfg: &SinkConfig) -> Result<()> {
    let (pool, mut conn) = open_control(cfg).await?;
    let limit = cfg.io_timeout * 4;
    let done = tokio::time::timeout(limit, checkpoint::migrate(&mut conn)).await;
    drop(conn);
    pool.close().await;
    match done {
        Ok(result) => result,
        Err(_) => Err(Error::Sink(format!(
            "{} did not answer the migrations within {}s",
            cfg.redacted_url(),
            limit.as_secs()
        ))),
    }
}

impl MysqlSink {
    /// Connects, applies the project's migrations (unless `read_only`) and reads the table's
    /// columns and the server's `max_allowed_packet`.
    pub async fn connect(cfg: &SinkConfig, read_only: bool) -> Result<Self> {
        let table = TableName::parse(&cfg.table)?;
        let (pool, mut conn) = open_control(cfg).await?;
        // A handful of single round trips; a server that stops answering must not hold the run.
        let limit = cfg.io_timeout * 4;
        let setup = async {
            if !read_only {
                checkpoint::migrate(&mut conn).await?;
            }
            let columns = read_columns(&mut conn, &table).await?;
            let packet: i64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS SIGNED)")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| Error::Sink(format!("cannot read max_allowed_packet: {e}")))?;
            let strategy = resolve_strategy(cfg, &mut conn).await?;
            // Whether this connection got TLS: `preferred` gives the LOAD DATA connection the
            // same (mysql_async has no "TLS if offered" of its own).
            let cipher: Option<(String, String)> =
                sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| {
                        Error::Sink(format!("cannot read the session's TLS state: {e}"))
                    })?;
            let tls_in_use = cipher.is_some_and(|(_, c)| !c.is_empty());
            // A server without InnoDB has no such variable: no lock to take turns on.
            let autoinc_lock_mode: Option<i64> =
                sqlx::query_scalar("SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED)")
                    .fetch_one(&mut *conn)
                    .await
                    .ok();
            Ok::<_, Error>((columns, packet, strategy, tls_in_use, autoinc_lock_mode))
        };
        let (columns, packet, strategy, tls_in_use, autoinc_lock_mode) =
            match tokio::time::timeout(limit, setup).await {
                Ok(done) => done?,
                Err(_) => {
                    drop(conn.detach());
                    return Err(Error::Sink(format!(
                        "{} did not answer the set-up queries (migrations, the table's columns) \
                     within {}s (a network partition, or a server that stopped responding)",
                        cfg.redacted_url(),
                        limit.as_secs()
                    )));
                }
            };
        // Leave room for the statement's head and tail and the protocol's own framing.
        let max_packet_statement = (packet as usize).saturating_sub(16 * 1024).max(16 * 1024);
        let max_statement_bytes = cfg
            .batch_bytes
            .min((packet as usize).saturating_sub(16 * 1024))
            .max(16 * 1024);
        let load_data = if strategy == WriteStrategy::LoadData && !read_only {
            let writer = LoadDataWriter::new(cfg, SESSION_INIT, tls_in_use)?;
            writer.warm_up();
            Some(writer)
        } else {
            None
        };
        Ok(MysqlSink {
            pool,
            table,
            columns,
            max_statement_bytes,
            max_packet_statement,
            strategy,
            load_data,
            tls_in_use,
            autoinc_lock_mode,
            cfg: cfg.clone(),
        })
    }

    /// How many write streams a run over `partitions` partitions uses (see
    /// [`SinkConfig::write_streams`]).
    pub fn write_streams(&self, partitions: usize) -> usize {
        self.cfg
            .write_streams(self.strategy, self.autoinc_lock_mode, partitions)
    }

    /// Opens one LOAD DATA connection, when this sink's strategy uses them, so that `check`
    /// fails where a run would (its TLS, its user, its server).
    pub async fn probe_load_data(&self) -> Result<()> {
        if self.strategy != WriteStrategy::LoadData {
            return Ok(());
        }
        let writer = LoadDataWriter::new(&self.cfg, SESSION_INIT, self.tls_in_use)?;
        let probed = writer.probe().await;
        writer.close().await;
        probed.map_err(|e| {
            let e = WriteError::from(e);
            if e.is_tls() {
                tls_refused(&self.cfg, &e.to_string())
            } else {
                Error::Sink(format!(
                    "the LOAD DATA connection to {} failed: {}",
                    self.cfg.redacted_url(),
                    scrub(&e.to_string(), self.cfg.password.as_deref())
                ))
            }
        })
    }

    /// How this sink writes rows: `Insert` or `LoadData`, never `Auto`.
    pub fn write_strategy(&self) -> WriteStrategy {
        self.strategy
    }

    /// Closes the connections of the LOAD DATA pool (the sqlx pool closes on drop).
    pub async fn close(&self) {
        if let Some(ld) = &self.load_data {
            ld.close().await;
        }
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

    /// A builder for batches of one partition, writing the given (mapped) columns, while
    /// `concurrent` partitions are written at once; `after` is the partition's checkpoint when
    /// the run starts.
    pub fn batch_builder(
        &self,
        mapped: &[Column],
        topic: &str,
        partition: i32,
        streams: usize,
        readers: usize,
        after: Option<Position>,
    ) -> BatchBuilder {
        let format = match self.strategy {
            WriteStrategy::LoadData => Format::Tsv(TsvRows {
                statement: load_data::load_statement(&self.table, mapped, self.cfg.mode).into(),
                max_bytes: self.cfg.batch_bytes_for(readers),
                pending: Vec::new(),
                open: None,
                opened: None,
            }),
            _ => self.insert_format(mapped),
        };
        BatchBuilder {
            format,
            max_rows: self.cfg.batch_rows_for(streams),
            topic: topic.to_string(),
            partition,
            batch: Batch::empty(partition),
            after,
            dead_letter_bytes: 0,
            first_share: None,
        }
    }

    fn insert_format(&self, mapped: &[Column]) -> Format {
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
        Format::Insert(InsertRows {
            head,
            tail,
            max_statement_bytes: self.max_statement_bytes,
            max_packet_statement: self.max_packet_statement,
            current: String::new(),
            rows_in_current: 0,
            finished_bytes: 0,
            row: String::new(),
        })
    }

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
        let Some(last) = batch.last else {
            return Ok(CommitStats::default());
        };
        let fence = Fence::new(
            job_id,
            range_key,
            batch.partition,
            batch.after,
            Some(last.0),
        );
        let mut early = early;
        let mut backoff: Option<Backoff> = None;
        let mut first_failure: Option<(Instant, String)> = None;
        let mut retries = 0;
        // The server thread of an attempt dropped because it stopped answering: it may still
        // hold the batch's locks (or be committing it), so the next attempt ends it first.
        let mut abandoned: Option<u32> = None;
        loop {
            let attempt_began = Instant::now();
            let attempt = match abandoned {
                Some(thread) => self.kill(thread).await,
                None => Ok(()),
            };
            let attempt = match attempt {
                Ok(()) => {
                    abandoned = None;
                    self.try_commit(batch, &fence, early.take()).await
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok(Attempt::Committed(mut stats)) => {
                    stats.retries = retries;
                    return Ok(stats);
                }
                Ok(Attempt::Landed) => {
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
                Err(e) if e.is_retriable() => {
                    if let WriteError::Stalled { thread, .. } = e {
                        abandoned = abandoned.or(thread);
                    }
                    retries += 1;
                    let cause = scrub(&e.to_string(), self.cfg.password.as_deref());
                    let (since, first) =
                        first_failure.get_or_insert_with(|| (attempt_began, cause.clone()));
                    tracing::warn!(partition = batch.partition, retries, %cause, "batch failed with a transient error; retrying");
                    let budget = self.cfg.retry_budget;
                    if !backoff
                        .get_or_insert_with(|| Backoff::new(budget))
                        .wait()
                        .await
                    {
                        let first = if *first == cause {
                            String::new()
                        } else {
                            format!(" (the first failure: {first})")
                        };
                        return Err(Error::Sink(format!(
                            "gave up writing partition {} to {} after {retries} failed attempts \
                             over {:.1}s (retry budget {}s): {cause}{first}",
                            batch.partition,
                            self.cfg.redacted_url(),
                            since.elapsed().as_secs_f64(),
                            budget.as_secs()
                        )));
                    }
                }
                Err(e) if e.is_tls() => return Err(tls_refused(&self.cfg, &e.to_string())),
                Err(WriteError::Refused(msg)) => return Err(Error::Sink(msg)),
                Err(WriteError::Moved(found)) => {
                    return Err(Error::Fenced(fence.moved_message(batch.partition, found)))
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
    /// finishes committing) before the next attempt reads the fence.
    async fn kill(&self, thread: u32) -> std::result::Result<(), WriteError> {
        let mut conn = self.connection().await?;
        let sql = format!("KILL CONNECTION {thread}");
        let result = bounded(
            self.cfg.io_timeout,
            "KILL",
            None,
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn),
        )
        .await;
        match result {
            // 1094: unknown thread, already gone.
            Err(e) if e.server_code() == Some(1094) => Ok(()),
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
            "writing partition {} to {} failed: {text}{hint}",
            batch.partition, self.table
        ))
    }

    /// Begins loading a LOAD DATA batch while it is still being filled; the result goes to
    /// [`MysqlSink::commit`] once the batch is complete.
    pub async fn start_load(&self, open: &OpenBatch, job_id: &str, range_key: &str) -> EarlyLoad {
        let writer = self
            .load_data
            .as_ref()
            .expect("open batches come from a LOAD DATA sink");
        let fence = Fence::new(job_id, range_key, open.partition, open.after, None);
        EarlyLoad(
            writer
                .start(&open.statement, &open.data, &fence)
                .await
                .map_err(WriteError::from),
        )
    }

    async fn try_commit(
        &self,
        batch: &Batch,
        fence: &Fence,
        early: Option<EarlyLoad>,
    ) -> std::result::Result<Attempt, WriteError> {
        let mut then = dead_letter_statements(
            fence.job_id(),
            &batch.topic,
            batch.partition,
            &batch.dead_letters,
            self.max_statement_bytes,
        );
        let (position, publish_time) = batch.last.expect("checked by commit");
        then.push(checkpoint::advance_sql(
            fence.job_id(),
            fence.range_key(),
            batch.partition,
            position,
            publish_time,
            batch.consumed,
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
                    None => writer
                        .start(statement, data, fence)
                        .await
                        .map_err(Into::into),
                }
            }
        };
        let started = match started {
            Ok(started) => started,
            // The early load found the checkpoint moved (it could not know the batch's end);
            // judged again now that the end is known.
            Err(WriteError::Moved(found)) => match fence.judge(found) {
                Verdict::Landed => return Ok(Attempt::Landed),
                _ => return Err(WriteError::Moved(found)),
            },
            Err(WriteError::Landed) => return Ok(Attempt::Landed),
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
        let found: Option<(i64, i64, i32)> = bounded(
            limit,
            "the checkpoint read",
            thread,
            sqlx::query_as(sqlx::AssertSqlSafe(fence.lock_sql())).fetch_optional(&mut *tx),
        )
        .await?;
        match fence.judge(found.map(|(l, e, b)| Position::new(l, e, b))) {
            Verdict::Write => {}
            Verdict::Landed => {
                bounded(limit, "ROLLBACK", thread, tx.rollback()).await?;
                return Ok(Attempt::Landed);
            }
            Verdict::Moved(found) => return Err(WriteError::Moved(found)),
        }
        let mut stats = CommitStats::default();
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
        bounded(limit, "COMMIT", thread, tx.commit()).await?;
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
            let detail = l.first_warning.as_deref().unwrap_or("no warning given");
            if l.inserted > rows {
                Err(format!(
                    "the server stored {} rows for a batch of {rows} ({detail}); the batch \
                     was rolled back",
                    l.inserted
                ))
            } else if duplicates > 0 && !ignore {
                Err(format!(
                    "{duplicates} of {rows} rows were not stored ({detail}); {DUPLICATE_HINT}; \
                     the batch was rolled back"
                ))
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
            ..Default::default()
        })
    }
}

/// A LOAD DATA batch still being filled, which the writer may start loading already.
pub struct OpenBatch {
    statement: Arc<str>,
    data: TsvData,
    partition: i32,
    /// The checkpoint the batch follows (see [`Batch::after`]).
    after: Option<Position>,
}

/// A load begun early by [`MysqlSink::start_load`].
pub struct EarlyLoad(std::result::Result<Started, WriteError>);

/// How an attempt at a batch ended, when it did not fail.
enum Attempt {
    Committed(CommitStats),
    /// An earlier attempt had committed the batch; this one wrote nothing.
    Landed,
}

/// Why one attempt at a batch failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Driver(#[from] mysql_async::Error),
    /// The statements ran but their result was refused; the batch was rolled back.
    #[error("{0}")]
    Refused(String),
    /// The server did not answer in time; the connection (server thread `thread`, when known)
    /// was dropped.
    #[error(
        "MySQL did not answer {what} within {}s (a network partition, or a server that stopped \
         responding); the connection was dropped", after.as_secs_f64()
    )]
    Stalled {
        what: &'static str,
        after: Duration,
        thread: Option<u32>,
    },
    /// The fence found the checkpoint already past the batch (an earlier attempt landed).
    #[error("the batch had already been committed")]
    Landed,
    /// The fence found the checkpoint somewhere this writer did not put it.
    #[error("the checkpoint moved under this run")]
    Moved(Option<Position>),
}

impl WriteError {
    /// A TLS failure (a certificate not trusted, a name that does not match): configuration,
    /// not a transient fault.
    fn is_tls(&self) -> bool {
        match self {
            WriteError::Sql(e) => is_tls_sql(e),
            WriteError::Driver(e) => load_data::is_tls(e),
            _ => false,
        }
    }

    fn is_retriable(&self) -> bool {
        match self {
            WriteError::Sql(e) => is_retriable_sql(e),
            WriteError::Driver(e) => load_data::is_retriable(e),
            WriteError::Stalled { .. } => true,
            WriteError::Refused(_) | WriteError::Landed | WriteError::Moved(_) => false,
        }
    }

    fn server_code(&self) -> Option<u16> {
        match self {
            WriteError::Sql(e) => e
                .as_database_error()
                .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
                .map(|d| d.number()),
            WriteError::Driver(e) => load_data::server_code(e),
            _ => None,
        }
    }
}

impl From<LoadError> for WriteError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Driver(e) => WriteError::Driver(e),
            LoadError::Refused(why) => WriteError::Refused(why),
            LoadError::Stalled {
                what,
                after,
                thread,
            } => WriteError::Stalled {
                what,
                after,
                thread: Some(thread),
            },
            LoadError::Fence(Verdict::Landed) => WriteError::Landed,
            LoadError::Fence(Verdict::Moved(found)) => WriteError::Moved(found),
            LoadError::Fence(Verdict::Write) => {
                WriteError::Refused("internal error: a fence that lets the batch pass".into())
            }
        }
    }
}

/// sqlx's connect options with the run's TLS settings (they win over the URL's).
fn with_tls(options: MySqlConnectOptions, tls: &MysqlTls) -> MySqlConnectOptions {
    use sqlx::mysql::MySqlSslMode as M;
    let mut options = options.ssl_mode(match tls.mode {
        SslMode::Disabled => M::Disabled,
        SslMode::Preferred => M::Preferred,
        SslMode::Required => M::Required,
        SslMode::VerifyCa => M::VerifyCa,
        SslMode::VerifyIdentity => M::VerifyIdentity,
    });
    if let Some(ca) = &tls.ca {
        options = options.ssl_ca(ca);
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    options
}

/// A TLS failure as the configuration error it is.
fn tls_refused(cfg: &SinkConfig, cause: &str) -> Error {
    Error::Config(format!(
        "TLS to MySQL at {} failed: {}; check --mysql-ssl-mode ({:?}) and --mysql-ssl-ca",
        cfg.redacted_url(),
        scrub(cause, cfg.password.as_deref()),
        cfg.tls.mode
    ))
}

/// One round trip that must answer within `limit`; past it the attempt counts as cut.
async fn bounded<T, E: Into<WriteError>>(
    limit: Duration,
    what: &'static str,
    thread: Option<u32>,
    op: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, WriteError> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(WriteError::Stalled {
            what,
            after: limit,
            thread,
        }),
    }
}

/// Picks the write strategy: `auto` takes LOAD DATA when the mode allows it and the server
/// has `local_infile` on; an explicit `load-data` on a server without it is refused here,
/// before anything is read.
async fn resolve_strategy(cfg: &SinkConfig, conn: &mut MySqlConnection) -> Result<WriteStrategy> {
    if cfg.strategy == WriteStrategy::Insert || cfg.mode == WriteMode::Upsert {
        return Ok(WriteStrategy::Insert);
    }
    let local_infile: i64 = sqlx::query_scalar("SELECT CAST(@@local_infile AS SIGNED)")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::Sink(format!("cannot read @@local_infile: {e}")))?;
    match (local_infile, cfg.strategy) {
        (1, _) => Ok(WriteStrategy::LoadData),
        (_, WriteStrategy::LoadData) => Err(Error::Config(
            "--write-strategy load-data: the server has local_infile=OFF; set local_infile=ON \
             on the server or use --write-strategy insert (or auto)"
                .into(),
        )),
        _ => {
            tracing::info!(
                "the server has local_infile=OFF: writing with INSERT statements (slower; see \
                 --write-strategy)"
            );
            Ok(WriteStrategy::Insert)
        }
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

/// The dead letters of a batch as INSERT statements of at most `max_bytes` each (the server
/// refuses a statement over `max_allowed_packet`, and a refused dead letter would stop every
/// re-run). A payload too large for a statement of its own is stored cut to fit, and its
/// detail says so: the message id names the whole record in Pulsar.
fn dead_letter_statements(
    job_id: &str,
    topic: &str,
    partition: i32,
    dead: &[DeadLetter],
    max_bytes: usize,
) -> Vec<String> {
    const HEAD: &str = "INSERT INTO p2m_dead_letter (job_id, topic, partition_index, message_id, \
                        publish_time, payload, reason, detail) VALUES ";
    const TAIL: &str = " ON DUPLICATE KEY UPDATE reason = VALUES(reason), detail = VALUES(detail)";
    let mut statements = Vec::new();
    let mut sql = String::new();
    let mut row = String::new();
    for d in dead {
        row.clear();
        row.push('(');
        write_literal(&mut row, &Value::Text(job_id));
        row.push(',');
        write_literal(&mut row, &Value::Text(topic));
        let _ = write!(row, ",{partition},");
        write_literal(&mut row, &Value::Text(&d.position.to_string()));
        let _ = write!(row, ",{},", d.publish_time);
        let fixed = row.len() + 2 * 1024 + 64; // the reason and detail below, escaped, and more
                                               // Hex doubles the bytes: what fits beside the statement's head, tail and other fields.
        let room = max_bytes.saturating_sub(HEAD.len() + TAIL.len() + fixed) / 2;
        let (payload, cut) = if d.payload.len() > room {
            (&d.payload[..room], true)
        } else {
            (&d.payload[..], false)
        };
        write_literal(&mut row, &Value::Bytes(payload));
        row.push(',');
        write_literal(&mut row, &Value::Text(d.reason.reason.as_str()));
        row.push(',');
        let mut detail = d.reason.to_string();
        if cut {
            detail = format!(
                "payload cut to its first {room} of {} bytes to fit max_allowed_packet; {detail}",
                d.payload.len()
            );
        }
        let detail: String = detail.chars().take(1000).collect();
        write_literal(&mut row, &Value::Text(&detail));
        row.push(')');
        if !sql.is_empty() && sql.len() + 1 + row.len() + TAIL.len() > max_bytes {
            sql.push_str(TAIL);
            statements.push(std::mem::take(&mut sql));
        }
        if sql.is_empty() {
            sql.push_str(HEAD);
        } else {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    if !sql.is_empty() {
        sql.push_str(TAIL);
        statements.push(sql);
    }
    statements
}

/// A record that went to the dead-letter table.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub position: Position,
    pub publish_time: i64,
    pub payload: Vec<u8>,
    pub reason: BadRecord,
}

/// The rows of a batch, in the form the sink's write strategy sends.
#[derive(Debug, Clone)]
pub enum Body {
    /// Complete multi-row INSERT statements and the number of rows in each.
    Statements(Vec<(String, u64)>),
    /// Tab-separated rows (complete) and the LOAD DATA statement that reads them.
    Tsv { statement: Arc<str>, data: TsvData },
}

impl Default for Body {
    fn default() -> Self {
        Body::Statements(Vec::new())
    }
}

/// Rows of one partition ready to commit, with the position they bring the checkpoint to.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub topic: String,
    pub partition: i32,
    pub body: Body,
    pub rows: u64,
    pub dead_letters: Vec<DeadLetter>,
    /// Records consumed by this batch (rows + bad records).
    pub consumed: u64,
    /// Last position consumed, with its publish time: the checkpoint after commit.
    pub last: Option<(Position, i64)>,
    /// The checkpoint before this batch (None: the partition has none yet). An attempt writes
    /// only if the checkpoint is still there (see [`Fence`]).
    pub after: Option<Position>,
}

impl Batch {
    fn empty(partition: i32) -> Self {
        Batch {
            partition,
            ..Default::default()
        }
    }
}

/// How a builder renders rows, with the state of the batch being filled.
enum Format {
    Insert(InsertRows),
    Tsv(TsvRows),
}

/// Rows as `head (row),(row)... tail` statements of at most `max_statement_bytes`.
struct InsertRows {
    head: String,
    tail: String,
    max_statement_bytes: usize,
    /// The largest statement the server accepts: a row over it alone can never be sent (one
    /// over `max_statement_bytes` only, goes alone in its statement).
    max_packet_statement: usize,
    /// The statement being built, and the rows in it.
    current: String,
    rows_in_current: u64,
    /// Bytes of the statements finished in this batch.
    finished_bytes: usize,
    /// The row being rendered.
    row: String,
}

impl InsertRows {
    /// Adds a row; `Err(bytes)` when the row alone does not fit a statement (the server would
    /// refuse it on every re-run), and then nothing is added.
    fn push(&mut self, values: &[Value<'_>], body: &mut Body) -> std::result::Result<(), usize> {
        self.row.clear();
        self.row.push('(');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.row.push(',');
            }
            write_literal(&mut self.row, v);
        }
        self.row.push(')');
        if self.head.len() + self.row.len() + self.tail.len() > self.max_packet_statement {
            return Err(self.row.len());
        }
        if !self.current.is_empty()
            && self.current.len() + 1 + self.row.len() + self.tail.len() > self.max_statement_bytes
        {
            self.finish_statement(body);
        }
        if self.current.is_empty() {
            self.current.reserve(self.max_statement_bytes.min(1 << 20));
            self.current.push_str(&self.head);
        } else {
            self.current.push(',');
        }
        self.current.push_str(&self.row);
        self.rows_in_current += 1;
        Ok(())
    }

    /// Closes the statement being built, if any, into `body`.
    /// Bytes of the batch's statements, finished and current.
    fn bytes(&self) -> usize {
        self.finished_bytes + self.current.len()
    }

    fn finish_statement(&mut self, body: &mut Body) {
        if self.current.is_empty() {
            return;
        }
        let Body::Statements(statements) = body else {
            unreachable!("INSERT batches have a statement body")
        };
        let mut statement = std::mem::take(&mut self.current);
        statement.push_str(&self.tail);
        self.finished_bytes += statement.len();
        statements.push((statement, std::mem::take(&mut self.rows_in_current)));
    }
}

/// Rows as tab-separated lines, published in chunks to a batch the writer may already be
/// streaming; a batch ends at `max_bytes`.
struct TsvRows {
    statement: Arc<str>,
    max_bytes: usize,
    /// Lines not yet published as a chunk.
    pending: Vec<u8>,
    /// The open batch's two sides (None until its first row).
    open: Option<(TsvWriter, TsvData)>,
    /// A batch opened since the last [`BatchBuilder::take_opened`].
    opened: Option<OpenBatch>,
}

impl TsvRows {
    fn push(&mut self, values: &[Value<'_>]) {
        let (writer, _) = self.open.get_or_insert_with(|| {
            let (writer, data) = load_data::tsv_batch();
            self.opened = Some(OpenBatch {
                statement: self.statement.clone(),
                data: data.clone(),
                partition: -1, // set by BatchBuilder::take_opened
                after: None,
            });
            (writer, data)
        });
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.pending.push(b'\t');
            }
            load_data::write_tsv_field(&mut self.pending, v);
        }
        self.pending.push(b'\n');
        let chunk = if writer.bytes() == 0 {
            load_data::FIRST_CHUNK
        } else {
            load_data::CHUNK
        };
        if self.pending.len() >= chunk {
            writer.publish(take_chunk(&mut self.pending));
        }
    }

    fn bytes(&self) -> usize {
        self.pending.len() + self.open.as_ref().map_or(0, |(w, _)| w.bytes())
    }

    /// Closes the open batch into `body`. A batch of bad records only has no rows to load:
    /// its body stays empty.
    fn close(&mut self, body: &mut Body) {
        if let Some((mut writer, data)) = self.open.take() {
            writer.publish(take_chunk(&mut self.pending));
            writer.close();
            *body = Body::Tsv {
                statement: self.statement.clone(),
                data,
            };
        }
    }
}

/// The lines gathered so far, leaving an empty buffer the size of a chunk.
fn take_chunk(pending: &mut Vec<u8>) -> Vec<u8> {
    std::mem::replace(pending, Vec::with_capacity(load_data::CHUNK + 1024))
}

/// Accumulates rows of one partition into batches of at most `--batch-rows` rows, rendered
/// as INSERT statements no larger than the server accepts or as LOAD DATA input.
pub struct BatchBuilder {
    format: Format,
    max_rows: usize,
    topic: String,
    partition: i32,
    batch: Batch,
    /// Where the checkpoint will stand when the batch being filled is written.
    after: Option<Position>,
    /// Payload bytes of the batch's dead letters.
    dead_letter_bytes: usize,
    /// The first batch ends at this share (numerator, denominator) of the limits: see
    /// [`BatchBuilder::stagger`].
    first_share: Option<(usize, usize)>,
}

impl BatchBuilder {
    /// Ends this builder's first batch at `(k + 1) / n` of the limits. Partitions read side by
    /// side at the same pace would otherwise fill their batches at the same moment, and their
    /// one writer would wait, then be flooded; staggered, their batches reach it one by one.
    pub fn stagger(&mut self, k: usize, n: usize) {
        if n > 1 {
            self.first_share = Some((k % n + 1, n));
        }
    }

    /// Adds one converted row.
    ///
    /// A row that alone exceeds the largest statement the server accepts is refused as a
    /// `too_large` bad record: written, it would fail the batch on every re-run.
    pub fn push_row(&mut self, values: &[Value<'_>]) -> std::result::Result<(), BadRecord> {
        match &mut self.format {
            Format::Insert(rows) => rows
                .push(values, &mut self.batch.body)
                .map_err(|bytes| BadRecord::row_too_large(bytes, rows.max_packet_statement))?,
            Format::Tsv(rows) => rows.push(values),
        }
        self.batch.rows += 1;
        Ok(())
    }

    /// Adds a record that goes to the dead-letter table.
    pub fn push_dead_letter(&mut self, msg: &SourceMessage, reason: BadRecord) {
        self.dead_letter_bytes += msg.payload.len();
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

    /// Whether the batch reached its row limit (rows plus dead letters) or its byte limit:
    /// rows as rendered plus dead letters' payloads, at most `--batch-bytes` for LOAD DATA and
    /// INSERT_BATCH_STATEMENTS statements' worth for INSERT. Memory follows the bytes held,
    /// not the count: a few large records end a batch as surely as many small ones.
    pub fn is_full(&self) -> bool {
        let (held, max) = match &self.format {
            Format::Tsv(rows) => (rows.bytes(), rows.max_bytes),
            Format::Insert(rows) => (
                rows.bytes(),
                rows.max_statement_bytes * INSERT_BATCH_STATEMENTS,
            ),
        };
        let (max_rows, max) = match self.first_share {
            Some((k, n)) => ((self.max_rows * k / n).max(1), (max * k / n).max(1)),
            None => (self.max_rows, max),
        };
        self.batch.rows as usize + self.batch.dead_letters.len() >= max_rows
            || held + self.dead_letter_bytes >= max
    }

    /// A LOAD DATA batch that got its first row since the last call: the writer can start
    /// loading it while it fills.
    pub fn take_opened(&mut self) -> Option<OpenBatch> {
        let mut opened = match &mut self.format {
            Format::Tsv(rows) => rows.opened.take(),
            Format::Insert(_) => None,
        }?;
        opened.partition = self.partition;
        opened.after = self.after;
        Some(opened)
    }

    /// For a LOAD DATA batch open on the server: when its statement last got rows to read. The
    /// statement holds the table's AUTO-INC lock and the server's `net_read_timeout` runs
    /// while it waits, so the reader closes a batch it cannot feed (see the pipeline).
    pub fn fed_at(&self) -> Option<tokio::time::Instant> {
        match &self.format {
            Format::Tsv(rows) => rows.open.as_ref().map(|(writer, _)| writer.fed_at()),
            Format::Insert(_) => None,
        }
    }

    /// Whether anything was consumed since the last [`BatchBuilder::take`].
    pub fn is_empty(&self) -> bool {
        self.batch.last.is_none()
    }

    /// The batch so far; the builder starts a new one.
    pub fn take(&mut self) -> Batch {
        match &mut self.format {
            Format::Insert(rows) => {
                rows.finish_statement(&mut self.batch.body);
                rows.finished_bytes = 0;
            }
            Format::Tsv(rows) => rows.close(&mut self.batch.body),
        }
        let mut batch = std::mem::replace(&mut self.batch, Batch::empty(self.partition));
        self.dead_letter_bytes = 0;
        self.first_share = None;
        batch.topic = self.topic.clone();
        batch.after = self.after;
        if let Some((last, _)) = batch.last {
            self.after = Some(last);
        }
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

    /// A builder for INSERT batches of at most `max_rows` rows and statements of
    /// `statement_bytes`, without a server.
    fn insert_builder(max_rows: usize, statement_bytes: usize) -> BatchBuilder {
        BatchBuilder {
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
            topic: "t".into(),
            partition: 0,
            batch: Batch::empty(0),
            after: None,
            dead_letter_bytes: 0,
            first_share: None,
        }
    }

    #[test]
    fn a_staggered_builder_ends_its_first_batch_early_then_full_size() {
        let mut b = insert_builder(100, 1 << 20);
        b.stagger(1, 4); // the second of four: its first batch at 2/4 of the limits
        let pos = |e| Position::new(1, e, -1);
        let mut sizes = Vec::new();
        for e in 0..300 {
            b.push_row(&[Value::Int(e)]).unwrap();
            b.consumed(pos(e), 0);
            if b.is_full() {
                sizes.push(b.take().rows);
            }
        }
        assert_eq!(sizes, vec![50, 100, 100]);
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
        let msg = SourceMessage {
            position: Position::new(1, 1, -1),
            publish_time: 0,
            payload: vec![0; 9 << 20],
            chunk: None,
            too_large: None,
        };
        b.push_dead_letter(&msg, BadRecord::chunk(0, 2));
        assert!(b.is_full(), "9 MiB of dead letters fill an 8 MiB batch");
        b.take();
        assert!(!b.is_full());
    }

    #[test]
    fn dead_letters_split_into_statements_the_server_accepts() {
        let dead = |n: usize, size: usize| {
            (0..n)
                .map(|i| DeadLetter {
                    position: Position::new(1, i as i64, -1),
                    publish_time: 7,
                    payload: vec![0xab; size],
                    reason: BadRecord::chunk(0, 2),
                })
                .collect::<Vec<_>>()
        };
        let max = 64 * 1024;
        // 40 payloads of 10 kB: 800 kB of hex, in statements of at most 64 kB.
        let many = dead_letter_statements("j", "t", 0, &dead(40, 10_000), max);
        assert!(many.len() >= 13, "{} statements", many.len());
        assert!(many.iter().all(|s| s.len() <= max));
        let rows: usize = many.iter().map(|s| s.matches("'1:").count()).sum();
        assert_eq!(rows, 40);
        // One payload larger than a statement: stored cut, and the detail says so.
        let big = dead_letter_statements("j", "t", 0, &dead(1, 1 << 20), max);
        assert_eq!(big.len(), 1);
        assert!(big[0].len() <= max, "{}", big[0].len());
        assert!(big[0].contains("payload cut to its first"));
        assert!(dead_letter_statements("j", "t", 0, &[], max).is_empty());
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
