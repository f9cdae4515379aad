//! A bounded reader of one partition over the `pulsar` crate.
//!
//! Each partition gets its own non-durable, exclusive consumer: nothing is acknowledged and no
//! subscription outlives the run. The end of each partition is fixed once, when its reader
//! opens (`get_last_message_id`, asked on a consumer of its own that receives nothing), so a
//! run always ends, even on an empty partition or a window whose end lies in the future. On
//! any consumer error the reader reconnects after the last position it returned and drops
//! replays, so nothing is read twice or skipped.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use pulsar::consumer::data::Entry;
use pulsar::consumer::{ConsumerOptions, InitialPosition};
use pulsar::message::proto::MessageIdData;
use pulsar::{Consumer, Pulsar, SubType, TokioExecutor};

use super::bounds::{show, Admit, Bounds, StopReason};
use super::entry::EntryMessages;
use super::{Partition, Position, ResolvedRange, SourceMessage};
use crate::error::{Backoff, Error, Result};

/// The id to subscribe from so that the broker redelivers the entry holding `after` (it
/// steps one entry back when a batch index is given); anything at or before `after` is
/// then dropped by the reader.
fn resume_id(after: Position) -> MessageIdData {
    if after.entry_id < 0 {
        // Before a ledger's first entry (Position::just_before): from that entry on.
        return MessageIdData {
            ledger_id: after.ledger_id as u64,
            entry_id: 0,
            batch_index: Some(0),
            ..Default::default()
        };
    }
    MessageIdData {
        ledger_id: after.ledger_id as u64,
        entry_id: after.entry_id as u64,
        batch_index: Some(after.batch_index.max(0)),
        ..Default::default()
    }
}

pub(super) fn source_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Source(format!("{what}: {e}"))
}

/// What the partitions read at once buffer ahead of the pipeline together, and about the
/// most they have asked the broker for but not yet received, each an equal share within
/// the bounds below: in messages (the receiver queue; Flow permits), and in bytes, the bound
/// that holds when messages are large (2,000 messages of 5 MiB would be 10 GiB) or entries
/// small (each entry counts its data plus `pulsar::consumer::ENTRY_OVERHEAD`, about 1.2 KB:
/// an unbatched record of 20 bytes is not free). Seed-sized batched records are bounded by
/// the messages; see RELIABILITY.md.
const READ_AHEAD_SHARED: ReadAhead = ReadAhead {
    messages: 16_000,
    bytes: 24 * 1024 * 1024,
};

/// A reader's share when it reads alone or with a few others. More is not faster on a
/// machine the broker shares with the server: larger reads take the server's CPU in bursts
/// (16 partitions, 4,000 messages each: input waits fell from 0.7-1.0 to 0.1 s, the server's
/// run-queue wait rose from 0.2-0.3 to 0.35-0.65 s, the run took longer; benches/NOTES.md,
/// "Fifth session").
const READ_AHEAD_MOST: ReadAhead = ReadAhead {
    messages: 2_000,
    bytes: 4 * 1024 * 1024,
};

/// A reader's share however many partitions are read at once. The broker reads for a
/// consumer no more entries at a time than its permits cover: at 250 messages, 64
/// partitions of 8-record entries were read ~15 entries a time and reading alone took 2.5 s
/// for 1e6 records, 1.7-2.1 s at 1,000-2,000. Affordable since an entry waiting for its queue
/// costs ~600 bytes instead of ~5 KB (vendor patch 0015).
const READ_AHEAD_LEAST: ReadAhead = ReadAhead {
    messages: 1_000,
    bytes: 256 * 1024,
};

/// How far a partition's reader reads ahead of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadAhead {
    pub(super) messages: u32,
    pub(super) bytes: u64,
}

