//! Wires source -> records -> sink for one run.
//!
//! The readers of the first partitions open first, so every end bound is taken when the run
//! starts. Partitions are then spread over write streams (one connection each; how many, the
//! server's AUTO-INC lock mode decides unless `--writers` says): a stream reads its partitions
//! one after another into one writer task, so reading+converting and writing overlap through
//! a bounded channel (two batches in flight at most), also across a partition's end, which
//! keeps memory flat whatever the size of the range. Every batch holds one partition's rows
//! and commits with that partition's checkpoint, and a partition's batches commit in order,
//! so its checkpoint only ever moves forward over committed rows.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::config::{
    BadRecordPolicy, Config, EndBound, RecordsConfig, SourceConfig, StartBound, WriteStrategy,
    PARALLEL_WRITE_STREAMS,
};
use crate::error::{Error, ExitCode, Result};
use crate::records::{BadRecord, RowConverter};
use crate::report::{RangeReport, Stats, Summary};
use crate::sink::checkpoint::{self, Checkpoint, JobLock};
use crate::sink::OpenBatch;
use crate::sink::{Batch, BatchBuilder, MysqlSink};
use crate::source::bounds::StopReason;
use crate::source::ResolvedRange;
use crate::source::{PartitionReader, PulsarSource};

/// Batches queued between a partition's reader and its writer task, besides the one being
/// written and the one being filled: enough to ride out a slow commit, little memory.
const BATCHES_IN_FLIGHT: usize = 2;

/// Most partitions read at once in a run (each holds a receiver queue and a batch being
/// filled).
const READERS_AT_ONCE: usize = 16;

/// What a partition's reader hands its writer, in order.
enum Handoff {
    /// A LOAD DATA batch got its first row: the writer may start streaming it to the server.
    /// Its `Closed` follows.
    Opened(OpenBatch),
    /// A complete batch, ready to commit.
    Closed(Batch),
}

/// How often the job lock's connection is asked whether it still holds the lock (which also
/// keeps it from idling out).
const LOCK_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

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
struct Writer {
    sink: Arc<MysqlSink>,
    job_id: Arc<str>,
    range_key: Arc<str>,
    dry_run: bool,
    stats: Arc<Stats>,
}

/// Runs one job over its range and always returns a summary; `summary.exit_code` says how it
/// ended. `stats` is updated live (the metrics outputs read it during the run); `shutdown`
/// stops reading, and the batch in flight is committed before returning.
pub async fn run(cfg: &Config, stats: Arc<Stats>, shutdown: CancellationToken) -> Summary {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let mut resolved = Vec::new();
    let mut write_strategy = None;
    let result = run_inner(cfg, &shutdown, &stats, &mut resolved, &mut write_strategy).await;
    let result = match result {
        Ok(()) if shutdown.is_cancelled() => Err(Error::Interrupted),
        other => other,
    };
    let elapsed = clock.elapsed();
    let rows_written = stats.rows_written.load(Relaxed);
    let records_read = stats.records_read.load(Relaxed);
    let (outcome, exit_code, error) = match &result {
        Ok(()) if records_read == 0 && rows_written == 0 => {
            ("nothing_to_do".to_string(), ExitCode::Success, None)
        }
        Ok(()) => ("success".to_string(), ExitCode::Success, None),
        Err(e) => (e.outcome().to_string(), e.exit_code(), Some(e.to_string())),
    };
    Summary {
        job_id: cfg.job_id.clone(),
        topic: cfg.source.topic.0.clone(),
        table: cfg.sink.table.clone(),
        range: RangeReport {
            from: cfg.source.from.to_string(),
            to: cfg.source.to.to_string(),
            partitions: resolved,
        },
        dry_run: cfg.dry_run,
        write_strategy,
        records_read,
        bytes_read: stats.bytes_read.load(Relaxed),
        rows_converted: stats.rows_converted.load(Relaxed),
        rows_written,
        duplicates_skipped: stats.duplicates.load(Relaxed),
        bad_records: stats.bad_total.load(Relaxed),
        bad_records_by_reason: stats.bad_by_reason(),
        dead_lettered: stats.dead_lettered.load(Relaxed),
        batches: stats.batches.load(Relaxed),
        retries: stats.retries.load(Relaxed),
        started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ended_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        duration_ms: elapsed.as_millis() as u64,
        rows_per_sec: if elapsed.as_secs_f64() > 0.0 {
            ((if cfg.dry_run {
                stats.rows_converted.load(Relaxed)
            } else {
                rows_written
            }) as f64
                / elapsed.as_secs_f64())
            .round()
        } else {
            0.0
        },
        outcome,
        exit_code: exit_code as i32,
        error,
    }
}

