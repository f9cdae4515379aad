//! Write streams: the partitions a stream reads (one at a time, or several side by side) into
//! one batch at a time, and the one writer task that commits those batches in order, with a
//! bounded channel between.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{BadRecordPolicy, Config, EndBound};
use crate::error::{Error, Result};
use crate::records::{BadRecord, RowConverter};
use crate::report::{Mark, Stats};
use crate::sink::{Batch, BatchBuilder, MysqlSink, OpenBatch};
use crate::source::{
    Partition, PartitionReader, Position, ResolvedRange, SourceMessage, MAX_ENTRY_BYTES,
};

use super::lockstep::Lockstep;

/// Batches queued between a partition's reader and its writer task, besides the one being
/// written and the one being filled: enough to ride out a slow commit, little memory.
const BATCHES_IN_FLIGHT: usize = 2;

/// What a partition's reader hands its writer, in order.
enum Handoff {
    /// A LOAD DATA batch got its first row: the writer may start streaming it to the server.
    /// Its `Closed` follows.
    Opened(OpenBatch),
    /// A complete batch, ready to commit.
    Closed(Batch),
}

/// How long an open LOAD DATA batch may go without new rows before the reader closes it (its
/// statement holds the table's AUTO-INC lock, and the server gives up on a client that sends
/// nothing for `net_read_timeout`, 30 s by default): a broker restart or a slow partition
/// then costs a smaller batch, not a failed one.
const OPEN_BATCH_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many ready messages a partition reads between two looks at the shutdown token.
const SHUTDOWN_CHECK_EVERY: u32 = 1024;

/// What a partition's writer task needs; cloned into the task, which runs on its own so that
/// converting the next batch and committing the last one use both cores.
#[derive(Clone)]
pub(super) struct Writer {
    pub(super) sink: Arc<MysqlSink>,
    pub(super) job_id: Arc<str>,
    pub(super) range_key: Arc<str>,
    pub(super) dry_run: bool,
    pub(super) stats: Arc<Stats>,
}

/// What the partitions of one write stream share: the batch they fill together, the handoffs
/// waiting for the writer in the order they were made, and the channel to it.
struct Shared {
    filling: std::sync::Mutex<Filling>,
    /// Held while handoffs go out, so that they reach the writer in the order they were made
    /// whichever reader sends them.
    tx: tokio::sync::Mutex<mpsc::Sender<Handoff>>,
    /// Stops the stream's readers: a signal (a child of the run's token), a reader that
    /// failed, or a writer that went away.
    stop: CancellationToken,
    /// Keeps partitions read side by side together in publish time (None: one at a time).
    lockstep: Option<Lockstep>,
}

/// The batch being filled and the handoffs made but not sent yet.
struct Filling {
    builder: BatchBuilder,
    outbox: VecDeque<Handoff>,
}

impl Filling {
    /// Closes the batch being filled, if anything was consumed into it.
    fn close(&mut self) {
        if !self.builder.is_empty() {
            let batch = self.builder.take();
            self.outbox.push_back(Handoff::Closed(batch));
        }
    }
}

impl Shared {
    /// Runs `f` on the batch being filled (never across an await).
    fn with<T>(&self, f: impl FnOnce(&mut Filling) -> T) -> T {
        f(&mut self.filling.lock().expect("batch lock"))
    }

    /// Sends the handoffs waiting, in order; false (and the stream stops) if the writer went
    /// away: its error is the one to report.
    async fn flush(&self) -> bool {
        let tx = self.tx.lock().await;
        loop {
            let Some(handoff) = self.with(|f| f.outbox.pop_front()) else {
                return true;
            };
            if tx.send(handoff).await.is_err() {
                self.stop.cancel();
                return false;
            }
        }
    }

    /// Closes the batch being filled and sends it.
    async fn close_batch(&self) -> bool {
        self.with(Filling::close);
        self.flush().await
    }
}

