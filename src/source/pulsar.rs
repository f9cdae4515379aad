//! Bounded partition readers over the `pulsar` crate.
//!
//! Each partition gets its own non-durable, exclusive consumer: nothing is acknowledged and no
//! subscription outlives the run. The end of each partition is fixed once, when its reader
//! opens (`get_last_message_id`, asked on a consumer of its own that receives nothing), so a
//! run always ends, even on an empty partition or a window whose end lies in the future. On
//! any consumer error the reader reconnects after the last position it returned and drops
//! replays, so nothing is read twice or skipped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, TryStreamExt};
use pulsar::consumer::{ConsumerOptions, InitialPosition};
use pulsar::error::AuthenticationError;
use pulsar::message::proto::MessageIdData;
use pulsar::{
    Authentication, ConnectionRetryOptions, Consumer, OperationRetryOptions, Pulsar, PulsarBuilder,
    SubType, TokioExecutor,
};
use serde::Serialize;

use super::{Partition, Position, SourceMessage};
use crate::config::{id_for_partition, EndBound, SourceConfig, StartBound};
use crate::error::{Backoff, Error, Result};

/// A connected Pulsar client plus the validated source settings.
pub struct PulsarSource {
    client: Pulsar<TokioExecutor>,
    cfg: SourceConfig,
}

/// How one partition's range was resolved when its reader opened (reported in the summary).
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedRange {
    pub partition: i32,
    /// Reading starts strictly after this position (checkpoint or `--from id:`), if any.
    pub start_after: Option<String>,
    /// Publish-time lower bound (inclusive, epoch ms), if any.
    pub from_publish_time: Option<i64>,
    /// The first message at or after `from_publish_time`, as the admin API found it (`None`:
    /// the partition was read from its beginning).
    pub window_start: Option<String>,
    /// Last message of the partition when the run started; `None` when it was empty.
    pub end_snapshot: Option<String>,
    /// Message-id upper bound (inclusive), if any.
    pub stop_at: Option<String>,
    /// Publish-time upper bound (exclusive, epoch ms), if any.
    pub to_publish_time: Option<i64>,
    /// Why the partition's reader stopped.
    pub stopped_because: Option<&'static str>,
    /// Where the job's previous window stopped in this partition, when this window was chained
    /// after it (reading then starts right after it, whatever the publish times).
    pub previous_window_end: Option<String>,
    /// The last position read (written or skipped): where this window stopped.
    #[serde(skip)]
    pub last_read: Option<Position>,
}

/// Upper end of a position range where a missing batch index means "the whole entry".
fn entry_end(p: Position) -> Position {
    if p.batch_index < 0 {
        Position::new(p.ledger_id, p.entry_id, i32::MAX)
    } else {
        p
    }
}

/// A position for people: a whole-entry bound is shown without its batch index.
fn show(p: Position) -> String {
    if p.batch_index == i32::MAX {
        Position::new(p.ledger_id, p.entry_id, -1).to_string()
    } else {
        p.to_string()
    }
}

/// The entry a position belongs to: the unit the broker delivers and `get_last_message_id`
/// names.
fn entry_key(p: Position) -> (i64, i64) {
    (p.ledger_id, p.entry_id)
}

fn from_proto(id: &MessageIdData) -> Position {
    Position::new(
        id.ledger_id as i64,
        id.entry_id as i64,
        id.batch_index.unwrap_or(-1),
    )
}

/// The id to subscribe from so that the broker redelivers the entry holding `after` (it
/// steps one entry back when a batch index is given); anything at or before `after` is
/// then dropped by the reader.
fn resume_id(after: Position) -> MessageIdData {
    MessageIdData {
        ledger_id: after.ledger_id as u64,
        entry_id: after.entry_id as u64,
        batch_index: Some(after.batch_index.max(0)),
        ..Default::default()
    }
}

fn source_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Source(format!("{what}: {e}"))
}

/// How long every connect attempt must end in the same [`ConnectRefusal`] before the run gives
/// up on it (with the default backoff: the fifth attempt).
const REFUSAL_IS_FINAL_AFTER: Duration = Duration::from_secs(3);

/// Most messages a partition's reader buffers ahead of the pipeline (the receiver queue), and
/// the most it asks the broker for at once (Flow permits).
const READ_AHEAD_MESSAGES: u32 = 2000;