/// The converter from records to rows of the sink's table, or why the mapping does not fit it.
pub fn converter_for(sink: &MysqlSink, records: &RecordsConfig) -> Result<RowConverter> {
    RowConverter::new(
        sink.table_columns(),
        records.columns.as_deref(),
        records.delimiter,
        records.escape,
        records.null_literal.as_deref(),
    )
    .map_err(|e| Error::Schema(format!("table {}: {e}", sink.table())))
}

async fn run_inner(
    cfg: &Config,
    shutdown: &CancellationToken,
    stats: &Arc<Stats>,
    resolved: &mut Vec<ResolvedRange>,
    write_strategy: &mut Option<WriteStrategy>,
) -> Result<()> {
    cfg.validate()?;
    // Side by side: neither side needs the other, and both are round trips on the critical
    // path of a short run. The Pulsar side is a task of its own, so it progresses on another
    // worker while this one does the MySQL side's round trips (joined in one task, it waited
    // for the MySQL side's whole conversation). The first error ends both: dropping the
    // handle aborts the task.
    let source = cfg.source.clone();
    // Subscribed at once: the partitions the first write streams read. With the number of
    // streams left to the server, one (LOAD DATA on MariaDB); a server that allows more gets
    // the others subscribed when their turn comes, a few milliseconds later.
    let writers = cfg.sink.writers.unwrap_or(1);
    let pulsar_side = AbortOnDropHandle::new(tokio::spawn(
        async move { open_readers(&source, writers).await }.in_current_span(),
    ));
    let pulsar_side = async {
        pulsar_side.await.unwrap_or_else(|e| {
            Err(Error::Source(format!(
                "opening the readers of {} stopped unexpectedly: {e}",
                cfg.source.topic
            )))
        })
    };
    let mysql_side = async {
        let sink = Arc::new(MysqlSink::connect(&cfg.sink, cfg.dry_run).await?);
        // Each setup query is a single round trip, but none of them has a deadline of its own:
        // a server that stops answering must not hold the run here.
        let limit = cfg.sink.io_timeout * 4;
        match tokio::time::timeout(limit, claim_range(cfg, &sink)).await {
            Ok(Ok(claim)) => Ok((sink, claim)),
            Ok(Err(e)) => {
                sink.close().await;
                Err(e)
            }
            Err(_) => {
                sink.close().await;
                Err(Error::Sink(format!(
                    "MySQL did not answer while taking the job lock and reading checkpoints \
                     within {}s (a network partition, or a server that stopped responding)",
                    limit.as_secs()
                )))
            }
        }
    };
    let ((sink, claim), readers) = tokio::try_join!(mysql_side, pulsar_side)?;
    *write_strategy = Some(sink.write_strategy());
    let result = run_with_sink(cfg, shutdown, stats, resolved, &sink, claim, readers).await;
    sink.close().await;
    result
}

/// The Pulsar side of a run's setup: each partition's end snapshot (taken now: this is when
/// the run starts) and a reader from the range's start. Readers open before the checkpoints
/// are known, so the broker's first delivery overlaps the MySQL setup; a partition with a
/// checkpoint is moved to it afterwards ([`PartitionReader::resume_after`]).
async fn open_readers(cfg: &SourceConfig, writers: usize) -> Result<Vec<PartitionReader>> {
    let source = PulsarSource::connect(cfg).await?;
    let partitions = source.partitions().await?;
    // The first `writers` partitions are read at once: they subscribe now, so the broker's
    // first delivery overlaps the MySQL setup. The others subscribe when their turn comes, so
    // no receiver queue fills for a partition that waits (memory follows the partitions being
    // read, not all of them).
    futures::future::try_join_all(
        partitions
            .into_iter()
            .enumerate()
            .map(|(i, p)| source.open_from_start(p, i < writers)),
    )
    .await
}