/// One write stream: takes partitions from `queue` one after another, up to `fan_in` side by
/// side, and reads them into one batch at a time, which its writer task commits with the
/// checkpoints of every partition in it. The stream's batches reach the server as one
/// sequence of transactions; a LOAD DATA batch streams from its first row, whichever
/// partition it comes from.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_stream(
    cfg: &Config,
    queue: &std::sync::Mutex<VecDeque<(PartitionReader, Option<Position>)>>,
    fan_in: usize,
    (stream, streams): (usize, usize),
    converter: &RowConverter,
    writer: Writer,
    stats: &Stats,
    shutdown: &CancellationToken,
) -> Vec<(ResolvedRange, Result<()>)> {
    let (tx, rx) = mpsc::channel::<Handoff>(BATCHES_IN_FLIGHT);
    let mut builder = writer.sink.batch_builder(converter.columns(), streams);
    // Streams started together would fill their first batches at the same pace.
    builder.stagger(stream, streams);
    let write = tokio::spawn(write_batches(writer, rx).in_current_span());
    let shared = Shared {
        filling: std::sync::Mutex::new(Filling {
            builder,
            outbox: VecDeque::new(),
        }),
        tx: tokio::sync::Mutex::new(tx),
        stop: shutdown.child_token(),
        lockstep: (fan_in > 1).then(|| {
            let queued = queue.lock().expect("partition queue lock").len();
            Lockstep::new(fan_in.min(queued))
        }),
    };
    let mut reading = futures::stream::FuturesUnordered::new();
    let mut read = Vec::new();
    let mut failed = false;
    loop {
        while reading.len() < fan_in && !shared.stop.is_cancelled() {
            let next = queue.lock().expect("partition queue lock").pop_front();
            let Some((reader, after)) = next else { break };
            // A partition joins between batches: a LOAD DATA batch already streaming has
            // fenced the partitions it knew when it opened. The closed batch goes out with
            // the new partition's first flush: this loop never waits for the channel, whose
            // lock a reader it does not poll meanwhile may hold.
            let partition = reader.partition();
            shared.with(|f| {
                f.close();
                f.builder
                    .track(&partition.topic, partition.checkpoint_index(), after)
            });
            let span = tracing::info_span!("partition", topic = %partition.topic);
            let converter = converter.clone();
            reading.push(
                read_partition(cfg, reader, converter, &shared, stats)
                    .instrument(span.clone())
                    .map(move |(reader, result)| (reader, span, result)),
            );
        }
        let Some((reader, span, result)) = reading.next().await else {
            break;
        };
        if result.is_err() {
            // The batch holds rows of the failed partition: the stream stops, and the batch
            // is abandoned (its early load rolled back).
            failed = true;
            shared.stop.cancel();
        }
        let index = reader.partition().checkpoint_index();
        shared.with(|f| f.builder.retire(index));
        read.push((reader, span, result));
    }
    drop(reading);
    if !failed {
        shared.close_batch().await;
    }
    if let Some(lockstep) = &shared.lockstep {
        stats.timing.lockstep_held(lockstep.held());
    }
    // Closing the channel ends the writer after the last batch.
    drop(shared);
    let write_result = write.await.unwrap_or_else(|e| {
        Err(Error::Sink(format!(
            "a writer task stopped unexpectedly: {e}"
        )))
    });
    settle(read, write_result, stats)
}

/// Each partition's resolved range and how it ended, logged and counted.
fn settle(
    read: Vec<(PartitionReader, tracing::Span, Result<()>)>,
    mut write_result: Result<()>,
    stats: &Stats,
) -> Vec<(ResolvedRange, Result<()>)> {
    let written = write_result.is_ok();
    let last = read.len().saturating_sub(1);
    read.into_iter()
        .enumerate()
        .map(|(i, (reader, span, read_result))| {
            // The writer's error goes with the partition read last (its batch may hold rows
            // of every partition the stream read).
            let result = if i == last {
                std::mem::replace(&mut write_result, Ok(())).and(read_result)
            } else {
                read_result
            };
            let resolved = reader.resolved();
            stats.partition_progress(reader.partition().checkpoint_index(), |p| {
                p.done = written && result.is_ok() && resolved.stopped_because.is_some();
            });
            match &result {
                Ok(()) => {
                    tracing::info!(parent: &span, stopped = ?resolved.stopped_because, reconnects = reader.reconnects(), "partition done")
                }
                Err(e) => tracing::error!(parent: &span, error = %e, "partition failed"),
            }
            stats.retries.fetch_add(reader.reconnects(), Relaxed);
            (resolved, result)
        })
        .collect()
}