/// Most bytes of messages a partition's reader buffers ahead of the pipeline, and about the
/// most it has asked for but not yet received: the bound that holds when messages are large
/// (2,000 messages of 5 MiB would be 10 GiB). Seed-sized and 1 KiB messages stay bounded by
/// [`READ_AHEAD_MESSAGES`]; see RELIABILITY.md.
const READ_AHEAD_BYTES: u64 = 4 * 1024 * 1024;

/// A connect failure that retrying will not fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectRefusal {
    /// The TCP connection opens but the TLS handshake fails: the broker's certificate is not
    /// trusted or names another host, or the port does not speak TLS.
    TlsHandshake,
    /// The broker ends the connection in answer to CONNECT: it refused the token (or, without
    /// one, requires authentication); with `pulsar://`, the port may also expect TLS.
    Credentials,
}

impl ConnectRefusal {
    /// The error a run ends with: a configuration error (exit code 2), since only other
    /// settings (token, CA file, URL) can fix it. Never contains the token.
    fn into_error(self, cfg: &SourceConfig) -> Error {
        let url = crate::error::redact_url(&cfg.service_url);
        let tls_port_hint = if cfg.service_url.starts_with("pulsar://") {
            "; or, if that port is the broker's TLS port, use a pulsar+ssl:// URL"
        } else {
            ""
        };
        let give_token = "through --pulsar-token-file, PULSAR2MYSQL_PULSAR_TOKEN or --pulsar-token";
        Error::Config(match (self, &cfg.auth_token) {
            (ConnectRefusal::Credentials, Some(_)) => format!(
                "Pulsar at {url} refused the token (authentication failed): give a token this \
                 broker accepts (signed with its key, not expired) {give_token}{tls_port_hint}"
            ),
            (ConnectRefusal::Credentials, None) => format!(
                "Pulsar at {url} refused a connection without credentials: the broker requires \
                 authentication; give a token {give_token}{tls_port_hint}"
            ),
            (ConnectRefusal::TlsHandshake, _) => format!(
                "TLS handshake with {url} failed: the broker's certificate is not trusted ({}) \
                 or does not name the host of the URL; or the port does not speak TLS",
                match &cfg.tls_ca_file {
                    Some(f) => format!("it is not signed by a CA in --pulsar-tls-ca-file {f}"),
                    None => "for a self-signed or private CA, give the CA certificate with \
                             --pulsar-tls-ca-file"
                        .into(),
                }
            ),
        })
    }
}

/// Credentials that note whether pulsar-rs asked for them. It asks once the TCP connection and
/// the TLS handshake succeeded, right before it sends CONNECT, which is how
/// [`diagnose_connect_failure`] tells a refused handshake from a refused CONNECT. Without a
/// token it sends the method `none`, which brokers treat like no credentials at all.
struct ObservedCredentials {
    method: &'static str,
    data: Vec<u8>,
    asked: Arc<AtomicBool>,
}

// What #[async_trait] would generate (the crate is not a dependency of ours).
impl pulsar::authentication::Authentication for ObservedCredentials {
    fn auth_method_name(&self) -> String {
        self.method.into()
    }

    fn initialize<'s, 'f>(
        &'s mut self,
    ) -> Pin<Box<dyn Future<Output = Result<(), AuthenticationError>> + Send + 'f>>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(async { Ok(()) })
    }

    fn auth_data<'s, 'f>(
        &'s mut self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, AuthenticationError>> + Send + 'f>>
    where
        's: 'f,
        Self: 'f,
    {
        self.asked.store(true, Ordering::SeqCst);
        let data = self.data.clone();
        Box::pin(async move { Ok(data) })
    }
}