/// What a run holds on the MySQL side before it reads: the row converter for the table, the
/// job's lock (none in a dry run) and the range's checkpoints, read under that lock.
struct Claim {
    converter: RowConverter,
    lock: Option<JobLock>,
    checkpoints: HashMap<i32, Checkpoint>,
    /// Where the job's previous window (the one ending at this window's `from`) stopped.
    previous_window: HashMap<i32, crate::source::Position>,
}

async fn claim_range(cfg: &Config, sink: &MysqlSink) -> Result<Claim> {
    let converter = converter_for(sink, &cfg.records)?;
    let mut lock = if cfg.dry_run {
        None
    } else {
        Some(JobLock::acquire(sink.acquire().await?, &cfg.job_id).await?)
    };
    let range_key = cfg.range_key();
    let (checkpoints, previous_window) = {
        let mut own = None;
        let conn = match lock.as_mut() {
            Some(lock) => lock.connection(),
            None => &mut **own.insert(sink.acquire().await?),
        };
        if cfg.reprocess && !cfg.dry_run {
            let n = checkpoint::clear(conn, &cfg.job_id, &range_key).await?;
            tracing::info!(cleared = n, "--reprocess: forgot this range's checkpoints");
        }
        let checkpoints = if cfg.reprocess {
            Default::default()
        } else {
            checkpoint::load(conn, &cfg.job_id, &range_key, !cfg.dry_run).await?
        };
        let previous_window = match cfg.source.from {
            StartBound::PublishTime(from) => {
                checkpoint::window_ends(conn, &cfg.job_id, from).await?
            }
            _ => HashMap::new(),
        };
        (checkpoints, previous_window)
    };
    Ok(Claim {
        converter,
        lock,
        checkpoints,
        previous_window,
    })
}