/// Reads one partition to its end bound into the stream's batch, converting as it goes.
/// Returns the reader (for its resolved range) and how reading ended; a writer that went
/// away ends reading early with `Ok` (the writer's error is the one to report).
async fn read_partition(
    cfg: &Config,
    mut reader: PartitionReader,
    mut converter: RowConverter,
    shared: &Shared,
    stats: &Stats,
) -> (PartitionReader, Result<()>) {
    let partition = reader.partition().clone();
    let index = partition.checkpoint_index();
    let end_time = match cfg.source.to {
        EndBound::PublishTime(ms) => ms,
        _ => chrono::Utc::now().timestamp_millis(),
    };
    stats.partition_progress(index, |p| p.end_time = end_time);
    let mut read_here = 0u64;
    let mut last_publish = None;
    let entries_before = reader.entries();
    // The publish time this reader last had its lockstep turn at: the rest of a broker entry
    // (its messages share one publish time) goes without asking again. Cleared whenever the
    // reader waits for the broker, which ends its hold on the others soon.
    let mut turn_at = None;
    let read = async {
        // A batch closed for this partition to join.
        if !shared.flush().await {
            return Ok(());
        }
        // One cancellation future for the whole loop, polled only while no message is ready;
        // a ready stream is checked for shutdown every SHUTDOWN_CHECK_EVERY messages instead
        // (`is_cancelled` takes a lock, a fresh `cancelled()` future per message costs more).
        let cancelled = shared.stop.cancelled();
        tokio::pin!(cancelled);
        let mut since_check = 0u32;
        loop {
            since_check += 1;
            if since_check >= SHUTDOWN_CHECK_EVERY {
                since_check = 0;
                if shared.stop.is_cancelled() {
                    break;
                }
                // Buffered messages never make this loop wait, and pulsar-rs's channels are
                // not tokio's, so nothing else makes it yield: without this, the writer task
                // it wakes (streaming the batch to MySQL) waits in this worker's LIFO slot
                // until the whole buffer is read.
                tokio::task::yield_now().await;
            }
            let msg = match reader.next_ready() {
                Some(msg) => msg,
                None => {
                    let next =
                        next_message(&mut reader, index, shared, &mut cancelled, &mut turn_at);
                    match next.await? {
                        Some(msg) => msg,
                        None => break,
                    }
                }
            };
            if let Some(lockstep) = &shared.lockstep {
                if turn_at != Some(msg.publish_time) {
                    tokio::select! {
                        biased;
                        () = lockstep.turn(index, msg.publish_time) => {}
                        () = cancelled.as_mut() => break,
                    }
                    turn_at = Some(msg.publish_time);
                }
            }
            if read_here == 0 {
                stats.timing.mark(Mark::FirstRecord, Instant::now());
            }
            stats.records_read.fetch_add(1, Relaxed);
            read_here += 1;
            last_publish = Some(msg.publish_time);
            stats
                .bytes_read
                .fetch_add(msg.payload.len() as u64, Relaxed);
            let handoffs = shared.with(|f| {
                consume(cfg, &partition, &msg, &mut converter, &mut f.builder, stats)?;
                let before = f.outbox.len();
                if let Some(opened) = f.builder.take_opened() {
                    f.outbox.push_back(Handoff::Opened(opened));
                }
                if f.builder.is_full() {
                    f.close();
                }
                Ok::<_, Error>(f.outbox.len() > before)
            })?;
            if handoffs {
                stats.partition_progress(index, |p| {
                    p.records_read = read_here;
                    p.last_publish_time = last_publish;
                });
                if !shared.flush().await {
                    return Ok(()); // the writer failed; its error is the one to report
                }
            }
        }
        Ok(())
    };
    let result = read.await;
    if let Some(lockstep) = &shared.lockstep {
        lockstep.done(index);
    }
    stats.timing.mark(Mark::ReadingDone, Instant::now());
    stats
        .entries_read
        .fetch_add(reader.entries() - entries_before, Relaxed);
    stats.partition_progress(index, |p| {
        p.records_read = read_here;
        p.last_publish_time = last_publish;
    });
    (reader, result)
}

/// The partition's next message; None at its end, or when the stream stops (a writer that
/// went away included: its error is the one to report). Buffered messages are taken at once,
/// without a timer; while it waits, a LOAD DATA batch nobody feeds is closed, and the reader
/// holds the lockstep only a while (`turn_at` cleared: its next message asks for a turn
/// again).
async fn next_message(
    reader: &mut PartitionReader,
    index: i32,
    shared: &Shared,
    cancelled: &mut std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    turn_at: &mut Option<i64>,
) -> Result<Option<SourceMessage>> {
    let next = reader.next();
    tokio::pin!(next);
    if let Some(next) = next.as_mut().now_or_never() {
        return next;
    }
    // Waiting for the broker: the other partitions wait for this one only a while.
    if let Some(lockstep) = &shared.lockstep {
        lockstep.waiting(index);
        *turn_at = None;
    }
    loop {
        let starving = shared
            .with(|f| f.builder.fed_at())
            .map(|at| at + OPEN_BATCH_MAX_WAIT);
        tokio::select! {
            biased;
            next = &mut next => return next,
            _ = cancelled.as_mut() => return Ok(None),
            () = tokio::time::sleep_until(starving.unwrap_or_else(tokio::time::Instant::now)),
                if starving.is_some() =>
            {
                // A LOAD DATA statement waiting for rows holds the table's AUTO-INC lock and
                // runs into the server's net_read_timeout: end it here, unless another
                // partition of the stream fed it meanwhile.
                let closed = shared.with(|f| {
                    let due = f.builder.fed_at().is_some_and(|at| {
                        at + OPEN_BATCH_MAX_WAIT <= tokio::time::Instant::now()
                    });
                    if due {
                        tracing::debug!("closing a LOAD DATA batch the readers cannot feed");
                        f.close();
                    }
                    due
                });
                if closed && !shared.flush().await {
                    return Ok(None);
                }
            }
        }
    }
}

