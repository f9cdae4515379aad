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

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mysql_async::prelude::Queryable;
use tokio::sync::watch;

use super::checkpoint::{Fence, Verdict};
use super::schema::{quote_ident, TableName};
use super::CONNECT_TIMEOUT;
use crate::config::{MysqlTls, SinkConfig, SslMode, WriteMode};
use crate::error::{is_retriable_code, Error, Result};
use crate::records::{Column, ColumnType, Value};

/// Size of the pieces a batch is streamed in (one protocol packet each): small enough that
/// the last piece is quick, large enough to cost nothing per row.
pub const CHUNK: usize = 64 * 1024;

/// Size of a batch's first piece: the server has nothing to do until it arrives. 64 KiB of
/// rows took the reader 2-8 ms to convert; a few hundred rows take a fraction of one.
pub const FIRST_CHUNK: usize = 4 * 1024;

/// How far a batch's producer got: chunks published, and whether the batch is complete.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    chunks: usize,
    closed: bool,
}

/// The builder's side of one batch's rows: publishes chunks, then closes the batch. Dropping
/// it without [`TsvWriter::close`] abandons the batch: a load streaming it fails and nothing of
/// it is committed.
#[derive(Debug)]
pub struct TsvWriter {
    chunks: Arc<Mutex<Vec<Bytes>>>,
    progress: watch::Sender<Progress>,
    bytes: usize,
    /// When the server last got something to read: the batch's opening, or its last chunk.
    fed_at: tokio::time::Instant,
}

/// The writer's side of one batch's rows: a handle that can stream them, from the first chunk,
/// as often as a retry needs, waiting for chunks not yet published.
#[derive(Debug, Clone)]
pub struct TsvData {
    chunks: Arc<Mutex<Vec<Bytes>>>,
    progress: watch::Receiver<Progress>,
}

/// A new batch's two sides.
pub fn tsv_batch() -> (TsvWriter, TsvData) {
    let chunks = Arc::new(Mutex::new(Vec::new()));
    let (progress, rx) = watch::channel(Progress::default());
    (
        TsvWriter {
            chunks: chunks.clone(),
            progress,
            bytes: 0,
            fed_at: tokio::time::Instant::now(),
        },
        TsvData {
            chunks,
            progress: rx,
        },
    )
}

impl TsvWriter {
    /// Publishes one chunk of complete lines.
    pub fn publish(&mut self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        self.bytes += chunk.len();
        self.fed_at = tokio::time::Instant::now();
        self.chunks
            .lock()
            .expect("chunk list lock")
            .push(Bytes::from(chunk));
        self.progress.send_modify(|p| p.chunks += 1);
    }

    /// Bytes published so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the batch last published a chunk (or was opened).
    pub fn fed_at(&self) -> tokio::time::Instant {
        self.fed_at
    }

    /// Marks the batch complete: a stream of it ends after its last chunk.
    pub fn close(self) {
        self.progress.send_modify(|p| p.closed = true);
    }
}

impl TsvData {
    /// Whether the batch is complete (its producer closed it).
    pub fn is_closed(&self) -> bool {
        self.progress.borrow().closed
    }

    /// The batch's bytes from the start, as LOAD DATA input; ends with an error if the batch
    /// is abandoned before it is closed. `pulse` hears of every piece the driver takes.
    fn stream(&self, pulse: Arc<Pulse>) -> mysql_async::InfileData {
        let state = (self.clone(), 0usize);
        Box::pin(futures::stream::unfold(state, move |(mut data, next)| {
            let pulse = pulse.clone();
            async move {
                loop {
                    let progress = *data.progress.borrow_and_update();
                    if next < progress.chunks {
                        let chunk = data.chunks.lock().expect("chunk list lock")[next].clone();
                        pulse.beat();
                        return Some((Ok(chunk), (data, next + 1)));
                    }
                    if progress.closed {
                        pulse.beat();
                        return None;
                    }
                    pulse.wait_for_reader();
                    let changed = data.progress.changed().await;
                    pulse.beat();
                    if changed.is_err() {
                        let abandoned = std::io::Error::other("the batch was abandoned");
                        // Ends the stream: the load fails and its transaction is dropped.
                        return Some((Err(abandoned), (data, usize::MAX)));
                    }
                }
            }
        }))
    }
}

/// When a streaming LOAD DATA statement last made progress: the driver took a piece of the
/// batch, or the reader published one. Time spent waiting for the reader is not the network's:
/// only silence while the driver has something to send or an answer to wait for counts.
struct Pulse {
    last: Mutex<tokio::time::Instant>,
    waiting_for_reader: AtomicBool,
}

impl Pulse {
    fn new() -> Arc<Pulse> {
        Arc::new(Pulse {
            last: Mutex::new(tokio::time::Instant::now()),
            waiting_for_reader: AtomicBool::new(false),
        })
    }

