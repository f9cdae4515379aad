//! Connecting the sink: the control pool (sqlx) with its TLS policy, the project's
//! migrations, the table's columns, the write strategy and the LOAD DATA pool.

use sqlx::mysql::MySqlPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Executor, MySql, MySqlConnection, MySqlPool};

use super::batch_builder::{BatchBuilder, Shape};
use super::load_data::LoadDataWriter;
use super::migrations;
use super::schema::{read_columns, TableName};
use super::target::{MysqlTarget, CONNECT_TIMEOUT, SESSION_INIT};
use super::write_error::{is_retriable_sql, is_tls_sql};
use crate::config::{SinkConfig, WriteMode, WriteStrategy};
use crate::error::{scrub, Backoff, Error, Result};
use crate::records::{Column, ColumnType};

/// A connected sink for one table.
pub struct MysqlSink {
    pub(super) pool: MySqlPool,
    pub(super) table: TableName,
    pub(super) columns: Vec<Column>,
    /// The column that alone is the table's clustered index, if any: LOAD DATA batches send
    /// their rows in its order.
    pub(super) clustered_key: Option<String>,
    pub(super) max_statement_bytes: usize,
    /// The largest statement the server accepts (`max_allowed_packet` less framing).
    pub(super) max_packet_statement: usize,
    /// Resolved: never `Auto`.
    pub(super) strategy: WriteStrategy,
    /// The LOAD DATA pool (strategy `LoadData`, and not a read-only sink).
    pub(super) load_data: Option<LoadDataWriter>,
    /// Whether the control connection got TLS (decides `preferred` for the LOAD DATA pool).
    pub(super) tls_in_use: bool,
    /// The server's `innodb_autoinc_lock_mode` (None if it has none): whether parallel LOAD
    /// DATA streams take turns on the table's AUTO-INC lock.
    pub(super) autoinc_lock_mode: Option<i64>,
    /// When the server last started (epoch seconds, from its uptime), as last seen: a thread
    /// id recorded before the server restarted (or before a failover behind the same address)
    /// names somebody else's session now, and must not be killed.
    pub(super) server_started: std::sync::Mutex<Option<i64>>,
    pub(super) cfg: SinkConfig,
    /// Where and as whom both drivers connect.
    pub(super) target: MysqlTarget,
}