/// After a failed connect: is the failure one that retrying will not fix? pulsar-rs reports
/// every failure it does not retry itself (an untrusted certificate, a refused token, a
/// dropped connection) as the same "fatal error when connecting"; the cause is only in its
/// log. One more attempt, with [`ObservedCredentials`], shows how far a connection gets.
/// `None`: it went through this time, or failed in a way worth retrying (broker down, slow).
async fn diagnose_connect_failure(
    probe: PulsarBuilder<TokioExecutor>,
    cfg: &SourceConfig,
) -> Option<ConnectRefusal> {
    let asked = Arc::new(AtomicBool::new(false));
    let (method, data) = match &cfg.auth_token {
        Some(token) => ("token", token.trim().as_bytes().to_vec()),
        None => ("none", Vec::new()),
    };
    let probe = probe.with_auth_provider(Box::new(ObservedCredentials {
        method,
        data,
        asked: asked.clone(),
    }));
    match probe.build().await {
        Err(pulsar::Error::Connection(e)) if !e.establish_retryable() => {}
        _ => return None,
    }
    if asked.load(Ordering::SeqCst) {
        return Some(ConnectRefusal::Credentials);
    }
    // It did not get as far as CONNECT: no TCP connection (worth retrying), or no TLS session.
    let tls_handshake_failed =
        cfg.service_url.starts_with("pulsar+ssl://") && tcp_connects(&cfg.service_url).await;
    tls_handshake_failed.then_some(ConnectRefusal::TlsHandshake)
}

/// Whether a plain TCP connection to the URL's host and port opens within a few seconds.
async fn tcp_connects(service_url: &str) -> bool {
    let Ok(url) = url::Url::parse(service_url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port().unwrap_or(6651); // only asked about pulsar+ssl:// URLs
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((host, port))
        )
        .await,
        Ok(Ok(_))
    )
}