impl ReadAhead {
    /// Each one's share when `readers` partitions are read at once: memory follows the
    /// shared bound, not the partitions.
    pub(super) fn shared_by(readers: usize) -> ReadAhead {
        let readers = readers.max(1);
        ReadAhead {
            messages: (READ_AHEAD_SHARED.messages / readers as u32)
                .clamp(READ_AHEAD_LEAST.messages, READ_AHEAD_MOST.messages),
            bytes: (READ_AHEAD_SHARED.bytes / readers as u64)
                .clamp(READ_AHEAD_LEAST.bytes, READ_AHEAD_MOST.bytes),
        }
    }
}

/// Reads one partition from its start bound to its end bound, then returns `None`.
pub struct PartitionReader {
    client: Pulsar<TokioExecutor>,
    partition: Partition,
    consumer: Option<Consumer<Vec<u8>, TokioExecutor>>,
    /// The rest of the entry being read.
    entry: Option<EntryMessages>,
    /// Entries taken from the broker so far (a batch of messages is one entry).
    entries: u64,
    /// Last position handed out (or skipped); replays at or before it are dropped.
    last_seen: Option<Position>,
    /// The range: what it reads, and when it is done.
    bounds: Bounds,
    done: Option<StopReason>,
    idle_timeout: Duration,
    retry_budget: Duration,
    reconnects: u64,
    /// Backoff shared by reconnects since the last message delivered.
    stalled: Option<Backoff>,
    /// The previous window's end this window was chained after, if any.
    chained_after: Option<Position>,
    /// The message whose arrival ended the range, when it was not read.
    stopped_before: Option<Position>,
    /// The role the broker sees this client as (for a refusal's message).
    role: std::sync::Arc<str>,
    /// The last position seen when a replay last counted as progress (see [`is_progress`]).
    replay_credited: Option<Option<Position>>,
    /// Its share of what the partitions read at once buffer ([`ReadAhead::shared_by`]).
    pub(super) read_ahead: ReadAhead,
}

/// Whether a delivered message shows the reader moving, which ends a stall (the reconnects'
/// shared backoff and retry budget): any message read, written or skipped as before the
/// window, and the end of the range. A replay (the entry redelivered after a reconnect, a
/// long batch read again up to the last position) shows a working stream too, but only once
/// per last position: a broker that fails again right after each redelivery must still use
/// up the budget instead of looping.
fn is_progress(
    admit: &Admit,
    last_seen: Option<Position>,
    replay_credited: &mut Option<Option<Position>>,
) -> bool {
    match admit {
        Admit::Read { .. } | Admit::Stop(_) => true,
        Admit::Replay if *replay_credited != Some(last_seen) => {
            *replay_credited = Some(last_seen);
            true
        }
        Admit::Replay => false,
    }
}

impl PartitionReader {
    /// A reader of `partition` over `bounds`, not subscribed yet and whose end is not known yet.
    pub(super) fn new(
        client: Pulsar<TokioExecutor>,
        partition: Partition,
        bounds: Bounds,
        idle_timeout: Duration,
        retry_budget: Duration,
        role: std::sync::Arc<str>,
    ) -> Self {
        PartitionReader {
            role,
            client,
            partition,
            consumer: None,
            entry: None,
            entries: 0,
            last_seen: bounds.start_after,
            bounds,
            done: None,
            idle_timeout,
            retry_budget,
            reconnects: 0,
            stalled: None,
            chained_after: None,
            stopped_before: None,
            replay_credited: None,
            read_ahead: ReadAhead::shared_by(1),
        }
    }

    /// Sets the end snapshot, taken beside the subscription.
    pub(super) fn set_end(&mut self, end: Option<Position>) {
        self.bounds.end = end;
        if end.is_none() && self.last_seen.is_none() {
            tracing::debug!(partition = %self.partition.topic, "broker reports no last message; the partition may be empty");
        }
        self.check_already_at_end();
    }
    /// The partition this reader reads.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// How many times the reader had to reconnect.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The range as resolved for this partition.
    pub fn resolved(&self) -> ResolvedRange {
        ResolvedRange {
            partition: self.partition.checkpoint_index(),
            start_after: self.bounds.start_after.map(show),
            from_publish_time: self.bounds.from_publish_time,
            window_start: self.bounds.window_start.map(show),
            end_snapshot: self.bounds.end.map(show),
            stop_at: self.bounds.stop_at.map(show),
            to_publish_time: self.bounds.to_publish_time,
            stopped_because: self.done,
            previous_window_end: self.chained_after.map(show),
            // Stopped by its first message: the range ends right before that one, a place
            // the job's next window can start from as surely as from a message read.
            last_read: self
                .last_seen
                .or(self.stopped_before.map(|p| p.just_before())),
        }
    }

