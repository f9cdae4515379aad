//! A batch's rows as LOAD DATA input: tab-separated text in chunks that a LOAD DATA statement
//! streams while the reader still fills the batch ([`TsvData`]), kept until the commit so a
//! retry can send the batch again; and the statement that reads them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::schema::TableName;
use super::sql::quote_ident;
use crate::config::WriteMode;
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
    /// The bytes published so far, in order (for tests: a load streams them instead).
    #[cfg(test)]
    pub(super) fn bytes_so_far(&self) -> Vec<u8> {
        let chunks = self.chunks.lock().expect("chunk list lock");
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// Whether the batch is complete (its producer closed it).
    pub fn is_closed(&self) -> bool {
        self.progress.borrow().closed
    }

    /// The batch's bytes from the start, as LOAD DATA input; ends with an error if the batch
    /// is abandoned before it is closed. `pulse` hears of every piece the driver takes.
    pub(super) fn stream(&self, pulse: Arc<Pulse>) -> mysql_async::InfileData {
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
                    let waiting = std::time::Instant::now();
                    let changed = data.progress.changed().await;
                    pulse
                        .waited
                        .fetch_add(waiting.elapsed().as_micros() as u64, Ordering::Relaxed);
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
pub(super) struct Pulse {
    last: Mutex<tokio::time::Instant>,
    waiting_for_reader: AtomicBool,
    /// Microseconds the statement spent waiting for the readers' next chunk.
    waited: std::sync::atomic::AtomicU64,
}

impl Pulse {
    pub(super) fn new() -> Arc<Pulse> {
        Arc::new(Pulse {
            last: Mutex::new(tokio::time::Instant::now()),
            waiting_for_reader: AtomicBool::new(false),
            waited: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How long the statement waited for rows, in all.
    pub(super) fn waited(&self) -> Duration {
        Duration::from_micros(self.waited.load(Ordering::Relaxed))
    }

    pub(super) fn beat(&self) {
        *self.last.lock().expect("pulse lock") = tokio::time::Instant::now();
        self.waiting_for_reader.store(false, Ordering::Relaxed);
    }

    pub(super) fn wait_for_reader(&self) {
        self.waiting_for_reader.store(true, Ordering::Relaxed);
    }

    /// Resolves once the statement has been silent for `limit` while not waiting for the
    /// reader.
    pub(super) async fn silence(&self, limit: Duration) {
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

/// The `LOAD DATA` statement for `mapped` columns of `table`. Binary columns travel as hex
/// and are decoded by the server (`UNHEX`), so the file itself is always valid UTF-8; BIT
/// columns travel as decimal numbers made numbers again by the server (`CAST`), since LOAD
/// DATA stores a field's bytes in a BIT column, not the number they spell.
pub fn load_statement(table: &TableName, mapped: &[Column], mode: WriteMode) -> String {
    let mut targets = Vec::with_capacity(mapped.len());
    let mut sets = Vec::new();
    for (i, c) in mapped.iter().enumerate() {
        if matches!(c.ty, ColumnType::Binary { .. }) {
            targets.push(format!("@p2m_hex{i}"));
            sets.push(format!("{} = UNHEX(@p2m_hex{i})", quote_ident(&c.name)));
        } else if matches!(c.ty, ColumnType::Bit { .. }) {
            targets.push(format!("@p2m_bit{i}"));
            sets.push(format!(
                "{} = CAST(@p2m_bit{i} AS UNSIGNED)",
                quote_ident(&c.name)
            ));
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
        Value::UInt(u) | Value::Bits(u) => {
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
                auto_increment: false,
            },
            Column {
                name: "blob`x".into(),
                ty: ColumnType::Binary { max_bytes: 10 },
                nullable: true,
                has_default: false,
                auto_increment: false,
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
}