impl PulsarSource {
    /// Connects to the broker (retrying within the source retry budget).
    pub async fn connect(cfg: &SourceConfig) -> Result<Self> {
        let url = &cfg.service_url;
        if !(url.starts_with("pulsar://") || url.starts_with("pulsar+ssl://")) {
            return Err(Error::Config(format!(
                "--pulsar-url '{}' must start with pulsar:// or pulsar+ssl://",
                crate::error::redact_url(url)
            )));
        }
        let pem = match &cfg.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read --pulsar-tls-ca-file {path}: {e}"))
            })?),
            None => None,
        };
        // `connect_retries`: attempts pulsar-rs makes on a refused or timed-out connection.
        let builder_without_auth = |connect_retries: u32| {
            let mut builder = Pulsar::builder(url.clone(), TokioExecutor)
                .with_connection_retry_options(ConnectionRetryOptions {
                    min_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(3),
                    max_retries: connect_retries,
                    connection_timeout: Duration::from_secs(5),
                    ..Default::default()
                })
                .with_operation_retry_options(OperationRetryOptions {
                    operation_timeout: Duration::from_secs(20),
                    retry_delay: Duration::from_millis(500),
                    max_retries: Some(10),
                });
            if let Some(pem) = &pem {
                builder = builder.with_certificate_chain(pem.clone());
            }
            builder
        };
        let make_builder = || {
            let builder = builder_without_auth(5);
            match &cfg.auth_token {
                Some(token) => builder.with_auth(Authentication {
                    name: "token".into(),
                    data: token.trim().as_bytes().to_vec(),
                }),
                None => builder,
            }
        };
        let mut backoff = Backoff::new(cfg.retry_budget);
        // The refusal every attempt since then ended in. It ends the run once it lasted
        // REFUSAL_IS_FINAL_AFTER: a broker or load balancer that drops connections for a moment
        // (restarting) looks the same to a single attempt.
        let mut refused_since: Option<(ConnectRefusal, tokio::time::Instant)> = None;
        loop {
            match make_builder().build().await {
                Ok(client) => {
                    return Ok(PulsarSource {
                        client,
                        cfg: cfg.clone(),
                    })
                }
                Err(e) => {
                    let refusal = diagnose_connect_failure(builder_without_auth(0), cfg).await;
                    refused_since = match (refusal, refused_since) {
                        (Some(now), Some((before, since))) if now == before => Some((now, since)),
                        (Some(now), _) => Some((now, tokio::time::Instant::now())),
                        (None, _) => None,
                    };
                    if let Some((refusal, since)) = refused_since {
                        if since.elapsed() >= REFUSAL_IS_FINAL_AFTER {
                            return Err(refusal.into_error(cfg));
                        }
                    }
                    tracing::warn!(error = %e, refusal = ?refusal, "cannot connect to Pulsar yet; retrying");
                    if !backoff.wait().await {
                        if let Some((refusal, _)) = refused_since {
                            return Err(refusal.into_error(cfg));
                        }
                        return Err(source_err(
                            &format!(
                                "cannot connect to {}",
                                crate::error::redact_url(&cfg.service_url)
                            ),
                            e,
                        ));
                    }
                }
            }
        }
    }

    /// The partitions to read: all of a partitioned topic (or the `--partitions` subset),
    /// or the topic itself when it is not partitioned.
    pub async fn partitions(&self) -> Result<Vec<Partition>> {
        let topic = &self.cfg.topic.0;
        let n = self
            .client
            .lookup_partitioned_topic_number(topic.clone())
            .await
            .map_err(|e| source_err(&format!("cannot look up topic {topic}"), e))?;
        if n == 0 {
            self.check_exists(topic).await?;
            if let Some(p) = &self.cfg.partitions {
                return Err(Error::Config(format!(
                    "--partitions {p:?} given but {topic} is not a partitioned topic"
                )));
            }
            return Ok(vec![Partition {
                index: None,
                topic: topic.clone(),
            }]);
        }
        let wanted: Vec<u32> = match &self.cfg.partitions {
            Some(list) => {
                if let Some(bad) = list.iter().find(|&&p| p >= n) {
                    return Err(Error::Config(format!(
                        "--partitions names partition {bad}, but {topic} has partitions 0..{}",
                        n - 1
                    )));
                }
                list.clone()
            }
            None => (0..n).collect(),
        };
        Ok(wanted
            .into_iter()
            .map(|i| Partition {
                index: Some(i),
                topic: format!("{topic}-partition-{i}"),
            })
            .collect())
    }

    /// Fails with a configuration error when the (non-partitioned) topic does not exist. Asked
    /// through the namespace's topic list, which creates nothing: subscribing would make most
    /// brokers create the topic, and a mistyped name would end as an empty success. A broker
    /// that does not let this client list the namespace is not a reason to stop: the run
    /// goes on, as it did before this check.
    async fn check_exists(&self, topic: &str) -> Result<()> {
        use pulsar::proto::command_get_topics_of_namespace::Mode;
        let Some(namespace) = namespace_of(topic) else {
            return Ok(());
        };
        let listed = bounded(
            self.client
                .get_topics_of_namespace(namespace.to_string(), Mode::All),
        )
        .await;
        match listed {
            Ok(topics) if topics.iter().any(|t| t == topic) => Ok(()),
            Ok(_) => Err(Error::Config(format!(
                "topic {topic} does not exist (namespace {namespace} has no such topic): check \
                 --topic; nothing was read or created"
            ))),
            Err(e) => {
                tracing::warn!(%topic, error = %e, "cannot list the namespace's topics to check that the topic exists; going on");
                Ok(())
            }
        }
    }

    /// The admin API's answer to "which message was published at or after `ms`", or `None`
    /// (with the reason logged) when it cannot tell: the reader then scans from the start.
    async fn message_id_at(&self, topic: &str, ms: i64) -> Option<Position> {
        super::admin::message_id_at(&self.cfg, topic, ms).await
    }

    /// The partition's last message now (`None`: the broker names none, the partition is
    /// empty or its current ledger holds nothing yet), which bounds what a run reads of it:
    /// nothing published after the run started is waited for.
    async fn end_snapshot(&self, partition: &Partition) -> Result<Option<Position>> {
        let mut backoff = Backoff::new(self.cfg.retry_budget);
        loop {
            match bounded(last_message_of(&self.client, &partition.topic)).await {
                Ok(last) => return Ok(last),
                Err(e) => {
                    retry_or_give_up(&mut backoff, "find the last message of", partition, e).await?
                }
            }
        }
    }

    /// Opens a reader on one partition from the range's start, while the end snapshot is
    /// taken (the two subscriptions side by side). A checkpoint found afterwards moves the
    /// reader with [`PartitionReader::resume_after`].
    ///
    /// With `subscribe_now` false the reader subscribes at its first `next` instead: a
    /// partition that waits for a writer holds no receiver queue of messages meanwhile (its end
    /// snapshot is still taken now, when the run starts).
    pub async fn open_from_start(
        &self,
        partition: Partition,
        subscribe_now: bool,
    ) -> Result<PartitionReader> {
        let (end, mut reader) = futures::future::try_join(
            self.end_snapshot(&partition),
            self.subscribe(partition.clone(), subscribe_now),
        )
        .await?;
        reader.end = end;
        if end.is_none() && reader.last_seen.is_none() {
            tracing::debug!(partition = %reader.partition.topic, "broker reports no last message; the partition may be empty");
        }
        reader.check_already_at_end();
        Ok(reader)
    }

    /// A subscribed reader whose end is not known yet.
    async fn subscribe(&self, partition: Partition, now: bool) -> Result<PartitionReader> {
        let start_after = match &self.cfg.from {
            StartBound::AfterId(ids) => {
                let id = id_for_partition(ids, partition.index).ok_or_else(|| {
                    Error::Config(format!(
                        "--from gives no message id for partition {}",
                        partition.checkpoint_index()
                    ))
                })?;
                Some(entry_end(id))
            }
            _ => None,
        };
        let from_publish_time = match self.cfg.from {
            StartBound::PublishTime(ms) => Some(ms),
            _ => None,
        };
        // Without a checkpoint, a window starts at the first message published at or after
        // `from`, which the broker finds by itself; scanning from the partition's beginning
        // stays the fallback (correct, only slower).
        let seek_to = match (start_after, from_publish_time) {
            (None, Some(ms)) => self.message_id_at(&partition.topic, ms).await,
            _ => None,
        };
        let (stop_at, to_publish_time) = match &self.cfg.to {
            EndBound::Latest => (None, None),
            EndBound::PublishTime(ms) => (None, Some(*ms)),
            EndBound::AtId(ids) => {
                let id = id_for_partition(ids, partition.index).ok_or_else(|| {
                    Error::Config(format!(
                        "--to gives no message id for partition {}",
                        partition.checkpoint_index()
                    ))
                })?;
                (Some(entry_end(id)), None)
            }
        };
        let mut reader = PartitionReader {
            client: self.client.clone(),
            partition,
            consumer: None,
            start_after,
            last_seen: start_after,
            seek_to,
            from_publish_time,
            to_publish_time,
            stop_at,
            end: None,
            done: None,
            idle_timeout: self.cfg.idle_timeout,
            retry_budget: self.cfg.retry_budget,
            reconnects: 0,
            stalled: None,
            chained_after: None,
        };
        if now {
            reader.connect_with_retry().await?;
        }
        Ok(reader)
    }
}

