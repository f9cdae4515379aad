//! Write streams: the partitions a stream reads (one at a time, or several side by side) and
//! the one writer task that commits their batches in order, with bounded channels between.

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
use crate::report::Stats;
use crate::sink::{Batch, BatchBuilder, MysqlSink, OpenBatch};
use crate::source::{PartitionReader, ResolvedRange};

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

/// One write stream: takes partitions from `queue` one after another and reads each into the
/// same writer task. The stream's batches reach the server as one sequence of transactions,
/// each carrying its own partition's checkpoint, and the next partition is read while the
/// previous one's last batch commits.
pub(super) async fn run_stream(
    cfg: &Config,
    queue: &std::sync::Mutex<VecDeque<(PartitionReader, BatchBuilder)>>,
    fan_in: usize,
    converter: &RowConverter,
    writer: Writer,
    stats: &Stats,
    shutdown: &CancellationToken,
) -> Vec<(ResolvedRange, Result<()>)> {
    let (tx, rx) = mpsc::channel::<Handoff>(BATCHES_IN_FLIGHT);
    let write = tokio::spawn(write_batches(writer, rx).in_current_span());
    // A LOAD DATA batch streams to the server from its first row only while it is the one
    // batch being filled: batches of partitions read side by side go over whole, in turn.
    let stream_early = fan_in == 1;
    let mut reading = futures::stream::FuturesUnordered::new();
    let mut read = Vec::new();
    let mut stopping = false;
    loop {
        while !stopping && reading.len() < fan_in && !shutdown.is_cancelled() {
            let next = queue.lock().expect("partition queue lock").pop_front();
            let Some((reader, builder)) = next else { break };
            let span = tracing::info_span!("partition", topic = %reader.partition().topic);
            let tx = &tx;
            let converter = converter.clone();
            reading.push(
                read_partition(
                    cfg,
                    reader,
                    converter,
                    builder,
                    tx,
                    stream_early,
                    stats,
                    shutdown,
                )
                .instrument(span.clone())
                .map(move |(reader, result)| (reader, span, result)),
            );
        }
        let Some((reader, span, result)) = reading.next().await else {
            break;
        };
        // A writer that stopped (its error follows) or a reader that failed: no new partition.
        stopping |= result.is_err() || tx.is_closed();
        read.push((reader, span, result));
    }
    drop(reading);
    // Closing the channel ends the writer after the last batch; a batch left open by a failed
    // reader is abandoned (its early load rolled back) rather than waited on.
    drop(tx);
    let mut write_result = write.await.unwrap_or_else(|e| {
        Err(Error::Sink(format!(
            "a writer task stopped unexpectedly: {e}"
        )))
    });
    let last = read.len().saturating_sub(1);
    read.into_iter()
        .enumerate()
        .map(|(i, (reader, span, read_result))| {
            // The writer's error goes with the partition it was writing: the last one read.
            let result = if i == last {
                std::mem::replace(&mut write_result, Ok(())).and(read_result)
            } else {
                read_result
            };
            let resolved = reader.resolved();
            stats.partition_progress(reader.partition().checkpoint_index(), |p| {
                p.done = result.is_ok() && resolved.stopped_because.is_some();
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

/// Reads one partition to its end bound into `tx`, converting and batching as it goes.
/// Returns the reader (for its resolved range) and how reading ended; a writer that went
/// away ends reading early with `Ok` (the writer's error is the one to report).
#[allow(clippy::too_many_arguments)]
async fn read_partition(
    cfg: &Config,
    mut reader: PartitionReader,
    mut converter: RowConverter,
    builder: BatchBuilder,
    tx: &mpsc::Sender<Handoff>,
    stream_early: bool,
    stats: &Stats,
    shutdown: &CancellationToken,
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
    let read = async {
        let mut builder = builder;
        // One cancellation future for the whole loop, polled only while no message is ready;
        // a ready stream is checked for shutdown every SHUTDOWN_CHECK_EVERY messages instead
        // (`is_cancelled` takes a lock, a fresh `cancelled()` future per message costs more).
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let mut since_check = 0u32;
        loop {
            since_check += 1;
            if since_check >= SHUTDOWN_CHECK_EVERY {
                since_check = 0;
                if shutdown.is_cancelled() {
                    break;
                }
                // Buffered messages never make this loop wait, and pulsar-rs's channels are
                // not tokio's, so nothing else makes it yield: without this, the writer task
                // it wakes (streaming the batch to MySQL) waits in this worker's LIFO slot
                // until the whole buffer is read.
                tokio::task::yield_now().await;
            }
            let next = reader.next();
            tokio::pin!(next);
            // Buffered messages are taken at once: no timer per message.
            let next = match next.as_mut().now_or_never() {
                Some(next) => next?,
                None => loop {
                    let starving = builder.fed_at().map(|at| at + OPEN_BATCH_MAX_WAIT);
                    tokio::select! {
                        biased;
                        next = &mut next => break next?,
                        _ = &mut cancelled => break None,
                        () = tokio::time::sleep_until(starving.unwrap_or_else(tokio::time::Instant::now)),
                            if starving.is_some() =>
                        {
                            // A LOAD DATA statement waiting for rows holds the table's AUTO-INC
                            // lock and runs into the server's net_read_timeout: end it here.
                            tracing::debug!("closing a LOAD DATA batch the reader cannot feed");
                            if tx.send(Handoff::Closed(builder.take())).await.is_err() {
                                return Ok(()); // the writer failed; its error is reported
                            }
                        }
                    }
                },
            };
            let Some(msg) = next else { break };
            stats.records_read.fetch_add(1, Relaxed);
            read_here += 1;
            last_publish = Some(msg.publish_time);
            stats
                .bytes_read
                .fetch_add(msg.payload.len() as u64, Relaxed);
            let converted = match (msg.chunk, msg.too_large) {
                (Some((id, of)), _) => Err(BadRecord::chunk(id, of)),
                (None, Some(size)) => Err(BadRecord::too_large(
                    size,
                    pulsar::consumer::MAX_UNCOMPRESSED,
                )),
                (None, None) => converter
                    .convert(&msg.payload, |values| builder.push_row(values))
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
                        BadRecordPolicy::DeadLetter => builder.push_dead_letter(&msg, bad),
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
            builder.consumed(msg.position, msg.publish_time);
            if let Some(opened) = builder.take_opened().filter(|_| stream_early) {
                if tx.send(Handoff::Opened(opened)).await.is_err() {
                    return Ok(()); // the writer failed; its error is the one to report
                }
            }
            if builder.is_full() {
                stats.partition_progress(index, |p| {
                    p.records_read = read_here;
                    p.last_publish_time = last_publish;
                });
                if tx.send(Handoff::Closed(builder.take())).await.is_err() {
                    return Ok(()); // the writer failed; its error is the one to report
                }
            }
        }
        if !builder.is_empty() {
            let _ = tx.send(Handoff::Closed(builder.take())).await;
        }
        Ok(())
    };
    let result = read.await;
    stats.partition_progress(index, |p| {
        p.records_read = read_here;
        p.last_publish_time = last_publish;
    });
    (reader, result)
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
        tracing::debug!(partition = batch.partition, rows = batch.rows, last = ?batch.last, "batch committed");
    }
    Ok(())
}
