//! The batch builder: rows rendered as multi-row INSERT statements or as LOAD DATA input while
//! they are read, with the positions they cover and their dead letters, up to the row and byte
//! limits. Built from a [`Shape`] alone (no server), so both formats are unit-tested.

use std::sync::Arc;

use super::batch::{Batch, Body, OpenBatch};
use super::checkpoint::Span;
use super::dead_letter::DeadLetter;
use super::key_order::{KeyOrder, MAX_ORDERED_BYTES};
use super::schema::TableName;
use super::sql::{quote_ident, write_literal};
use super::tsv::{self, TsvData, TsvWriter};
use crate::config::{WriteMode, WriteStrategy};
use crate::range::Position;
use crate::records::{BadRecord, Column, Value};

/// How many full-size statements an INSERT batch holds at most (with `--batch-bytes` 4 MiB:
/// 16 MiB of SQL per transaction).
pub(super) const INSERT_BATCH_STATEMENTS: usize = 4;

/// What a builder needs to know to render and bound one write stream's batches: the table
/// and its mapped columns, how rows are written, and the limits (already resolved against the
/// server and the number of streams).
#[derive(Debug, Clone)]
pub struct Shape<'a> {
    pub table: &'a TableName,
    /// The columns each row's values go to, in order.
    pub mapped: &'a [Column],
    pub mode: WriteMode,
    /// `LoadData` renders LOAD DATA input, anything else INSERT statements.
    pub strategy: WriteStrategy,
    /// Rows (and dead letters) per batch.
    pub max_rows: usize,
    /// LOAD DATA: bytes per batch.
    pub max_batch_bytes: usize,
    /// INSERT: bytes per statement, and the largest statement the server accepts.
    pub max_statement_bytes: usize,
    pub max_packet_statement: usize,
    /// LOAD DATA: the mapped column that alone is the table's clustered index, when it holds
    /// integers: rows out of its order are sent sorted ([`KeyOrder`]).
    pub order_by: Option<usize>,
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
    /// The statements' head (`INSERT [IGNORE] INTO t (cols) VALUES `) and tail (the upsert's
    /// `ON DUPLICATE KEY UPDATE`) for `shape`.
    fn new(shape: &Shape<'_>) -> InsertRows {
        let cols: Vec<String> = shape.mapped.iter().map(|c| quote_ident(&c.name)).collect();
        let verb = match shape.mode {
            WriteMode::IgnoreDuplicates => "INSERT IGNORE INTO",
            _ => "INSERT INTO",
        };
        let head = format!(
            "{verb} {} ({}) VALUES ",
            shape.table.quoted(),
            cols.join(",")
        );
        let tail = match shape.mode {
            WriteMode::Upsert => format!(
                " ON DUPLICATE KEY UPDATE {}",
                cols.iter()
                    .map(|c| format!("{c}=VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => String::new(),
        };
        InsertRows {
            head,
            tail,
            max_statement_bytes: shape.max_statement_bytes,
            max_packet_statement: shape.max_packet_statement,
            current: String::new(),
            rows_in_current: 0,
            finished_bytes: 0,
            row: String::new(),
        }
    }

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
    /// Sends the rows in the table's key order when they come out of it (a table whose
    /// clustered index is one integer column).
    order: Option<KeyOrder>,
}

impl TsvRows {
    fn push(&mut self, partition: i32, values: &[Value<'_>]) {
        let (writer, _) = self.open.get_or_insert_with(|| {
            let (writer, data) = tsv::tsv_batch();
            self.opened = Some(OpenBatch {
                statement: self.statement.clone(),
                data: data.clone(),
                fenced: Vec::new(), // set by BatchBuilder::take_opened
            });
            (writer, data)
        });
        let start = self.pending.len();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.pending.push(b'\t');
            }
            tsv::write_tsv_field(&mut self.pending, v);
        }
        self.pending.push(b'\n');
        if let Some(order) = &mut self.order {
            order.push(partition, values, &mut self.pending, start);
        }
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
        self.pending.len()
            + self.open.as_ref().map_or(0, |(w, _)| w.bytes())
            + self.order.as_ref().map_or(0, KeyOrder::held_bytes)
    }

    /// Whether the open batch holds its rows back to send them in key order when it closes.
    fn holding(&self) -> bool {
        self.order.as_ref().is_some_and(KeyOrder::holding)
    }

    /// Closes the open batch into `body`. A batch of bad records only has no rows to load:
    /// its body stays empty.
    fn close(&mut self, body: &mut Body) {
        if let Some((mut writer, data)) = self.open.take() {
            if let Some(order) = &mut self.order {
                // The rows still held, in pieces as they are sorted out of the store.
                order.close(&mut self.pending, |pending| {
                    if pending.len() >= tsv::CHUNK {
                        writer.publish(take_chunk(pending));
                    }
                });
            }
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

/// Accumulates the rows of a write stream's partitions into batches of at most
/// `--batch-rows` rows, rendered as INSERT statements no larger than the server accepts or as
/// LOAD DATA input. Partitions read side by side share one batch: one statement streams rows
/// of all of them, and its transaction carries all their checkpoints.
pub struct BatchBuilder {
    format: Format,
    max_rows: usize,
    /// The batch being filled; its spans are the partitions tracked.
    batch: Batch,
    /// The span the last record went to (records come in runs of one partition).
    current: usize,
    /// Partitions done reading, untracked once the batch being filled is taken.
    retired: Vec<i32>,
    /// Payload bytes of the batch's dead letters.
    dead_letter_bytes: usize,
    /// The first batch ends at this share (numerator, denominator) of the limits: see
    /// [`BatchBuilder::stagger`].
    first_share: Option<(usize, usize)>,
    /// Batches taken so far.
    batches_taken: u64,
}

impl BatchBuilder {
    /// A builder for batches of `shape`; the partitions it reads join with
    /// [`BatchBuilder::track`].
    pub fn new(shape: &Shape<'_>) -> BatchBuilder {
        let format = match shape.strategy {
            WriteStrategy::LoadData => Format::Tsv(TsvRows {
                statement: tsv::load_statement(shape.table, shape.mapped, shape.mode).into(),
                max_bytes: shape.max_batch_bytes,
                pending: Vec::new(),
                open: None,
                opened: None,
                // The held rows' store (under twice a batch and its largest row) keeps u32 offsets.
                order: shape
                    .order_by
                    .filter(|_| {
                        2 * (shape.max_batch_bytes + shape.max_packet_statement) < MAX_ORDERED_BYTES
                    })
                    .map(KeyOrder::new),
            }),
            _ => Format::Insert(InsertRows::new(shape)),
        };
        BatchBuilder {
            format,
            max_rows: shape.max_rows,
            batch: Batch::default(),
            current: 0,
            retired: Vec::new(),
            dead_letter_bytes: 0,
            first_share: None,
            batches_taken: 0,
        }
    }

    /// Ends this builder's first batch at `(k + 1) / n` of the limits. Streams started at
    /// the same moment would otherwise fill their first batches at the same pace and reach
    /// the server (and its AUTO-INC lock) at once; staggered, they arrive one by one.
    pub fn stagger(&mut self, k: usize, n: usize) {
        if n > 1 {
            self.first_share = Some((k % n + 1, n));
        }
    }

    /// Adds partition `partition` (of `topic`), whose checkpoint stands at `after`, to the
    /// partitions this builder's batches cover. Only between batches: a LOAD DATA batch
    /// already streaming has fenced the partitions it knew when it opened.
    pub fn track(&mut self, topic: &str, partition: i32, after: Option<Position>) {
        debug_assert!(self.is_empty(), "a partition joins between batches");
        self.retired.retain(|&p| p != partition);
        if let Format::Tsv(TsvRows {
            order: Some(order), ..
        }) = &mut self.format
        {
            order.track(partition);
        }
        if self.batch.spans.iter().any(|s| s.partition == partition) {
            return;
        }
        self.batch.spans.push(Span {
            topic: topic.into(),
            partition,
            after,
            last: None,
            consumed: 0,
        });
    }

    /// Partition `partition` has been read to its end: it leaves the batches after the one
    /// being filled.
    pub fn retire(&mut self, partition: i32) {
        self.retired.push(partition);
        if let Format::Tsv(TsvRows {
            order: Some(order),
            pending,
            ..
        }) = &mut self.format
        {
            // Its rows no longer bound the others': some held may go now.
            order.retire(partition, pending);
        }
    }

    /// Adds one converted row of partition `partition`.
    ///
    /// A row that alone exceeds the largest statement the server accepts is refused as a
    /// `too_large` bad record: written, it would fail the batch on every re-run.
    pub fn push_row(
        &mut self,
        partition: i32,
        values: &[Value<'_>],
    ) -> std::result::Result<(), BadRecord> {
        match &mut self.format {
            Format::Insert(rows) => rows
                .push(values, &mut self.batch.body)
                .map_err(|bytes| BadRecord::row_too_large(bytes, rows.max_packet_statement))?,
            Format::Tsv(rows) => rows.push(partition, values),
        }
        self.batch.rows += 1;
        Ok(())
    }

    /// Adds a record of partition `partition` at `position` that goes to the dead-letter
    /// table.
    pub fn push_dead_letter(
        &mut self,
        (partition, position, publish_time): (i32, Position, i64),
        payload: &[u8],
        reason: BadRecord,
    ) {
        self.dead_letter_bytes += payload.len();
        let topic = self.span(partition).topic.clone();
        self.batch.dead_letters.push(DeadLetter {
            topic,
            partition,
            position,
            publish_time,
            payload: payload.to_vec(),
            reason,
        });
    }

    /// Records that the message of partition `partition` at `position` has been consumed (as
    /// a row or a bad record).
    pub fn consumed(&mut self, partition: i32, position: Position, publish_time: i64) {
        let span = self.span(partition);
        span.consumed += 1;
        span.last = Some((position, publish_time));
    }

    /// The span of a tracked partition.
    fn span(&mut self, partition: i32) -> &mut Span {
        let spans = &mut self.batch.spans;
        if spans
            .get(self.current)
            .is_none_or(|s| s.partition != partition)
        {
            self.current = spans
                .iter()
                .position(|s| s.partition == partition)
                .expect("records come from tracked partitions");
        }
        &mut spans[self.current]
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
        // A batch held back for its key order starts the server only when it closes: the
        // first ones close early (1/8, 1/4, 1/2 of the limits), so that the server starts at
        // once and each batch loads while the next, twice its size, is read.
        let (max_rows, max) = match &self.format {
            Format::Tsv(rows) if self.batches_taken < 3 && rows.holding() => {
                let shift = 3 - self.batches_taken;
                ((max_rows >> shift).max(1), (max >> shift).max(1))
            }
            _ => (max_rows, max),
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
        opened.fenced = self
            .batch
            .spans
            .iter()
            .map(|s| (s.partition, s.after))
            .collect();
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
        self.batch.is_empty()
    }

    /// The batch so far; the builder starts a new one, each partition's checkpoint where this
    /// one leaves it.
    pub fn take(&mut self) -> Batch {
        match &mut self.format {
            Format::Insert(rows) => {
                rows.finish_statement(&mut self.batch.body);
                rows.finished_bytes = 0;
            }
            Format::Tsv(rows) => rows.close(&mut self.batch.body),
        }
        let retired = std::mem::take(&mut self.retired);
        let next = self
            .batch
            .spans
            .iter()
            .filter(|s| !retired.contains(&s.partition))
            .map(|s| Span {
                after: s.end(),
                last: None,
                consumed: 0,
                ..s.clone()
            })
            .collect();
        let batch = std::mem::replace(
            &mut self.batch,
            Batch {
                spans: next,
                ..Default::default()
            },
        );
        self.current = 0;
        self.dead_letter_bytes = 0;
        self.first_share = None;
        self.batches_taken += 1;
        batch
    }
}

#[cfg(test)]
mod tests;