/// Reads one partition from its start bound to its end bound, then returns `None`.
pub struct PartitionReader {
    client: Pulsar<TokioExecutor>,
    partition: Partition,
    consumer: Option<Consumer<Vec<u8>, TokioExecutor>>,
    start_after: Option<Position>,
    /// Last position handed out (or skipped); replays at or before it are dropped.
    last_seen: Option<Position>,
    /// Where the window starts, as the admin API found it; used until a message was seen.
    seek_to: Option<Position>,
    from_publish_time: Option<i64>,
    to_publish_time: Option<i64>,
    stop_at: Option<Position>,
    /// The partition's last message when the run started; `None` when the broker named none.
    end: Option<Position>,
    done: Option<&'static str>,
    idle_timeout: Duration,
    retry_budget: Duration,
    reconnects: u64,
    /// Backoff shared by reconnects since the last message delivered.
    stalled: Option<Backoff>,
    /// The previous window's end this window was chained after, if any.
    chained_after: Option<Position>,
}

impl PartitionReader {
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
            start_after: self.start_after.map(show),
            from_publish_time: self.from_publish_time,
            window_start: self.seek_to.map(show),
            end_snapshot: self.end.map(show),
            stop_at: self.stop_at.map(show),
            to_publish_time: self.to_publish_time,
            stopped_because: self.done,
            previous_window_end: self.chained_after.map(show),
            last_read: self.last_seen,
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
        self.from_publish_time = None;
        self.resume_after(resume.map_or(previous_end, |r| r.max(previous_end)))
            .await
    }

    async fn connect(&mut self) -> std::result::Result<(), pulsar::Error> {
        if let Some(old) = self.consumer.take() {
            close_in_background(old);
        }
        let mut options = ConsumerOptions::default()
            .durable(false)
            .with_initial_position(InitialPosition::Earliest)
            .with_receiver_queue_size(READ_AHEAD_MESSAGES)
            .with_receiver_queue_bytes(READ_AHEAD_BYTES);
        if let Some(after) = self.last_seen {
            options = options.starting_on_message(resume_id(after));
        } else if let Some(first) = self.seek_to {
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
            .with_batch_size(READ_AHEAD_MESSAGES)
            .with_options(options)
            .build()
            .await?;
        self.consumer = Some(consumer);
        Ok(())
    }

    async fn connect_with_retry(&mut self) -> Result<()> {
        let mut backoff = Backoff::new(self.retry_budget);
        loop {
            match bounded(self.connect()).await {
                Ok(()) => break,
                Err(e) => {
                    retry_or_give_up(&mut backoff, "subscribe to", &self.partition, e).await?
                }
            }
        }
        self.check_already_at_end();
        Ok(())
    }

    /// Marks the reader done when its start is already at or past its end.
    fn check_already_at_end(&mut self) {
        if let (Some(end), Some(after)) = (self.end, self.start_after) {
            // A whole entry (not batched, or a bound without batch index) at or past the end
            // entry, or the end's own last message (the broker names the last message of a
            // batched entry by its batch index): nothing of the snapshot is left to read.
            let whole = after.batch_index < 0 || after.batch_index == i32::MAX;
            let last_of_end = end.batch_index >= 0 && after.batch_index >= end.batch_index;
            if entry_key(after) > entry_key(end)
                || (entry_key(after) == entry_key(end) && (whole || last_of_end))
            {
                self.done = Some("already_at_end");
            }
        }
        // A window whose first message lies past the snapshot (a topic quiet since before
        // `from`): nothing of the snapshot is in the window.
        if let (Some(end), None, Some(first)) = (self.end, self.start_after, self.seek_to) {
            if entry_key(first) > entry_key(end) {
                self.done = Some("already_at_end");
            }
        }
    }

    /// Moves the start to just after `checkpoint`, found after this reader opened (a run opens
    /// its readers while it reads its checkpoints from MySQL): resubscribes there, dropping
    /// whatever the first subscription buffered. Only before the first `next`.
    pub async fn resume_after(&mut self, checkpoint: Position) -> Result<()> {
        debug_assert!(
            self.last_seen == self.start_after,
            "resume_after after reading"
        );
        self.start_after = Some(checkpoint);
        self.last_seen = Some(checkpoint);
        self.seek_to = None;
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
            let consumer = self.consumer.as_mut().expect("connected");
            let end = self.end;
            // Most messages are already buffered: take them without arming a timer (a timer
            // per message costs a clock read and a timer-wheel entry).
            let ready = match consumer.try_next().now_or_never() {
                Some(result) => Ok(result),
                None => tokio::time::timeout(self.idle_timeout, consumer.try_next()).await,
            };
            let msg = match ready {
                Ok(Ok(Some(msg))) => msg,
                Ok(Ok(None)) => {
                    self.reconnect("the consumer stream ended".into()).await?;
                    continue;
                }
                Ok(Err(e)) if e.to_string().contains("Decompression error") => {
                    // Retrying cannot help: the same entry would fail again.
                    return Err(Error::Source(format!(
                        "cannot decompress the entry after {} in {}: {e}. The entry is corrupt \
                         or was written with a codec this build cannot read; nothing after it \
                         was copied",
                        self.last_seen
                            .map(show)
                            .unwrap_or_else(|| "the start".into()),
                        self.partition.topic
                    )));
                }
                Ok(Err(e)) => {
                    self.reconnect(e.to_string()).await?;
                    continue;
                }
                Err(_elapsed) => {
                    let caught_up = match (end, self.last_seen) {
                        // The broker named no last message: nothing arrived for a whole idle
                        // period, so everything that existed at the start has been read.
                        (None, _) => true,
                        // Entries arrive whole: once one message of the end entry was seen,
                        // the rest of that entry has been delivered too.
                        (Some(end), Some(seen)) => entry_key(seen) >= entry_key(end),
                        (Some(_), None) => false,
                    };
                    if caught_up {
                        self.done = Some("end_of_partition");
                    } else {
                        self.reconnect(format!(
                            "no message for {:?} before the end bound {}",
                            self.idle_timeout,
                            end.map(|p| p.to_string()).unwrap_or_default()
                        ))
                        .await?;
                    }
                    continue;
                }
            };
            let position = from_proto(&msg.message_id.id);
            if self.last_seen.is_some_and(|seen| position <= seen) {
                continue; // replay after a reconnect or a resume inside a batched entry
            }
            let publish_time = msg.payload.metadata.publish_time as i64;
            if end.is_some_and(|end| entry_key(position) > entry_key(end)) {
                self.done = Some("end_of_partition");
                continue;
            }
            if self.stop_at.is_some_and(|stop| position > stop) {
                self.done = Some("stop_id_reached");
                continue;
            }
            if self.to_publish_time.is_some_and(|to| publish_time >= to) {
                self.done = Some("end_of_window");
                continue;
            }
            self.last_seen = Some(position);
            let last_of_entry = position.batch_index < 0
                || msg
                    .message_id
                    .batch_size
                    .is_some_and(|n| position.batch_index + 1 >= n);
            if last_of_entry && end.is_some_and(|e| entry_key(position) == entry_key(e)) {
                self.done = Some("end_of_partition");
            }
            if self.stop_at.is_some_and(|stop| position >= stop) {
                self.done = Some("stop_id_reached");
            }
            if self
                .from_publish_time
                .is_some_and(|from| publish_time < from)
            {
                continue; // before the window
            }
            self.stalled = None;
            let metadata = &msg.payload.metadata;
            let chunk = metadata
                .num_chunks_from_msg
                .filter(|&chunks| chunks > 1)
                .map(|chunks| (metadata.chunk_id.unwrap_or(0), chunks));
            let too_large = metadata
                .properties
                .iter()
                .find(|kv| kv.key == pulsar::consumer::TOO_LARGE_PROPERTY)
                .map(|kv| kv.value.parse().unwrap_or(u64::MAX));
            return Ok(Some(SourceMessage {
                position,
                publish_time,
                payload: msg.payload.data,
                chunk,
                too_large,
            }));
        }
    }
}