    /// Starts this window right after `previous_end`, where the job's previous window stopped
    /// (or after this window's own checkpoint `resume`, past it): every message stored after
    /// that point is this window's up to its end, whatever its publish time, so consecutive
    /// windows leave no gap where publish times are out of storage order. Only before the
    /// first `next`.
    pub async fn chain_after(
        &mut self,
        previous_end: Position,
        resume: Option<Position>,
    ) -> Result<()> {
        self.chained_after = Some(previous_end);
        self.bounds.from_publish_time = None;
        self.resume_after(resume.map_or(previous_end, |r| r.max(previous_end)))
            .await
    }

    async fn connect(&mut self) -> std::result::Result<(), pulsar::Error> {
        if let Some(old) = self.consumer.take() {
            close_in_background(old);
        }
        // The new subscription delivers again whatever the old one left unread.
        self.entry = None;
        let mut options = ConsumerOptions::default()
            .durable(false)
            .with_initial_position(InitialPosition::Earliest)
            .with_receiver_queue_size(self.read_ahead.messages)
            .with_receiver_queue_bytes(self.read_ahead.bytes);
        if let Some(after) = self.last_seen {
            options = options.starting_on_message(resume_id(after));
        } else if let Some(first) = self.bounds.window_start {
            // resume_id makes the broker deliver the entry holding `first` itself.
            options = options.starting_on_message(resume_id(first));
        }
        let consumer: Consumer<Vec<u8>, TokioExecutor> = self
            .client
            .consumer()
            .with_topic(self.partition.topic.clone())
            .with_subscription(format!(
                "pulsar2mysql-reader-{:016x}",
                rand_suffix(&self.partition.topic)
            ))
            .with_subscription_type(SubType::Exclusive)
            .with_batch_size(self.read_ahead.messages)
            .with_options(options)
            .build()
            .await?;
        self.consumer = Some(consumer);
        Ok(())
    }

    pub(super) async fn connect_with_retry(&mut self) -> Result<()> {
        let mut backoff = Backoff::new(self.retry_budget);
        loop {
            match bounded(self.connect()).await {
                Ok(()) => break,
                Err(e) => {
                    retry_or_give_up(&mut backoff, "subscribe to", &self.partition, &self.role, e)
                        .await?
                }
            }
        }
        self.check_already_at_end();
        Ok(())
    }

    /// Marks the reader done when its start is already at or past its end.
    fn check_already_at_end(&mut self) {
        if self.bounds.already_at_end() {
            self.done = Some(StopReason::AlreadyAtEnd);
        }
    }

    /// Moves the start to just after `checkpoint`, found after this reader opened (a run opens
    /// its readers while it reads its checkpoints from MySQL): resubscribes there, dropping
    /// whatever the first subscription buffered. Only before the first `next`.
    pub async fn resume_after(&mut self, checkpoint: Position) -> Result<()> {
        debug_assert!(
            self.last_seen == self.bounds.start_after,
            "resume_after after reading"
        );
        self.bounds.start_after = Some(checkpoint);
        self.last_seen = Some(checkpoint);
        self.bounds.window_start = None;
        self.done = None;
        self.check_already_at_end();
        if self.done.is_some() {
            // A finished range (a re-run): nothing to subscribe for.
            if let Some(c) = self.consumer.take() {
                close_in_background(c);
            }
            return Ok(());
        }
        if self.consumer.is_none() {
            return Ok(()); // subscribes at its first `next`, from here
        }
        self.connect_with_retry().await
    }

