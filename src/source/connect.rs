//! Connecting to Pulsar: the client, the topic's partitions, each partition's end snapshot,
//! and readers opened on them. A connect failure that retrying cannot fix (an untrusted
//! certificate, a refused token) is diagnosed (`connect/refusal.rs`) and reported as such.

use std::time::Duration;

use pulsar::consumer::ConsumerOptions;
use pulsar::{
    Authentication, ConnectionRetryOptions, Consumer, OperationRetryOptions, Pulsar, PulsarBuilder,
    SubType, TokioExecutor,
};

use super::bounds::{entry_end, Bounds};
use super::denied::{denied, is_denied, namespace_of, role_of};
use super::entry::from_proto;
use super::reader::{
    bounded, close_in_background, rand_suffix, retry_or_give_up, source_err, PartitionReader,
    ReadAhead,
};
use super::{Partition, Position};
use crate::config::{id_for_partition, EndBound, SourceConfig, StartBound};
use crate::error::{Backoff, Error, Result};

mod refusal;

use refusal::{diagnose_connect_failure, refusal_streak, ConnectRefusal, REFUSAL_IS_FINAL_AFTER};

/// A connected Pulsar client plus the validated source settings.
pub struct PulsarSource {
    client: Pulsar<TokioExecutor>,
    cfg: SourceConfig,
    /// Each reader's share of the read-ahead (see [`PulsarSource::read_at_once`]).
    read_ahead: ReadAhead,
}

/// A URL of another scheme is a configuration error before any attempt: retrying cannot fix it.
fn check_service_url(url: &str) -> Result<()> {
    if !(url.starts_with("pulsar://") || url.starts_with("pulsar+ssl://")) {
        return Err(Error::Config(format!(
            "--pulsar-url '{}' must start with pulsar:// or pulsar+ssl://",
            crate::error::redact_url(url)
        )));
    }
    Ok(())
}

/// The CA bundle of `--pulsar-tls-ca-file`, read once for every attempt.
fn read_ca_file(cfg: &SourceConfig) -> Result<Option<Vec<u8>>> {
    Ok(match &cfg.tls_ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read --pulsar-tls-ca-file {path}: {e}"))
            })?)
        }
        None => None,
    })
}

/// A client builder without credentials: what a connect attempt and the probe of
/// [`diagnose_connect_failure`] share. `connect_retries`: attempts pulsar-rs makes on a
/// refused or timed-out connection.
fn client_builder(
    url: &str,
    pem: &Option<Vec<u8>>,
    connect_retries: u32,
) -> PulsarBuilder<TokioExecutor> {
    let mut builder = Pulsar::builder(url.to_string(), TokioExecutor)
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
    if let Some(pem) = pem {
        builder = builder.with_certificate_chain(pem.clone());
    }
    builder
}

/// The builder with the token, if any: the probe sets its own, observed, credentials.
fn with_token(
    builder: PulsarBuilder<TokioExecutor>,
    cfg: &SourceConfig,
) -> PulsarBuilder<TokioExecutor> {
    match &cfg.auth_token {
        Some(token) => builder.with_auth(Authentication {
            name: "token".into(),
            data: token.trim().as_bytes().to_vec(),
        }),
        None => builder,
    }
}

impl PulsarSource {
    /// `readers` partitions will be read at once: each reader opened from now on buffers its
    /// share of the read-ahead, so memory does not grow with the partitions.
    pub fn read_at_once(&mut self, readers: usize) {
        self.read_ahead = ReadAhead::shared_by(readers);
    }

    /// The role the broker sees this client as, for a refusal's message.
    fn role(&self) -> String {
        role_of(self.cfg.auth_token.as_deref())
    }