/// Converts one message into the batch (a row, or a bad record as the policy says) and marks
/// it consumed; an error when the policy or `--max-bad-records` stops the run.
fn consume(
    cfg: &Config,
    partition: &Partition,
    msg: &SourceMessage,
    converter: &mut RowConverter,
    builder: &mut BatchBuilder,
    stats: &Stats,
) -> Result<()> {
    let index = partition.checkpoint_index();
    let converted = match (msg.chunk, msg.too_large) {
        (Some((id, of)), _) => Err(BadRecord::chunk(id, of)),
        (None, Some(size)) => Err(BadRecord::too_large(size, MAX_ENTRY_BYTES)),
        (None, None) => converter
            .convert(&msg.payload, |values| builder.push_row(index, values))
            .and_then(|pushed| pushed),
    };
    match converted {
        Ok(()) => {
            stats.rows_converted.fetch_add(1, Relaxed);
        }
        Err(bad) => {
            let total = stats.bad_record(bad.reason);
            let place = format!(
                "{} message {} (published {})",
                partition.topic, msg.position, msg.publish_time
            );
            match cfg.records.on_bad_record {
                BadRecordPolicy::Fail => {
                    return Err(Error::BadRecords(format!(
                        "bad record at {place}: {bad}; nothing of its batch was written \
                         (use --on-bad-record skip or dead-letter to go on past bad records)"
                    )))
                }
                BadRecordPolicy::Skip => {
                    tracing::warn!(message = %msg.position, reason = %bad, "skipping bad record");
                }
                BadRecordPolicy::DeadLetter => {
                    let at = (index, msg.position, msg.publish_time);
                    builder.push_dead_letter(at, &msg.payload, bad)
                }
            }
            if total > cfg.records.max_bad_records {
                return Err(Error::BadRecords(format!(
                    "{total} bad records exceed --max-bad-records {} (last one at {place}); \
                     batches before it were committed and checkpointed",
                    cfg.records.max_bad_records
                )));
            }
        }
    }
    builder.consumed(index, msg.position, msg.publish_time);
    Ok(())
}

async fn write_batches(w: Writer, mut rx: mpsc::Receiver<Handoff>) -> Result<()> {
    while let Some(handoff) = rx.recv().await {
        // The batch duration runs from the batch's last row (when it is closed) to its commit:
        // the part of writing that reading does not hide, for both strategies.
        let (batch, early, closed_at) = match handoff {
            Handoff::Closed(batch) => (batch, None, Instant::now()),
            Handoff::Opened(_) if w.dry_run => continue,
            Handoff::Opened(open) => {
                // Stream the batch while the reader fills it; its Closed comes next.
                let closed = async { (rx.recv().await, Instant::now()) };
                let early = w.sink.start_load(&open, &w.job_id, &w.range_key);
                let (early, (next, closed_at)) = tokio::join!(early, closed);
                match next {
                    Some(Handoff::Closed(batch)) => (batch, Some(early), closed_at),
                    // The reader stopped without closing the batch (its error is reported);
                    // the abandoned load was rolled back.
                    _ => return Ok(()),
                }
            }
        };
        w.stats.batches.fetch_add(1, Relaxed);
        if w.dry_run {
            continue;
        }
        let done = w
            .sink
            .commit(&batch, &w.job_id, &w.range_key, early)
            .await?;
        w.stats
            .batch_seconds
            .observe(closed_at.elapsed().as_secs_f64());
        w.stats.rows_written.fetch_add(done.rows_written, Relaxed);
        w.stats.duplicates.fetch_add(done.duplicates, Relaxed);
        w.stats.dead_lettered.fetch_add(done.dead_lettered, Relaxed);
        w.stats.retries.fetch_add(done.retries, Relaxed);
        w.stats
            .timing
            .batch(done.first_write, done.input_wait, done.commit);
        tracing::debug!(
            partitions = %batch.partitions(),
            rows = batch.rows,
            streamed_ms = done.first_write.map(|at| at.elapsed().as_millis()),
            input_wait_ms = done.input_wait.as_millis(),
            commit_ms = done.commit.as_millis(),
            "batch committed"
        );
    }
    Ok(())
}
