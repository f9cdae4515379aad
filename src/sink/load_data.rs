//! The `LOAD DATA LOCAL INFILE` write path: rows rendered as tab-separated text in memory and
//! streamed to the server inside the same transaction as the dead letters and the checkpoint.
//! A batch starts streaming while it is still being filled ([`TsvData`]), so the server
//! inserts rows while the reader converts the next ones; its chunks stay in memory until
//! the commit, so a retry can send the batch again.
//!
//! sqlx cannot answer the server's LOCAL INFILE request, so this path keeps its own small
//! `mysql_async` pool. With LOCAL, the server turns every error (duplicate key, bad value)
//! into a warning and goes on; the commit therefore counts rows and warnings and rolls the
//! batch back unless the only warnings are the duplicates the mode asked to skip.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::fence::{self, Fence, Verdict};
use super::skipped::Warning;
use super::target::{MysqlTarget, CONNECT_TIMEOUT};
use super::tsv::{Pulse, TsvData};
use super::write_error::{bounded, WriteError};
use crate::config::SinkConfig;

/// A pool of `mysql_async` connections used only for LOAD DATA transactions.
pub struct LoadDataWriter {
    pool: mysql_async::Pool,
    /// Longest wait for one answer (see [`SinkConfig::io_timeout`]).
    io_timeout: Duration,
}

/// What the server reported for one LOAD DATA statement.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rows the server stored (affected rows).
    pub inserted: u64,
    /// `@@warning_count` after the load: skipped duplicates and changed values alike.
    pub warnings: u64,
    /// The warnings as `SHOW WARNINGS` lists them (up to the session's `max_error_count`).
    pub shown: Vec<Warning>,
    /// When the statement went to the server, how long it waited for rows, and (once
    /// finished) how long its COMMIT took: the run's time budget.
    pub sent_at: Option<std::time::Instant>,
    pub input_wait: Duration,
    pub commit: Duration,
}

impl Loaded {
    /// The first warning, as `code: message`, when there was one.
    pub fn first_warning(&self) -> Option<String> {
        self.shown.first().map(ToString::to_string)
    }
}

impl LoadDataWriter {
    /// A lazy pool (nothing connects before the first batch) with the same session settings
    /// as the sqlx pool.
    pub fn new(
        target: &MysqlTarget,
        cfg: &SinkConfig,
        session_init: &str,
        tls_offered: bool,
    ) -> Self {
        let opts = target.mysql_async_opts(session_init, tls_offered, cfg.max_writers());
        LoadDataWriter {
            pool: mysql_async::Pool::new(opts),
            io_timeout: cfg.io_timeout,
        }
    }

    /// Opens one connection and gives it back: fails where a batch would fail to connect.
    pub async fn probe(&self) -> std::result::Result<(), WriteError> {
        let conn = connection(&self.pool).await?;
        drop(conn);
        Ok(())
    }