/// Connects the control pool (sqlx) and takes its first connection, retrying a server that
/// is not up yet within the retry budget; a certificate the run will never trust fails at once.
async fn open_control(
    cfg: &SinkConfig,
    target: &MysqlTarget,
) -> Result<(MySqlPool, PoolConnection<MySql>)> {
    let secret = cfg.password.clone();
    let options = target.sqlx_options();
    let pool = MySqlPoolOptions::new()
        .max_connections(cfg.max_writers() as u32 + 2)
        .acquire_timeout(CONNECT_TIMEOUT)
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

/// When the server started, in epoch seconds (now less its `Uptime`); `None` when it does not
/// say. Needs no privilege.
pub(super) async fn server_started(conn: &mut MySqlConnection) -> Option<i64> {
    let uptime: Option<(String, String)> = sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Uptime'")
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
    let now: i64 = sqlx::query_scalar("SELECT CAST(UNIX_TIMESTAMP() AS SIGNED)")
        .fetch_one(&mut *conn)
        .await
        .ok()?;
    Some(now - uptime?.1.parse::<i64>().ok()?)
}

/// Applies the project's migrations (checkpoints, dead letters, window ends) and nothing else:
/// no sink table needed, so a database can be prepared before the first job is configured.
pub async fn migrate(cfg: &SinkConfig) -> Result<()> {
    let target = MysqlTarget::parse(cfg)?;
    let (pool, mut conn) = open_control(cfg, &target).await?;
    let limit = cfg.io_timeout * 4;
    let done = tokio::time::timeout(limit, migrations::migrate(&mut conn)).await;
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
        let target = MysqlTarget::parse(cfg)?;
        let (pool, mut conn) = open_control(cfg, &target).await?;
        // A handful of single round trips; a server that stops answering must not hold the run.
        let limit = cfg.io_timeout * 4;
        let setup = async {
            if !read_only {
                migrations::migrate(&mut conn).await?;
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
            let server_started = server_started(&mut conn).await;
            Ok::<_, Error>((
                columns,
                packet,
                strategy,
                tls_in_use,
                autoinc_lock_mode,
                server_started,
            ))
        };
        let (columns, packet, strategy, tls_in_use, autoinc_lock_mode, server_started) =
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
            let writer = LoadDataWriter::new(&target, cfg, SESSION_INIT, tls_in_use);
            writer.warm_up();
            Some(writer)
        } else {
            None
        };
        Ok(MysqlSink {
            target,
            pool,
            table,
            columns: columns.columns,
            clustered_key: columns.clustered_key,
            max_statement_bytes,
            max_packet_statement,
            strategy,
            load_data,
            tls_in_use,
            autoinc_lock_mode,
            server_started: std::sync::Mutex::new(server_started),
            cfg: cfg.clone(),
        })
    }

    /// How many write streams a run over `partitions` partitions uses (see
    /// [`SinkConfig::write_streams`]).
    pub fn write_streams(&self, partitions: usize) -> usize {
        self.cfg.write_streams(partitions)
    }

    /// The server's `innodb_autoinc_lock_mode`, for the log (None: no InnoDB).
    pub fn autoinc_lock_mode(&self) -> Option<i64> {
        self.autoinc_lock_mode
    }

    /// Opens one LOAD DATA connection, when this sink's strategy uses them, so that `check`
    /// fails where a run would (its TLS, its user, its server).
    pub async fn probe_load_data(&self) -> Result<()> {
        if self.strategy != WriteStrategy::LoadData {
            return Ok(());
        }
        let writer = LoadDataWriter::new(&self.target, &self.cfg, SESSION_INIT, self.tls_in_use);
        let probed = writer.probe().await;
        writer.close().await;
        probed.map_err(|e| {
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
}

/// A TLS failure as the configuration error it is.
pub(super) fn tls_refused(cfg: &SinkConfig, cause: &str) -> Error {
    Error::Config(format!(
        "TLS to MySQL at {} failed: {}; check --mysql-ssl-mode ({:?}) and --mysql-ssl-ca",
        cfg.redacted_url(),
        scrub(cause, cfg.password.as_deref()),
        cfg.tls.mode
    ))
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

impl MysqlSink {
    /// A builder for the batches of one write stream (of `streams` writing at once), with this
    /// sink's table, write strategy and limits; the partitions it reads join with
    /// [`BatchBuilder::track`].
    pub fn batch_builder(&self, mapped: &[Column], streams: usize) -> BatchBuilder {
        // A batch that may skip rows holds no more than the server lists warnings for, so
        // that every skipped row can be told a duplicate or not.
        let max_rows = match self.cfg.mode {
            WriteMode::IgnoreDuplicates => self
                .cfg
                .batch_rows_for(streams)
                .min(super::skipped::MAX_WARNINGS as usize),
            _ => self.cfg.batch_rows_for(streams),
        };
        BatchBuilder::new(&Shape {
            table: &self.table,
            mapped,
            mode: self.cfg.mode,
            strategy: self.strategy,
            max_rows,
            max_batch_bytes: self.cfg.batch_bytes_for(streams),
            max_statement_bytes: self.max_statement_bytes,
            max_packet_statement: self.max_packet_statement,
            order_by: self.clustered_key.as_deref().and_then(|key| {
                mapped.iter().position(|c| {
                    c.name == key
                        && matches!(c.ty, ColumnType::Int { .. } | ColumnType::UInt { .. })
                })
            }),
        })
    }
}