/// How long one subscribe attempt (lookup and subscribe, or the end snapshot) may take. pulsar-rs
/// retries inside an attempt on its own, up to minutes with its options; past this the attempt
/// counts as failed and the reader's own backoff and retry budget decide.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// One attempt at a broker operation, bounded by CONNECT_ATTEMPT_TIMEOUT.
async fn bounded<T, E: std::fmt::Display>(
    attempt: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(CONNECT_ATTEMPT_TIMEOUT, attempt).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_ATTEMPT_TIMEOUT:?}")),
    }
}

/// After a failed attempt to `doing` a partition: logs it and waits out the backoff, or
/// returns the error once the retry budget is spent.
async fn retry_or_give_up(
    backoff: &mut Backoff,
    doing: &str,
    partition: &Partition,
    error: String,
) -> Result<()> {
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

/// The last message of a partition now: `None` when the broker names none (nothing written
/// yet).
///
/// Asked through a consumer of its own that is given no permits (batch size 0: no Flow, a
/// vendor/pulsar patch), so the broker never sends it a message. pulsar-rs answers
/// `get_last_message_id` from the consumer's engine task, and that task blocks while its
/// receiver queue is full: asked on the reading consumer, which the broker starts filling at
/// once, the question could wait forever.
async fn last_message_of(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
) -> std::result::Result<Option<Position>, pulsar::Error> {
    let mut probe: Consumer<Vec<u8>, TokioExecutor> = client
        .consumer()
        .with_topic(topic)
        .with_subscription(format!("pulsar2mysql-end-{:016x}", rand_suffix(topic)))
        .with_subscription_type(SubType::Exclusive)
        .with_batch_size(0)
        .with_options(
            ConsumerOptions::default()
                .durable(false)
                .with_receiver_queue_size(1),
        )
        .build()
        .await?;
    let last = probe.get_last_message_id().await;
    close_in_background(probe);
    Ok(last?.first().and_then(|id| {
        let p = from_proto(id);
        // entry -1 (u64::MAX on the wire): the current ledger holds nothing yet.
        (p.ledger_id >= 0 && p.entry_id >= 0).then_some(p)
    }))
}

/// Closes a consumer without waiting for it. Closing is a courtesy (subscriptions are
/// non-durable and end with the connection), and pulsar-rs routes it through the consumer's
/// engine, which may be blocked on a full queue; after CLOSE_TIMEOUT the consumer is dropped,
/// which ends its engine.
fn close_in_background(mut consumer: Consumer<Vec<u8>, TokioExecutor>) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, consumer.close()).await;
    });
}