    /// Opens the first connection in the background, so that connecting overlaps the
    /// subscription to Pulsar instead of delaying the first batch. A failure here is ignored:
    /// the first batch connects again and reports it.
    pub fn warm_up(&self) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Ok(conn) = connection(&pool).await {
                drop(conn); // back to the pool, idle
            }
        });
    }

    /// Begins a batch's transaction, passes its fence, and loads its rows, streaming them as
    /// they are published; returns once the batch is closed and loaded, with the transaction
    /// still open.
    pub async fn start(
        &self,
        statement: &str,
        data: &TsvData,
        fence: &Fence,
    ) -> std::result::Result<Started, WriteError> {
        let mut conn = connection(&self.pool).await?;
        match self.load(&mut conn, statement, data, fence).await {
            Ok(loaded) => Ok(Started {
                conn: Some(conn),
                loaded,
            }),
            Err(WriteError::Fenced(found)) => {
                let thread = conn.id();
                match bounded(
                    self.io_timeout,
                    "ROLLBACK",
                    Some(thread),
                    conn.query_drop("ROLLBACK"),
                )
                .await
                {
                    Ok(()) => drop(conn), // clean: back to the pool
                    Err(_) => discard(conn).await,
                }
                Err(WriteError::Fenced(found))
            }
            Err(e) => {
                discard(conn).await;
                Err(e)
            }
        }
    }

    /// Completes a started batch: `check` sees what the load did and may refuse it (rolled
    /// back); then `then` (dead letters and the checkpoint, as SQL text) and COMMIT.
    pub async fn finish(
        &self,
        started: Started,
        then: &[String],
        check: impl FnOnce(&Loaded) -> std::result::Result<(), String>,
    ) -> std::result::Result<Loaded, WriteError> {
        let mut started = started;
        let mut conn = started
            .conn
            .take()
            .expect("a started batch holds its connection");
        let mut loaded = std::mem::take(&mut started.loaded);
        if let Err(why) = check(&loaded) {
            discard(conn).await;
            return Err(WriteError::Refused(why));
        }
        let mut result = Ok(());
        let thread = conn.id();
        for sql in then.iter().map(String::as_str).chain(["COMMIT"]) {
            let what = if sql == "COMMIT" {
                "COMMIT"
            } else {
                "the checkpoint"
            };
            let began = std::time::Instant::now();
            result = bounded(self.io_timeout, what, Some(thread), conn.query_drop(sql)).await;
            if sql == "COMMIT" {
                loaded.commit = began.elapsed();
            }
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => Ok(loaded),
            Err(e) => {
                discard(conn).await;
                Err(e)
            }
        }
    }

    /// Closes the pool's connections (a dropped pool leaves them to the server's timeout).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(self.io_timeout, self.pool.clone().disconnect()).await;
    }

    /// START TRANSACTION, the fence, and the LOAD DATA statement, streaming `data`. The
    /// statement may wait for the reader as long as it needs; silence beyond `io_timeout`
    /// while the driver has something to send or an answer to wait for ends it as stalled.
    async fn load(
        &self,
        conn: &mut mysql_async::Conn,
        statement: &str,
        data: &TsvData,
        fence: &Fence,
    ) -> std::result::Result<Loaded, WriteError> {
        let thread = conn.id();
        let pulse = Pulse::new();
        let (stream_data, stream_pulse) = (data.clone(), pulse.clone());
        conn.set_infile_handler(async move { Ok(stream_data.stream(stream_pulse)) });
        bounded(
            self.io_timeout,
            "START TRANSACTION",
            Some(thread),
            conn.query_drop("START TRANSACTION"),
        )
        .await?;
        let rows: Vec<(i32, i64, i64, i32)> = bounded(
            self.io_timeout,
            "the checkpoint read",
            Some(thread),
            conn.query(fence.lock_sql()),
        )
        .await?;
        let found = fence::found(rows);
        if fence.judge(&found) != Verdict::Write {
            return Err(WriteError::Fenced(found));
        }
        pulse.beat();
        let sent_at = std::time::Instant::now();
        tokio::select! {
            done = conn.query_drop(statement) => done?,
            () = pulse.silence(self.io_timeout) => {
                return Err(WriteError::Stalled { what: "LOAD DATA", after: self.io_timeout, thread: Some(thread) })
            }
        }
        let inserted = conn.affected_rows();
        let warnings: Option<u64> = bounded(
            self.io_timeout,
            "a warning count",
            Some(thread),
            conn.query_first("SELECT @@warning_count"),
        )
        .await?;
        let warnings = warnings.unwrap_or(0);
        let shown = if warnings > 0 {
            let rows: Vec<(String, u32, String)> = bounded(
                self.io_timeout,
                "SHOW WARNINGS",
                Some(thread),
                conn.query("SHOW WARNINGS"),
            )
            .await?;
            rows.into_iter()
                .map(|(_, code, message)| Warning { code, message })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Loaded {
            inserted,
            warnings,
            shown,
            sent_at: Some(sent_at),
            input_wait: pulse.waited(),
            commit: Duration::ZERO,
        })
    }
}

/// A batch loaded inside an open transaction, waiting for its checkpoint and COMMIT. Dropped
/// unfinished, it closes its connection (the server rolls the batch back): returned to the
/// pool, the open transaction would be committed implicitly by the next batch's
/// START TRANSACTION, without its checkpoint.
pub struct Started {
    conn: Option<mysql_async::Conn>,
    loaded: Loaded,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            tokio::spawn(discard(conn));
        }
    }
}

/// A connection from the pool, or a retriable timeout: `mysql_async` has no connect
/// timeout of its own, and a server that accepts TCP but never answers must not stall
/// the run.
async fn connection(
    pool: &mysql_async::Pool,
) -> std::result::Result<mysql_async::Conn, mysql_async::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, pool.get_conn()).await {
        Ok(conn) => conn,
        Err(_) => Err(mysql_async::Error::Io(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection to MySQL within {CONNECT_TIMEOUT:?}"),
            )
            .into(),
        )),
    }
}

/// Closes a connection whose transaction must not survive: the server rolls it back. Never
/// returned to the pool, where the next batch would continue the transaction. Bounded: on a
/// cut connection the goodbye may never get out, and the connection is then simply dropped
/// (already marked disconnected, so the pool does not take it back).
async fn discard(conn: mysql_async::Conn) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.disconnect()).await;
}