    /// Connects to the broker (retrying within the source retry budget).
    pub async fn connect(cfg: &SourceConfig) -> Result<Self> {
        check_service_url(&cfg.service_url)?;
        let pem = read_ca_file(cfg)?;
        let mut backoff = Backoff::new(cfg.retry_budget);
        // The refusal every attempt since then ended in. It ends the run once it lasted
        // REFUSAL_IS_FINAL_AFTER: a broker or load balancer that drops connections for a moment
        // (restarting) looks the same to a single attempt.
        let mut refused_since: Option<(ConnectRefusal, tokio::time::Instant)> = None;
        loop {
            let builder = with_token(client_builder(&cfg.service_url, &pem, 5), cfg);
            let e = match builder.build().await {
                Ok(client) => {
                    return Ok(PulsarSource {
                        client,
                        cfg: cfg.clone(),
                        read_ahead: ReadAhead::shared_by(1),
                    })
                }
                Err(e) => e,
            };
            let probe = client_builder(&cfg.service_url, &pem, 0);
            let refusal = diagnose_connect_failure(probe, cfg).await;
            refused_since = refusal_streak(refusal, refused_since);
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

    /// The partitions to read: all of a partitioned topic (or the `--partitions` subset),
    /// or the topic itself when it is not partitioned.
    pub async fn partitions(&self) -> Result<Vec<Partition>> {
        let topic = &self.cfg.topic.0;
        let n = self
            .client
            .lookup_partitioned_topic_number(topic.clone())
            .await
            .map_err(|e| {
                let e = e.to_string();
                if is_denied(&e) {
                    denied(&self.role(), topic, "look up", &e)
                } else {
                    source_err(&format!("cannot look up topic {topic}"), e)
                }
            })?;
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

    /// The partition's last message now (`None`: the partition holds none), which bounds what
    /// a run reads of it: nothing published after the run started is waited for. A broker
    /// that names only an empty current ledger (`(ledger, -1)`: older brokers, or a ledger
    /// just rolled over) is asked through the admin API for the last entry before it, since
    /// without an end a quiet spell would be taken for the end of the partition.
    async fn end_snapshot(&self, partition: &Partition) -> Result<Option<Position>> {
        let mut backoff = Backoff::new(self.cfg.retry_budget);
        let answer = loop {
            match bounded(last_message_of(&self.client, &partition.topic)).await {
                Ok(last) => break last,
                Err(e) => {
                    retry_or_give_up(
                        &mut backoff,
                        "find the last message of",
                        partition,
                        &self.role(),
                        e,
                    )
                    .await?
                }
            }
        };
        match answer {
            LastMessage::Entry(p) => Ok(Some(p)),
            LastMessage::None => Ok(None),
            LastMessage::EmptyLedger(ledger) => {
                super::admin::last_entry_before(&self.cfg, &partition.topic, ledger)
                    .await
                    .map_err(|e| {
                        Error::Source(format!(
                            "cannot tell where partition {} ends: the broker names only its \
                             empty current ledger {ledger}, and the admin API could not name \
                             the last entry before it ({e}); a run without a known end could \
                             take a stall for the end, so it stops here",
                            partition.checkpoint_index()
                        ))
                    })
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
        reader.set_end(end);
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
        let bounds = Bounds {
            start_after,
            window_start: seek_to,
            from_publish_time,
            to_publish_time,
            stop_at,
            end: None,
        };
        let mut reader = PartitionReader::new(
            self.client.clone(),
            partition,
            bounds,
            self.cfg.idle_timeout,
            self.cfg.retry_budget,
            self.role().into(),
        );
        reader.read_ahead = self.read_ahead;
        if now {
            reader.connect_with_retry().await?;
        }
        Ok(reader)
    }
}

/// What the broker names as a partition's last message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastMessage {
    Entry(Position),
    /// `(ledger, -1)`: the current ledger holds nothing yet; earlier ledgers may.
    EmptyLedger(i64),
    /// No message id at all.
    None,
}

/// The last message of a partition now, as the broker names it.
///
/// Asked through a consumer of its own that is given no permits (batch size 0: no Flow, a
/// vendor/pulsar patch), so the broker never sends it a message. pulsar-rs answers
/// `get_last_message_id` from the consumer's engine task, and that task blocks while its
/// receiver queue is full: asked on the reading consumer, which the broker starts filling at
/// once, the question could wait forever.
async fn last_message_of(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
) -> std::result::Result<LastMessage, pulsar::Error> {
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
    Ok(match last?.first().map(from_proto) {
        Some(p) if p.ledger_id >= 0 && p.entry_id >= 0 => LastMessage::Entry(p),
        // entry -1 (u64::MAX on the wire): the current ledger holds nothing yet.
        Some(p) if p.ledger_id >= 0 => LastMessage::EmptyLedger(p.ledger_id),
        _ => LastMessage::None,
    })
}