/// A per-process, per-topic suffix so concurrent runs never share a subscription name.
/// `tenant/namespace` of a full topic name (`persistent://tenant/namespace/name`).
fn namespace_of(topic: &str) -> Option<&str> {
    let path = topic.split_once("://")?.1;
    let (namespace, _name) = path.rsplit_once('/')?;
    namespace.contains('/').then_some(namespace)
}

fn rand_suffix(topic: &str) -> u64 {
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
mod tests {
    use super::*;

    #[test]
    fn namespaces_of_full_topic_names() {
        assert_eq!(
            namespace_of("persistent://public/default/t"),
            Some("public/default")
        );
        assert_eq!(
            namespace_of("non-persistent://a/b/c-partition-3"),
            Some("a/b")
        );
        assert_eq!(namespace_of("t"), None);
    }

    #[test]
    fn a_bound_without_batch_index_covers_the_whole_entry() {
        let end = entry_end(Position::new(5, 9, -1));
        assert!(Position::new(5, 9, 99) <= end);
        assert!(Position::new(5, 10, -1) > end);
        assert_eq!(entry_end(Position::new(5, 9, 2)), Position::new(5, 9, 2));
    }

    #[test]
    fn resume_asks_for_the_entry_again() {
        let id = resume_id(Position::new(7, 3, -1));
        assert_eq!((id.ledger_id, id.entry_id, id.batch_index), (7, 3, Some(0)));
    }

    /// The vendored pulsar-rs bounds its receiver queue in messages while handing over whole
    /// entries (vendor/README.md): the reader's memory depends on it.
    #[test]
    fn the_receiver_queue_holds_its_bound_in_messages() {
        use futures::FutureExt;
        use pulsar::consumer::data::QueueCredit;

        let credit = QueueCredit::new(1000, None);
        // Room: entries go in whole, the last one may overshoot the bound.
        assert_eq!(credit.acquire(500, 10).now_or_never(), Some(true));
        assert_eq!(credit.acquire(600, 10).now_or_never(), Some(true));
        // Full (1,100 buffered): the engine waits...
        let mut waiting = Box::pin(credit.acquire(500, 10));
        assert_eq!(waiting.as_mut().now_or_never(), None);
        // ...until the consumer takes an entry out.
        credit.release(500, 10);
        assert_eq!(waiting.as_mut().now_or_never(), Some(true));

        // A waiting engine is woken by a release from another thread, and stops waiting
        // (false) once the consumer is gone.
        let credit = std::sync::Arc::new(QueueCredit::new(1, None));
        assert_eq!(credit.acquire(10, 10).now_or_never(), Some(true));
        let releaser = {
            let credit = credit.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                credit.release(10, 10);
            })
        };
        assert!(futures::executor::block_on(credit.acquire(10, 10)));
        releaser.join().unwrap();
        let closer = {
            let credit = credit.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                credit.close();
            })
        };
        assert!(!futures::executor::block_on(credit.acquire(10, 10)));
        closer.join().unwrap();
    }

    /// ...and in bytes: two messages of 3 MiB fill a 4 MiB queue however few messages it
    /// holds.
    #[test]
    fn the_receiver_queue_holds_its_bound_in_bytes() {
        use futures::FutureExt;
        use pulsar::consumer::data::QueueCredit;

        const MIB: usize = 1024 * 1024;
        let credit = QueueCredit::new(READ_AHEAD_MESSAGES, Some(READ_AHEAD_BYTES));
        assert_eq!(credit.acquire(1, 3 * MIB).now_or_never(), Some(true));
        // 1 MiB of room left: one more entry may overshoot...
        assert_eq!(credit.acquire(1, 3 * MIB).now_or_never(), Some(true));
        // ...then the engine waits with 2 of its 2,000 messages used.
        let mut waiting = Box::pin(credit.acquire(1, 3 * MIB));
        assert_eq!(waiting.as_mut().now_or_never(), None);
        credit.release(1, 3 * MIB);
        assert_eq!(waiting.as_mut().now_or_never(), Some(true));
    }
}
