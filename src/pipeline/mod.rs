//! Wires source -> records -> sink for one run.
//!
//! The readers of the first partitions open first, so every end bound is taken when the run
//! starts. Partitions are then spread over write streams (one connection each; one unless
//! `--writers` says), each stream reading up to 64 partitions side by side, kept together in
//! publish time (`lockstep`), into one writer task (`stream`): reading+converting and
//! writing overlap through a bounded channel, which keeps memory flat whatever the size of
//! the range. A stream's partitions fill one batch together, which commits with the
//! checkpoint of every partition in it, and a stream's batches commit in order, so each
//! checkpoint only ever moves forward over committed rows.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::config::{Config, EndBound, RecordsConfig, SourceConfig, StartBound, WriteStrategy};
use crate::error::{Error, ExitCode, Result};
use crate::range::StopReason;
use crate::records::RowConverter;
use crate::report::{Mark, RangeReport, Stats, Summary};
use crate::sink::checkpoint::{self, Checkpoint};
use crate::sink::JobLock;
use crate::sink::MysqlSink;
use crate::source::ResolvedRange;
use crate::source::{PartitionReader, Position, PulsarSource};

mod lockstep;
mod stream;

use stream::{run_stream, Writer};

/// Most partitions read at once in a run (they share one read-ahead in bytes). A producer
/// spreads keys over every partition, so partitions read in turns, rather than side by side,
/// fill the table in several sparse passes over the key range, each splitting the pages the
/// ones before left: 64 partitions read 16 at a time loaded 1e7 seed rows into a 1,079 MiB
/// table, read all at once into 412 MiB (BENCHMARKS.md, `benches/NOTES.md`).
const READERS_AT_ONCE: usize = 64;