async fn run_with_sink(
    cfg: &Config,
    shutdown: &CancellationToken,
    stats: &Arc<Stats>,
    resolved: &mut Vec<ResolvedRange>,
    sink: &Arc<MysqlSink>,
    claim: Claim,
    mut readers: Vec<PartitionReader>,
) -> Result<()> {
    let Claim {
        converter,
        lock,
        checkpoints,
        previous_window,
    } = claim;
    let range_key = cfg.range_key();
    tracing::info!(
        job_id = %cfg.job_id, topic = %cfg.source.topic, table = %sink.table(),
        from = %cfg.source.from, to = %cfg.source.to, partitions = readers.len(),
        resumed = checkpoints.len(), "run starts"
    );
    // Reading stops on a signal, or when the job lock is lost.
    let stop = shutdown.child_token();
    let keeper = lock.map(|lock| {
        lock.keep_alive(
            sink.pool().clone(),
            LOCK_CHECK_EVERY,
            cfg.sink.io_timeout,
            cfg.sink.retry_budget,
            stop.clone(),
        )
    });
    let resumed = futures::future::try_join_all(readers.iter_mut().filter_map(|reader| {
        let index = reader.partition().checkpoint_index();
        let own = checkpoints.get(&index).map(|cp| cp.position);
        match (previous_window.get(&index), own) {
            (Some(&previous_end), own) => Some(reader.chain_after(previous_end, own).boxed()),
            (None, Some(own)) => Some(reader.resume_after(own).boxed()),
            (None, None) => None,
        }
    }))
    .await;
    if let Err(e) = resumed {
        if let Some(keeper) = keeper {
            keeper.release().await;
        }
        return Err(e);
    }

    let writer = Writer {
        sink: sink.clone(),
        job_id: cfg.job_id.as_str().into(),
        range_key: range_key.as_str().into(),
        dry_run: cfg.dry_run,
        stats: stats.clone(),
    };
    let streams = if cfg.dry_run {
        cfg.sink
            .writers
            .unwrap_or(PARALLEL_WRITE_STREAMS)
            .min(readers.len())
            .max(1)
    } else {
        sink.write_streams(readers.len())
    };
    tracing::info!(
        streams,
        partitions = readers.len(),
        "write streams (--writers; by default 1 for LOAD DATA on a server whose AUTO-INC lock \
         mode makes parallel streams take turns)"
    );
    // Partitions read at once, spread over the streams: a partition's read rate is bounded by
    // the broker's entries per second on one subscription, so many partitions of small entries
    // need several readers to keep one stream busy.
    let reading = readers.len().min(READERS_AT_ONCE).max(streams);
    let fan_in = reading.div_ceil(streams);
    let mut builders: HashMap<i32, BatchBuilder> = readers
        .iter()
        .map(|reader| {
            let index = reader.partition().checkpoint_index();
            let builder = sink.batch_builder(
                converter.columns(),
                &reader.partition().topic,
                index,
                streams,
                reading,
                checkpoints.get(&index).map(|cp| cp.position),
            );
            (index, builder)
        })
        .collect();
    let queue: std::sync::Mutex<VecDeque<(PartitionReader, BatchBuilder)>> = readers
        .into_iter()
        .enumerate()
        .map(|(i, reader)| {
            let mut builder = builders
                .remove(&reader.partition().checkpoint_index())
                .expect("one builder per partition");
            // The first partitions a stream reads side by side fill their batches at the same
            // pace: staggered, their batches reach the writer one by one.
            if i < reading {
                builder.stagger(i / streams, fan_in);
            }
            (reader, builder)
        })
        .collect::<VecDeque<_>>()
        .into();
    let outcomes: Vec<(ResolvedRange, Result<()>)> =
        futures::future::join_all((0..streams).map(|_| {
            run_stream(
                cfg,
                &queue,
                fan_in,
                &converter,
                writer.clone(),
                stats,
                &stop,
            )
        }))
        .await
        .into_iter()
        .flatten()
        .chain(
            // Partitions no stream took (every stream stopped on an error first).
            queue
                .into_inner()
                .expect("partition queue lock")
                .into_iter()
                .map(|(reader, _)| (reader.resolved(), Ok(()))),
        )
        .collect();
    let mut first_error = None;
    for (range, result) in outcomes {
        resolved.push(range);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    resolved.sort_by_key(|r| r.partition);
    if first_error.is_none() && !cfg.dry_run {
        record_window_ends(cfg, sink, resolved).await;
    }
    let lost = match keeper {
        Some(keeper) => keeper.release().await,
        None => None,
    };
    if let Some(lost) = lost {
        // Its error first: batches that stopped because of it may have failed too.
        first_error = Some(lost);
    }
    first_error.map_or(Ok(()), Err)
}

/// Records where each partition of a publish-time window stopped, so the job's next window
/// starts right after it. Only a partition that saw a message at or after the window's end has
/// provably finished it; a quiet one records nothing and the next window starts there by
/// publish time. A failure here costs the next window that chaining, not this run its success.
async fn record_window_ends(cfg: &Config, sink: &MysqlSink, resolved: &[ResolvedRange]) {
    let EndBound::PublishTime(to) = cfg.source.to else {
        return;
    };
    let ended: Vec<_> = resolved
        .iter()
        .filter(|r| r.stopped_because == Some(StopReason::EndOfWindow))
        .filter_map(|r| Some((r.partition, r.last_read?)))
        .collect();
    if ended.is_empty() {
        return;
    }
    let record = async {
        let mut conn = sink.acquire().await?;
        for (partition, last_read) in ended {
            checkpoint::record_window_end(&mut conn, &cfg.job_id, to, partition, last_read)
                .await
                .map_err(|e| Error::Sink(e.to_string()))?;
        }
        Ok::<_, Error>(())
    };
    match tokio::time::timeout(cfg.sink.io_timeout, record).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot record where this window stopped; the next window will start by publish time")
        }
        Err(_) => tracing::warn!(
            "MySQL did not answer while recording where this window stopped; the next window \
             will start by publish time"
        ),
    }
}

/// One write stream: takes partitions from `queue` one after another and reads each into the
/// same writer task. The stream's batches reach the server as one sequence of transactions,
/// each carrying its own partition's checkpoint, and the next partition is read while the
/// previous one's last batch commits.
async fn run_stream(
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
