//! Batches: rows rendered as multi-row INSERT statements or as LOAD DATA input while they are
//! read, with the positions they cover and their dead letters, up to the row and byte limits.

use std::sync::Arc;

use super::connect::MysqlSink;
use super::schema::quote_ident;
use super::sql::write_literal;
use super::tsv::{self, TsvData, TsvWriter};
use crate::config::{WriteMode, WriteStrategy};
use crate::records::{BadRecord, Column, Value};
use crate::source::{Position, SourceMessage};

/// How many full-size statements an INSERT batch holds at most (with `--batch-bytes` 4 MiB:
/// 16 MiB of SQL per transaction).
pub(super) const INSERT_BATCH_STATEMENTS: usize = 4;

/// A LOAD DATA batch still being filled, which the writer may start loading already.
pub struct OpenBatch {
    pub(super) statement: Arc<str>,
    pub(super) data: TsvData,
    pub(super) partition: i32,
    /// The checkpoint the batch follows (see [`Batch::after`]).
    pub(super) after: Option<Position>,
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

impl MysqlSink {
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
                statement: tsv::load_statement(&self.table, mapped, self.cfg.mode).into(),
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
            let (writer, data) = tsv::tsv_batch();
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
            tsv::write_tsv_field(&mut self.pending, v);
        }
        self.pending.push(b'\n');
        let chunk = if writer.bytes() == 0 {
            tsv::FIRST_CHUNK
        } else {
            tsv::CHUNK
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
    std::mem::replace(pending, Vec::with_capacity(tsv::CHUNK + 1024))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