    /// Reconnects after the last position seen. Reconnects that bring no new message share one
    /// backoff and one retry budget, so a broker that keeps failing ends the run instead of
    /// spinning.
    async fn reconnect(&mut self, cause: String) -> Result<()> {
        self.reconnects += 1;
        tracing::warn!(partition = %self.partition.topic, after = ?self.last_seen, %cause, "reconnecting to Pulsar");
        let retry_budget = self.retry_budget;
        let backoff = self
            .stalled
            .get_or_insert_with(|| Backoff::new(retry_budget));
        if !backoff.wait().await {
            return Err(Error::Source(format!(
                "{} made no progress for {:?} of reconnecting after {}; last cause: {cause}",
                self.partition.topic,
                self.retry_budget,
                self.last_seen
                    .map(show)
                    .unwrap_or_else(|| "its start".into())
            )));
        }
        self.connect_with_retry().await
    }

    /// The next message of the range, or `None` once the partition reached its bound.
    pub async fn next(&mut self) -> Result<Option<SourceMessage>> {
        loop {
            if self.done.is_some() {
                if let Some(c) = self.consumer.take() {
                    // Not awaited: the round trip must not delay the last batch.
                    close_in_background(c);
                }
                return Ok(None);
            }
            if self.consumer.is_none() {
                // Subscribed lazily (see `open_from_start`), or not yet since a resume.
                self.connect_with_retry().await?;
                continue;
            }
            let Some((msg, batch_size)) = self.next_in_entry().await? else {
                continue; // reconnected, or found the end: look again
            };
            if !self.admit(msg.position, msg.publish_time, batch_size) {
                continue;
            }
            return Ok(Some(msg));
        }
    }

    /// Entries taken from the broker so far: the broker's cost is per entry, so records per
    /// entry (the producer's batching) explains what reading costs it.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The next message of the entry in hand, when it needs no waiting: the common case, kept
    /// out of [`next`](Self::next), whose future (kilobytes: connecting and reconnecting are
    /// in it) would be built and moved for every message. None: ask `next` (the entry is used
    /// up, or the range is done).
    pub fn next_ready(&mut self) -> Option<SourceMessage> {
        loop {
            if self.done.is_some() || self.consumer.is_none() {
                return None;
            }
            let (msg, batch_size) = self.entry.as_mut()?.next()?;
            if self.admit(msg.position, msg.publish_time, batch_size) {
                return Some(msg);
            }
        }
    }

    /// The next message of the entry being read, else None once the next entry was taken
    /// (or the reader reconnected, or found its end).
    async fn next_in_entry(&mut self) -> Result<Option<(SourceMessage, Option<i32>)>> {
        if let Some(next) = self.entry.as_mut().and_then(EntryMessages::next) {
            return Ok(Some(next));
        }
        self.entry = None;
        if let Some(entry) = self.receive().await? {
            self.entries += 1;
            match EntryMessages::new(entry) {
                Ok(messages) => self.entry = Some(messages),
                Err(e) => self.reconnect(e).await?,
            }
        }
        Ok(None)
    }

    /// Waits for the consumer's next entry, at most the idle timeout. `None` when there is
    /// none to look at yet: the reader reconnected, or it is done (an idle partition caught up
    /// with its end). An entry that cannot be decompressed ends the run: retrying would fail
    /// on the same entry.
    async fn receive(&mut self) -> Result<Option<Entry>> {
        let consumer = self.consumer.as_mut().expect("connected");
        // Most entries are already buffered: take them without arming a timer (a timer per
        // entry costs a clock read and a timer-wheel entry).
        let ready = match consumer.next_entry().now_or_never() {
            Some(result) => Ok(result.transpose()),
            None => tokio::time::timeout(self.idle_timeout, consumer.next_entry())
                .await
                .map(Option::transpose),
        };
        match ready {
            Ok(Ok(Some(entry))) => Ok(Some(entry)),
            Ok(Ok(None)) => {
                self.reconnect("the consumer stream ended".into()).await?;
                Ok(None)
            }
            Ok(Err(e)) if e.to_string().contains("Decompression error") => {
                // Retrying cannot help: the same entry would fail again.
                Err(Error::Source(format!(
                    "cannot decompress the entry after {} in {}: {e}. The entry is corrupt \
                     or was written with a codec this build cannot read; nothing after it \
                     was copied",
                    self.last_seen
                        .map(show)
                        .unwrap_or_else(|| "the start".into()),
                    self.partition.topic
                )))
            }
            Ok(Err(e)) => {
                self.reconnect(e.to_string()).await?;
                Ok(None)
            }
            Err(_elapsed) => {
                self.on_idle().await?;
                Ok(None)
            }
        }
    }

