//! Why one attempt at a batch failed, whichever of the two MySQL drivers made it (sqlx for
//! control and INSERT, `mysql_async` for LOAD DATA LOCAL): one error type, one rule for what
//! is worth retrying and what is a TLS (configuration) failure, one deadline per round trip.

use std::future::Future;
use std::time::Duration;

use super::fence::Found;
use crate::range::Position;

/// Why one attempt at a batch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
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
    /// The fence did not let the batch pass: what it found, to be judged with the batch's
    /// ends.
    #[error("the fence did not let the batch pass")]
    Fenced(Found),
    /// The fence found a checkpoint somewhere this writer did not put it.
    #[error("the checkpoint of partition {partition} moved under this run")]
    Moved {
        partition: i32,
        found: Option<Position>,
    },
}

impl WriteError {
    /// A TLS failure (a certificate not trusted, a name that does not match): configuration,
    /// not a transient fault.
    pub(super) fn is_tls(&self) -> bool {
        match self {
            WriteError::Sql(e) => is_tls_sql(e),
            WriteError::Driver(e) => is_tls_driver(e),
            _ => false,
        }
    }

    /// Whether another attempt may succeed: the one rule for both drivers.
    pub(super) fn is_retriable(&self) -> bool {
        match self {
            WriteError::Sql(e) => is_retriable_sql(e),
            WriteError::Driver(e) => is_retriable_driver(e),
            WriteError::Stalled { .. } => true,
            WriteError::Refused(_) | WriteError::Fenced(_) | WriteError::Moved { .. } => false,
        }
    }

    /// The server's error code, when the error came from the server.
    pub(super) fn server_code(&self) -> Option<u16> {
        match self {
            WriteError::Sql(e) => e
                .as_database_error()
                .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
                .map(|d| d.number()),
            WriteError::Driver(e) => server_code_driver(e),
            _ => None,
        }
    }
}

/// One round trip that must answer within `limit`; past it the attempt counts as cut.
pub(super) async fn bounded<T, E: Into<WriteError>>(
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

/// Whether a MySQL error is worth retrying: lost connections, server restarts, deadlocks and
/// lock wait timeouts are; syntax, constraint and conversion errors are not, and neither is a
/// TLS failure (a certificate the run does not trust is configuration).
pub(super) fn is_retriable_sql(err: &sqlx::Error) -> bool {
    if is_tls_sql(err) {
        return false;
    }
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|e| is_retriable_code(e.number())),
        _ => false,
    }
}

/// Whether sqlx failed on TLS: its own TLS errors, and rustls's inside an I/O error (an
/// untrusted certificate, a name that does not match).
pub(super) fn is_tls_sql(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// Server error codes that a retry can cure: deadlock, lock wait timeout, server shutdown in
/// progress, too many connections, query interrupted (server shutdown), connection killed,
/// gone away, lost, and MariaDB's idle-transaction disconnect.
fn is_retriable_code(code: u16) -> bool {
    matches!(
        code,
        1213 | 1205 | 1053 | 1040 | 1317 | 1927 | 2006 | 2013 | 4031
    )
}

/// Whether a `mysql_async` error is a TLS failure (certificate, name): never retried.
fn is_tls_driver(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Io(mysql_async::IoError::Tls(_)))
}

/// Whether a `mysql_async` error is worth retrying: broken connections are (a TLS failure is
/// not), server errors by the same codes as the INSERT path.
fn is_retriable_driver(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) => !is_tls_driver(e),
        mysql_async::Error::Driver(d) => matches!(
            d,
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PacketOutOfOrder
        ),
        mysql_async::Error::Server(s) => is_retriable_code(s.code),
        mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => false,
    }
}

/// The server's error code, when the error came from the server.
fn server_code_driver(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}
