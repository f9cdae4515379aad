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
use super::tsv::{Pulse, TsvData};
use super::write_error::{bounded, WriteError};
use super::CONNECT_TIMEOUT;
use crate::config::{MysqlTls, SinkConfig, SslMode};
use crate::error::{Error, Result};

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
    /// The first warning, as `code: message`, when there was one.
    pub first_warning: Option<String>,
}

impl LoadDataWriter {
    /// A lazy pool (nothing connects before the first batch) with the same session settings
    /// as the sqlx pool.
    pub fn new(cfg: &SinkConfig, session_init: &str, tls_offered: bool) -> Result<Self> {
        let opts = connect_opts(cfg, session_init, tls_offered)?;
        Ok(LoadDataWriter {
            pool: mysql_async::Pool::new(opts),
            io_timeout: cfg.io_timeout,
        })
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
        let loaded = std::mem::take(&mut started.loaded);
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
            result = bounded(self.io_timeout, what, Some(thread), conn.query_drop(sql)).await;
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
        let first_warning = if warnings > 0 {
            let row: Option<(String, u32, String)> = bounded(
                self.io_timeout,
                "SHOW WARNINGS",
                Some(thread),
                conn.query_first("SHOW WARNINGS LIMIT 1"),
            )
            .await?;
            row.map(|(_, code, msg)| format!("{code}: {msg}"))
        } else {
            None
        };
        Ok(Loaded {
            inserted,
            warnings,
            first_warning,
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

/// `mysql_async` options from the same URL, password and TLS settings sqlx uses. Of sqlx's URL
/// parameters `socket` is mapped here (TLS comes resolved in `cfg.tls`); anything else is
/// ignored by this pool. A Unix socket is used only when the URL names one. `tls_offered`
/// (the control connection got TLS) decides `preferred`.
fn connect_opts(
    cfg: &SinkConfig,
    session_init: &str,
    tls_offered: bool,
) -> Result<mysql_async::Opts> {
    let url = url::Url::parse(&cfg.url).map_err(|e| {
        Error::Config(format!(
            "--mysql-url '{}' is not a URL: {e}",
            cfg.redacted_url()
        ))
    })?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = (!url.username().is_empty()).then(|| decode(url.username()));
    let password = cfg.password.clone().or_else(|| url.password().map(decode));
    let db = url.path().trim_start_matches('/');
    let mut builder = mysql_async::OptsBuilder::default()
        .ip_or_hostname(url.host_str().unwrap_or("localhost"))
        .tcp_port(url.port().unwrap_or(3306))
        .user(user)
        .pass(password)
        .db_name((!db.is_empty()).then(|| decode(db)))
        // Connect where the URL says. By default the driver asks a server reached over TCP for
        // its @@socket and reconnects through that path on this machine: past any proxy, and
        // to whatever local server listens there.
        .prefer_socket(false)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .init(vec![
            "SET NAMES utf8mb4".to_string(),
            session_init.to_string(),
        ])
        .pool_opts(
            mysql_async::PoolOpts::default()
                .with_constraints(
                    mysql_async::PoolConstraints::new(0, cfg.max_writers()).expect("0 <= writers"),
                )
                // Keep idle connections for the next batch. Without a TTL the pool keeps only
                // `min` (0) idle ones, so every batch (and the warm-up) would connect anew.
                .with_inactive_connection_ttl(std::time::Duration::from_secs(60))
                .with_reset_connection(false),
        );
    for (k, v) in url.query_pairs() {
        if k == "socket" {
            builder = builder.socket(Some(v.into_owned()));
        }
    }
    Ok(builder.ssl_opts(ssl_opts(&cfg.tls, tls_offered)).into())
}

/// The TLS of the LOAD DATA connection, by the same policy as sqlx's.
fn ssl_opts(tls: &MysqlTls, tls_offered: bool) -> Option<mysql_async::SslOpts> {
    let unchecked = || {
        mysql_async::SslOpts::default()
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true)
    };
    let mut ssl = match tls.mode {
        SslMode::Disabled => return None,
        SslMode::Preferred if !tls_offered => return None,
        SslMode::Preferred | SslMode::Required => unchecked(),
        SslMode::VerifyCa => {
            mysql_async::SslOpts::default().with_danger_skip_domain_validation(true)
        }
        SslMode::VerifyIdentity => mysql_async::SslOpts::default(),
    };
    if let Some(ca) = &tls.ca {
        if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyIdentity) {
            ssl = ssl.with_root_certs(vec![ca.clone().into()]);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        ssl = ssl.with_client_identity(Some(mysql_async::ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    Some(ssl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WriteMode;

    #[test]
    fn sqlx_url_parameters_map_to_mysql_async() {
        let cfg = |url: &str| SinkConfig {
            url: url.into(),
            password: None,
            table: "t".into(),
            mode: WriteMode::Insert,
            strategy: Default::default(),
            batch_rows: Some(1),
            batch_bytes: 1,
            writers: Some(2),
            retry_budget: std::time::Duration::from_secs(1),
            io_timeout: std::time::Duration::from_secs(1),
            tls: Default::default(),
        };
        let o = connect_opts(
            &cfg("mysql://u%40x:p%2Fw@db.example:3307/my%20db"),
            "",
            false,
        )
        .unwrap();
        assert_eq!(o.ip_or_hostname(), "db.example");
        assert_eq!(o.tcp_port(), 3307);
        assert_eq!(o.user(), Some("u@x"));
        assert_eq!(o.pass(), Some("p/w"));
        assert_eq!(o.db_name(), Some("my db"));
        assert!(o.ssl_opts().is_none());
        assert!(
            !o.prefer_socket(),
            "a TCP URL must never switch to the server's Unix socket"
        );
        assert_eq!(o.socket(), None);
        let o = connect_opts(
            &cfg("mysql://u@localhost/db?socket=%2Frun%2Fm.sock"),
            "",
            false,
        )
        .unwrap();
        assert_eq!(o.socket(), Some("/run/m.sock"));
        // One policy with sqlx: preferred takes TLS when the control connection got it.
        assert!(connect_opts(&cfg("mysql://u@h/db"), "", true)
            .unwrap()
            .ssl_opts()
            .is_some());
        let tls = |mode| MysqlTls {
            mode,
            ..Default::default()
        };
        assert!(ssl_opts(&tls(SslMode::Required), false).is_some());
        assert!(ssl_opts(&tls(SslMode::Disabled), true).is_none());
        let verify = ssl_opts(&tls(SslMode::VerifyIdentity), false).unwrap();
        assert!(!verify.accept_invalid_certs() && !verify.skip_domain_validation());
        let ca_only = ssl_opts(&tls(SslMode::VerifyCa), false).unwrap();
        assert!(!ca_only.accept_invalid_certs() && ca_only.skip_domain_validation());
    }
}