    /// No message for the idle timeout: done if the reader has reached the end the broker
    /// named, else the connection is presumed stuck and is renewed.
    async fn on_idle(&mut self) -> Result<()> {
        if self.bounds.caught_up(self.last_seen) {
            self.done = Some(StopReason::EndOfPartition);
            Ok(())
        } else {
            self.reconnect(format!(
                "no message for {:?} before the end bound {}",
                self.idle_timeout,
                self.bounds.end.map(|p| p.to_string()).unwrap_or_default()
            ))
            .await
        }
    }

    /// Passes a received message through the range's bounds and records what that decided
    /// (the last position seen, whether the range is done). True: hand the message out;
    /// false: a replay, a message before the window, or one past the end.
    fn admit(&mut self, position: Position, publish_time: i64, batch_size: Option<i32>) -> bool {
        let admit = self
            .bounds
            .admit(self.last_seen, position, publish_time, batch_size);
        if is_progress(&admit, self.last_seen, &mut self.replay_credited) {
            self.stalled = None;
        }
        match admit {
            Admit::Replay => false,
            Admit::Stop(reason) => {
                self.done = Some(reason);
                self.stopped_before.get_or_insert(position);
                false
            }
            Admit::Read { deliver, then_stop } => {
                self.last_seen = Some(position);
                self.done = then_stop;
                deliver // false: before the window
            }
        }
    }
}

/// How long one subscribe attempt (lookup and subscribe, or the end snapshot) may take. pulsar-rs
/// retries inside an attempt on its own, up to minutes with its options; past this the attempt
/// counts as failed and the reader's own backoff and retry budget decide.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// One attempt at a broker operation, bounded by CONNECT_ATTEMPT_TIMEOUT.
pub(super) async fn bounded<T, E: std::fmt::Display>(
    attempt: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(CONNECT_ATTEMPT_TIMEOUT, attempt).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_ATTEMPT_TIMEOUT:?}")),
    }
}

/// After a failed attempt to `doing` a partition: logs it and waits out the backoff, or
/// returns the error once the retry budget is spent. A refused permission ends at once
/// (exit 2, naming `role`): no retry can grant it.
pub(super) async fn retry_or_give_up(
    backoff: &mut Backoff,
    doing: &str,
    partition: &Partition,
    role: &str,
    error: String,
) -> Result<()> {
    if super::denied::is_denied(&error) {
        return Err(super::denied::denied(role, &partition.topic, doing, &error));
    }
    tracing::warn!(partition = %partition.topic, %error, "cannot {doing} the partition yet; retrying");
    if backoff.wait().await {
        Ok(())
    } else {
        Err(source_err(
            &format!("cannot {doing} {}", partition.topic),
            error,
        ))
    }
}

/// How long closing a consumer may take before it is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes a consumer without waiting for it. Closing is a courtesy (subscriptions are
/// non-durable and end with the connection), and pulsar-rs routes it through the consumer's
/// engine, which may be blocked on a full queue; after CLOSE_TIMEOUT the consumer is dropped,
/// which ends its engine.
pub(super) fn close_in_background(mut consumer: Consumer<Vec<u8>, TokioExecutor>) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, consumer.close()).await;
    });
}

/// A per-process, per-topic suffix so concurrent runs never share a subscription name.
pub(super) fn rand_suffix(topic: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(topic.as_bytes());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests;