    fn beat(&self) {
        *self.last.lock().expect("pulse lock") = tokio::time::Instant::now();
        self.waiting_for_reader.store(false, Ordering::Relaxed);
    }

    fn wait_for_reader(&self) {
        self.waiting_for_reader.store(true, Ordering::Relaxed);
    }

    /// Resolves once the statement has been silent for `limit` while not waiting for the
    /// reader.
    async fn silence(&self, limit: Duration) {
        loop {
            let last = *self.last.lock().expect("pulse lock");
            if self.waiting_for_reader.load(Ordering::Relaxed) {
                tokio::time::sleep(limit).await;
                continue;
            }
            if last.elapsed() >= limit {
                return;
            }
            tokio::time::sleep_until(last + limit).await;
        }
    }
}

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
    pub async fn probe(&self) -> std::result::Result<(), LoadError> {
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
    ) -> std::result::Result<Started, LoadError> {
        let mut conn = connection(&self.pool).await?;
        match self.load(&mut conn, statement, data, fence).await {
            Ok(loaded) => Ok(Started {
                conn: Some(conn),
                loaded,
            }),
            Err(LoadError::Fence(Verdict::Landed)) => {
                let thread = conn.id();
                match self
                    .bounded(thread, "ROLLBACK", conn.query_drop("ROLLBACK"))
                    .await
                {
                    Ok(()) => drop(conn), // clean: back to the pool
                    Err(_) => discard(conn).await,
                }
                Err(LoadError::Fence(Verdict::Landed))
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
    ) -> std::result::Result<Loaded, LoadError> {
        let mut started = started;
        let mut conn = started
            .conn
            .take()
            .expect("a started batch holds its connection");
        let loaded = std::mem::take(&mut started.loaded);
        if let Err(why) = check(&loaded) {
            discard(conn).await;
            return Err(LoadError::Refused(why));
        }
        let mut result = Ok(());
        let thread = conn.id();
        for sql in then.iter().map(String::as_str).chain(["COMMIT"]) {
            let what = if sql == "COMMIT" {
                "COMMIT"
            } else {
                "the checkpoint"
            };
            result = self.bounded(thread, what, conn.query_drop(sql)).await;
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
    ) -> std::result::Result<Loaded, LoadError> {
        let thread = conn.id();
        let pulse = Pulse::new();
        let (stream_data, stream_pulse) = (data.clone(), pulse.clone());
        conn.set_infile_handler(async move { Ok(stream_data.stream(stream_pulse)) });
        self.bounded(
            thread,
            "START TRANSACTION",
            conn.query_drop("START TRANSACTION"),
        )
        .await?;
        let found: Option<(i64, i64, i32)> = self
            .bounded(
                thread,
                "the checkpoint read",
                conn.query_first(fence.lock_sql()),
            )
            .await?;
        match fence.judge(found.and_then(super::checkpoint::stored_position)) {
            Verdict::Write => {}
            verdict => return Err(LoadError::Fence(verdict)),
        }
        pulse.beat();
        tokio::select! {
            done = conn.query_drop(statement) => done?,
            () = pulse.silence(self.io_timeout) => {
                return Err(LoadError::Stalled { what: "LOAD DATA", after: self.io_timeout, thread })
            }
        }
        let inserted = conn.affected_rows();
        let warnings: Option<u64> = self
            .bounded(
                thread,
                "a warning count",
                conn.query_first("SELECT @@warning_count"),
            )
            .await?;
        let warnings = warnings.unwrap_or(0);
        let first_warning = if warnings > 0 {
            let row: Option<(String, u32, String)> = self
                .bounded(
                    thread,
                    "SHOW WARNINGS",
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

    /// One round trip on the connection of server thread `thread` that must answer within
    /// `io_timeout`.
    async fn bounded<T>(
        &self,
        thread: u32,
        what: &'static str,
        op: impl Future<Output = std::result::Result<T, mysql_async::Error>>,
    ) -> std::result::Result<T, LoadError> {
        match tokio::time::timeout(self.io_timeout, op).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(LoadError::Stalled {
                what,
                after: self.io_timeout,
                thread,
            }),
        }
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

/// Why a LOAD DATA batch did not commit.
pub enum LoadError {
    Driver(mysql_async::Error),
    /// The load ran but its result was refused (unexpected duplicates or warnings).
    Refused(String),
    /// The server did not answer `what` within `after`; the connection (server thread
    /// `thread`) was dropped.
    Stalled {
        what: &'static str,
        after: Duration,
        thread: u32,
    },
    /// The fence did not let the batch be written (see [`Fence`]).
    Fence(Verdict),
}

impl From<mysql_async::Error> for LoadError {
    fn from(e: mysql_async::Error) -> Self {
        LoadError::Driver(e)
    }
}

/// Whether a `mysql_async` error is a TLS failure (certificate, name): never retried.
pub fn is_tls(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Io(mysql_async::IoError::Tls(_)))
}

/// Whether a `mysql_async` error is worth retrying: broken connections are (a TLS failure is
/// not), server errors by the same codes as the INSERT path.
pub fn is_retriable(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) => !is_tls(e),
        mysql_async::Error::Driver(d) => matches!(
            d,
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PacketOutOfOrder
        ),
        mysql_async::Error::Server(s) => is_retriable_code(s.code),
        mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => false,
    }
}

/// The server's error code, when the error came from the server.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// The `LOAD DATA` statement for `mapped` columns of `table`. Binary columns travel as hex
/// and are decoded by the server (`UNHEX`), so the file itself is always valid UTF-8.
pub fn load_statement(table: &TableName, mapped: &[Column], mode: WriteMode) -> String {
    let mut targets = Vec::with_capacity(mapped.len());
    let mut sets = Vec::new();
    for (i, c) in mapped.iter().enumerate() {
        if matches!(c.ty, ColumnType::Binary { .. }) {
            targets.push(format!("@p2m_hex{i}"));
            sets.push(format!("{} = UNHEX(@p2m_hex{i})", quote_ident(&c.name)));
        } else {
            targets.push(quote_ident(&c.name));
        }
    }
    // With LOCAL the server behaves as IGNORE whatever is written; saying so keeps the
    // statement honest. The commit check turns unwanted duplicates and warnings into errors.
    debug_assert!(mode != WriteMode::Upsert, "refused by Config::validate");
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'pulsar2mysql-batch' IGNORE INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        table.quoted(),
        targets.join(",")
    );
    if !sets.is_empty() {
        let _ = write!(sql, " SET {}", sets.join(","));
    }
    sql
}

/// Appends one field in the format [`load_statement`] declares: `\N` for NULL, backslash
/// escapes for the bytes that would end a field or a line, hex for binary values.
pub fn write_tsv_field(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Decimal(d) => out.extend_from_slice(d.as_bytes()),
        Value::Float(f) => {
            let _ = write!(out, "{f:e}");
        }
        Value::Text(s) => {
            let bytes = s.as_bytes();
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                let esc: &[u8] = match b {
                    b'\\' => b"\\\\",
                    b'\t' => b"\\t",
                    b'\n' => b"\\n",
                    b'\r' => b"\\r",
                    0 => b"\\0",
                    _ => continue,
                };
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(esc);
                start = i + 1;
            }
            out.extend_from_slice(&bytes[start..]);
        }
        Value::Bytes(b) => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.reserve(b.len() * 2);
            for &byte in b.iter() {
                out.push(HEX[(byte >> 4) as usize]);
                out.push(HEX[(byte & 15) as usize]);
            }
        }
        Value::Date(d) => {
            let _ = write!(out, "{}", d.format("%Y-%m-%d"));
        }
        Value::DateTime(dt) => {
            let _ = write!(out, "{}", dt.format("%Y-%m-%d %H:%M:%S%.6f"));
        }
    }
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

    fn tsv(v: Value<'_>) -> String {
        let mut out = Vec::new();
        write_tsv_field(&mut out, &v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_escape_what_ends_a_field_or_a_line() {
        assert_eq!(tsv(Value::Text("a\tb\nc\\d\re\0")), "a\\tb\\nc\\\\d\\re\\0");
        assert_eq!(tsv(Value::Text("it's \"é\" |")), "it's \"é\" |");
        // The text "\N" must not read back as NULL.
        assert_eq!(tsv(Value::Text("\\N")), "\\\\N");
        assert_eq!(tsv(Value::Null), "\\N");
        assert_eq!(tsv(Value::Bytes(&[0, 0xab, 255])), "00ABFF");
        assert_eq!(tsv(Value::Int(-7)), "-7");
        assert_eq!(tsv(Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(tsv(Value::Decimal("-12.50")), "-12.50");
    }

    #[test]
    fn binary_columns_are_unhexed_by_the_server() {
        let cols = vec![
            Column {
                name: "id".into(),
                ty: ColumnType::Int {
                    min: i32::MIN as i64,
                    max: i32::MAX as i64,
                },
                nullable: false,
                has_default: false,
            },
            Column {
                name: "blob`x".into(),
                ty: ColumnType::Binary { max_bytes: 10 },
                nullable: true,
                has_default: false,
            },
        ];
        let table = TableName::parse("db.t").unwrap();
        let sql = load_statement(&table, &cols, WriteMode::Insert);
        assert!(
            sql.ends_with("(`id`,@p2m_hex1) SET `blob``x` = UNHEX(@p2m_hex1)"),
            "{sql}"
        );
        assert!(
            sql.contains("FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\'"),
            "{sql}"
        );
    }

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