/// How often the job lock's connection is asked whether it still holds the lock (which also
/// keeps it from idling out).
const LOCK_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs one job over its range and always returns a summary; `summary.exit_code` says how it
/// ended. `stats` is updated live (the metrics outputs read it during the run); `shutdown`
/// stops reading, and the batch in flight is committed before returning.
pub async fn run(cfg: &Config, stats: Arc<Stats>, shutdown: CancellationToken) -> Summary {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let mut resolved = Vec::new();
    let mut learned = Learned::default();
    let result = run_inner(cfg, &shutdown, &stats, &mut resolved, &mut learned).await;
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
        write_strategy: learned.write_strategy,
        mapped_columns: learned.mapped_columns,
        records_read,
        bytes_read: stats.bytes_read.load(Relaxed),
        entries_read: stats.entries_read.load(Relaxed),
        rows_converted: stats.rows_converted.load(Relaxed),
        rows_written,
        duplicates_skipped: stats.duplicates.load(Relaxed),
        bad_records: stats.bad_total.load(Relaxed),
        bad_records_by_reason: stats.bad_by_reason(),
        dead_lettered: stats.dead_lettered.load(Relaxed),
        batches: stats.batches.load(Relaxed),
        retries: stats.retries.load(Relaxed),
        timing: stats.timing.report(),
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

/// What a run learns from the server before it writes, for its summary.
#[derive(Default)]
struct Learned {
    write_strategy: Option<WriteStrategy>,
    /// The columns the fields map to, in field order.
    mapped_columns: Vec<String>,
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
    learned: &mut Learned,
) -> Result<()> {
    cfg.validate()?;
    // Side by side: neither side needs the other, and both are round trips on the critical
    // path of a short run. The Pulsar side is a task of its own, so it progresses on another
    // worker while this one does the MySQL side's round trips (joined in one task, it waited
    // for the MySQL side's whole conversation). The first error ends both: dropping the
    // handle aborts the task.
    let source = cfg.source.clone();
    // Subscribed at once: the partitions read first; the others subscribe when their turn
    // comes.
    let at_once = cfg.sink.max_writers().max(READERS_AT_ONCE);
    let pulsar_side = AbortOnDropHandle::new(tokio::spawn(
        async move { open_readers(&source, at_once).await }.in_current_span(),
    ));
    let pulsar_side = async {
        let readers = pulsar_side.await.unwrap_or_else(|e| {
            Err(Error::Source(format!(
                "opening the readers of {} stopped unexpectedly: {e}",
                cfg.source.topic
            )))
        });
        stats.timing.mark(Mark::PulsarSetup, Instant::now());
        readers
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
    let mysql_side = async {
        let claimed = mysql_side.await;
        stats.timing.mark(Mark::MysqlSetup, Instant::now());
        claimed
    };
    let ((sink, claim), readers) = tokio::try_join!(mysql_side, pulsar_side)?;
    learned.write_strategy = Some(sink.write_strategy());
    learned.mapped_columns = claim.converter.mapped_columns();
    let result = run_with_sink(cfg, shutdown, stats, resolved, &sink, claim, readers).await;
    sink.close().await;
    result
}

/// The Pulsar side of a run's setup: each partition's end snapshot (taken now: this is when
/// the run starts) and a reader from the range's start. Readers open before the checkpoints
/// are known, so the broker's first delivery overlaps the MySQL setup; a partition with a
/// checkpoint is moved to it afterwards ([`PartitionReader::resume_after`]).
async fn open_readers(cfg: &SourceConfig, at_once: usize) -> Result<Vec<PartitionReader>> {
    let mut source = PulsarSource::connect(cfg).await?;
    let partitions = source.partitions().await?;
    source.read_at_once(partitions.len().min(at_once));
    // The first `at_once` partitions are read at once: they subscribe now, so the broker's
    // first delivery overlaps the MySQL setup. The others subscribe when their turn comes, so
    // no receiver queue fills for a partition that waits (memory follows the partitions being
    // read, not all of them).
    futures::future::try_join_all(
        partitions
            .into_iter()
            .enumerate()
            .map(|(i, p)| source.open_from_start(p, i < at_once)),
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
    let prepared = prepare(cfg, sink, &mut readers, &checkpoints, &previous_window).await;
    if let Err(e) = prepared {
        if let Some(keeper) = keeper {
            keeper.release().await;
        }
        return Err(e);
    }
    let outcomes = write(cfg, sink, stats, &converter, readers, &checkpoints, &stop).await;
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

/// Moves each reader to where its partition resumes (its checkpoint, or where the job's
/// previous window stopped) and reserves a checkpoint row for every partition without one.
async fn prepare(
    cfg: &Config,
    sink: &MysqlSink,
    readers: &mut [PartitionReader],
    checkpoints: &HashMap<i32, Checkpoint>,
    previous_window: &HashMap<i32, Position>,
) -> Result<()> {
    let range_key = cfg.range_key();
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
    resumed?;
    if !cfg.dry_run {
        let fresh: Vec<i32> = readers
            .iter()
            .map(|r| r.partition().checkpoint_index())
            .filter(|index| !checkpoints.contains_key(index))
            .collect();
        let reserved = async {
            let mut conn = sink.acquire().await?;
            checkpoint::reserve(&mut conn, &cfg.job_id, &range_key, &fresh).await
        };
        let reserved = match tokio::time::timeout(cfg.sink.io_timeout, reserved).await {
            Ok(done) => done,
            Err(_) => Err(Error::Sink(format!(
                "MySQL did not answer within {}s while the run reserved its checkpoint rows",
                cfg.sink.io_timeout.as_secs()
            ))),
        };
        reserved?;
    }
    Ok(())
}

/// Spreads the partitions over write streams and runs them: every partition's resolved range
/// and how it ended.
async fn write(
    cfg: &Config,
    sink: &Arc<MysqlSink>,
    stats: &Arc<Stats>,
    converter: &RowConverter,
    readers: Vec<PartitionReader>,
    checkpoints: &HashMap<i32, Checkpoint>,
    stop: &CancellationToken,
) -> Vec<(ResolvedRange, Result<()>)> {
    let writer = Writer {
        sink: sink.clone(),
        job_id: cfg.job_id.as_str().into(),
        range_key: cfg.range_key().into(),
        dry_run: cfg.dry_run,
        stats: stats.clone(),
    };
    let streams = sink.write_streams(readers.len());
    tracing::info!(
        streams,
        partitions = readers.len(),
        autoinc_lock_mode = ?sink.autoinc_lock_mode(),
        "write streams (--writers, default 1)"
    );
    // Partitions read at once, spread over the streams: a partition's read rate is bounded by
    // the broker's entries per second on one subscription, so many partitions of small entries
    // need several readers to keep one stream busy.
    let reading = readers.len().min(READERS_AT_ONCE).max(streams);
    let fan_in = reading.div_ceil(streams);
    let queue: std::sync::Mutex<VecDeque<(PartitionReader, Option<Position>)>> = readers
        .into_iter()
        .map(|reader| {
            let index = reader.partition().checkpoint_index();
            (reader, checkpoints.get(&index).map(|cp| cp.position))
        })
        .collect::<VecDeque<_>>()
        .into();
    futures::future::join_all((0..streams).map(|stream| {
        run_stream(
            cfg,
            &queue,
            fan_in,
            (stream, streams),
            converter,
            writer.clone(),
            stats,
            stop,
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
    .collect()
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
