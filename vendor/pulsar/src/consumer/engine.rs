use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{
    channel::{mpsc, mpsc::UnboundedSender},
    SinkExt, StreamExt,
};

use crate::{
    connection::{Connection, ConsumerFrame},
    consumer::{
        batched_message_iterator::BatchedMessageIterator,
        data::{DeadLetterPolicy, EngineEvent, EngineMessage, Entry, QueueCredit, ENTRY_OVERHEAD},
        options::ConsumerOptions,
    },
    error::{ConnectionError, ConsumerError},
    message::{
        proto::{command_subscribe::SubType, MessageIdData},
        Message as RawMessage,
    },
    producer::Message,
    proto,
    proto::{BaseCommand, CommandCloseConsumer, CommandMessage},
    retry_op::{first_flow, retry_subscribe_consumer},
    Error, Executor, Payload, Pulsar,
};

const SYSTEM_PROPERTY_REAL_TOPIC: &str = "REAL_TOPIC";
const SYSTEM_PROPERTY_ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";

pub struct ConsumerEngine<Exe: Executor> {
    client: Pulsar<Exe>,
    connection: Arc<Connection<Exe>>,
    topic: String,
    subscription: String,
    sub_type: SubType,
    id: u64,
    name: Option<String>,
    tx: mpsc::UnboundedSender<Result<Entry, Error>>,
    credit: Arc<QueueCredit>,
    messages_rx: Option<mpsc::UnboundedReceiver<ConsumerFrame>>,
    engine_rx: Option<mpsc::UnboundedReceiver<EngineMessage<Exe>>>,
    event_rx: mpsc::UnboundedReceiver<EngineEvent<Exe>>,
    event_tx: UnboundedSender<EngineEvent<Exe>>,
    batch_size: u32,
    remaining_messages: i64,
    /// pulsar2mysql patch: bytes per message in memory (its share of the entry's data and of
    /// `ENTRY_OVERHEAD`), a maximum that decays slowly; with `options.receiver_queue_bytes`
    /// it sizes the Flow permits (see `flow_target`).
    bytes_per_message: Option<u64>,
    unacked_message_redelivery_delay: Option<Duration>,
    unacked_messages: HashMap<MessageIdData, Instant>,
    dead_letter_policy: Option<DeadLetterPolicy>,
    options: ConsumerOptions,
}

impl<Exe: Executor> ConsumerEngine<Exe> {
    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    pub fn new(
        client: Pulsar<Exe>,
        connection: Arc<Connection<Exe>>,
        topic: String,
        subscription: String,
        sub_type: SubType,
        id: u64,
        name: Option<String>,
        tx: mpsc::UnboundedSender<Result<Entry, Error>>,
        credit: Arc<QueueCredit>,
        messages_rx: mpsc::UnboundedReceiver<ConsumerFrame>,
        engine_rx: mpsc::UnboundedReceiver<EngineMessage<Exe>>,
        batch_size: u32,
        unacked_message_redelivery_delay: Option<Duration>,
        dead_letter_policy: Option<DeadLetterPolicy>,
        options: ConsumerOptions,
    ) -> ConsumerEngine<Exe> {
        let (event_tx, event_rx) = mpsc::unbounded();
        ConsumerEngine {
            client,
            connection,
            topic,
            subscription,
            sub_type,
            id,
            name,
            tx,
            credit,
            messages_rx: Some(messages_rx),
            engine_rx: Some(engine_rx),
            event_rx,
            event_tx,
            batch_size,
            remaining_messages: first_flow(batch_size) as i64,
            bytes_per_message: None,
            unacked_message_redelivery_delay,
            unacked_messages: HashMap::new(),
            dead_letter_policy,
            options,
        }
    }

    fn register_source<E, M>(&self, mut rx: mpsc::UnboundedReceiver<E>, mapper: M) -> Result<(), ()>
    where
        E: Send + 'static,
        M: Fn(Option<E>) -> EngineEvent<Exe> + Send + Sync + 'static,
    {
        let mut event_tx = self.event_tx.clone();

        self.client.executor.spawn(Box::pin(async move {
            while let Some(msg) = rx.next().await {
                let r = event_tx.send(mapper(Some(msg))).await;
                if let Err(err) = r {
                    log::error!("Error sending event to channel - {err}");
                    if err.is_disconnected() {
                        break;
                    }
                }
            }

            let send_end_res = event_tx.send(mapper(None)).await;
            if let Err(err) = send_end_res {
                log::debug!("Error sending close event to channel - {err}");
            }

            log::trace!("rx terminated");
        }))
    }

    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    pub async fn engine(&mut self) -> Result<(), Error> {
        debug!("starting the consumer engine for topic {}", self.topic);

        loop {
            if !self.connection.is_valid() {
                if let Some(err) = self.connection.error() {
                    error!(
                        "Consumer: connection {} is not valid: {:?}",
                        self.connection.id(),
                        err
                    );
                    self.reconnect().await?;
                }
            }

            if let Some(messages_rx) = self.messages_rx.take() {
                self.register_source(messages_rx, |msg| EngineEvent::Message(msg))
                    .map_err(|_| {
                        Error::Custom(String::from("Error registering messages_rx source"))
                    })?;
            }

            if let Some(engine_rx) = self.engine_rx.take() {
                self.register_source(engine_rx, |msg| EngineEvent::EngineMessage(msg))
                    .map_err(|_| {
                        Error::Custom(String::from("Error registering engine_rx source"))
                    })?;
            }

            // In the casual workflow, we use the `batch_size` as a maximum number that we could
            // send using a send flow command message to ask the broker to send us
            // messages, which is why we have a subtraction below (`batch_size` -
            // `remaining_messages`).
            //
            // In the special case of batch messages (which is defined by clients), the number of
            // messages could be greater than the given batch size and the remaining
            // messages goes negative, which is why we use an `i64` as we want to keep
            // track of the number of negative messages as the next send flow will be
            // the batch_size - minus remaining messages which allow us to retrieve the casual
            // workflow of flow command messages.
            //
            // Here is the example of it works for a batch_size at 1000 and the error case:
            //
            // ```
            // Message (1) -> (batch_size = 1000, remaing_messages = 999, no flow message trigger)
            // ... 499 messages later ...
            // Message (1) -> (batch_size = 1000, remaing_messages = 499, flow message trigger, ask broker to send => batch_size - remaining_messages = 501)
            // ... 200 messages later ...
            // BatchMessage (1024) -> (batch_size = 1000, remaining_messages = 4294967096, no flow message trigger) [underflow on remaining messages - without the patch]
            // BatchMessage (1024) -> (batch_size = 1000, remaining_messages = -1124, flow message trigger, ask broker to send =>  batch_size - remaining_messages = 2124) [no underflow on remaining messages - with the patch]
            // ```
            let target = self.flow_target();
            if self.remaining_messages < (target.div_ceil(2) as i64) {
                match self
                    .connection
                    .sender()
                    .send_flow(self.id, (target as i64 - self.remaining_messages) as u32)
                    .await
                {
                    Ok(()) => {}
                    Err(ConnectionError::Disconnected) => {
                        debug!("consumer engine: consumer connection disconnected, trying to reconnect");
                        continue;
                    }
                    // we don't need to handle the SlowDown error, since send_flow waits on the
                    // channel to be not full
                    Err(e) => {
                        error!("consumer engine: we got a unrecoverable connection error, {e}");
                        return Err(e.into());
                    }
                }

                self.remaining_messages = target as i64;
            }

            match Self::timeout(self.event_rx.next(), Duration::from_secs(1)).await {
                Err(_) => {
                    // If you are reading this comment, you may have an issue where you have
                    // received a batched message that is greater that the batch
                    // size and then break the way that we send flow command message.
                    //
                    // In that case, you could increase your batch size or patch this driver by
                    // adding the following line, if you are sure that you have
                    // at least 1 incoming message per second.
                    //
                    // ```rust
                    // self.remaining_messages = 0;
                    // ```
                    debug!("consumer engine: timeout (1s)");
                }
                Ok(Some(EngineEvent::Message(msg))) => {
                    debug!("consumer engine: received message, {:?}", msg);
                    let out = self.handle_message_opt(msg).await;
                    if let Some(res) = out {
                        return res;
                    }
                }
                Ok(Some(EngineEvent::EngineMessage(msg))) => {
                    debug!("consumer engine: received engine message");
                    let continue_loop = self.handle_ack_opt(msg).await;
                    if !continue_loop {
                        return Ok(());
                    }
                }
                Ok(None) => {
                    log::warn!("Event stream is terminated");
                    return Ok(());
                }
            }
        }
    }

    async fn handle_message_opt(
        &mut self,
        message_opt: Option<ConsumerFrame>,
    ) -> Option<Result<(), Error>> {
        match message_opt {
            None => {
                debug!("Consumer: old message source terminated");
                None
            }
            Some(message) => {
                let messages = message
                    .payload()
                    .and_then(|payload| {
                        debug!(
                            "Consumer: received message payload, num_messages_in_batch = {:?}",
                            payload.metadata.num_messages_in_batch
                        );
                        payload.metadata.num_messages_in_batch
                    })
                    .unwrap_or(1);
                self.remaining_messages -= messages as i64;
                if let Some(payload) = message.payload() {
                    self.observe_size(
                        payload.data.len() + ENTRY_OVERHEAD,
                        messages.max(1) as usize,
                    );
                }

                match self.process_message(message).await {
                    // Continue
                    Ok(true) => None,
                    // End of Topic
                    Ok(false) => Some(Ok(())),
                    Err(e) => {
                        if let Err(e) = self.tx.unbounded_send(Err(e)) {
                            error!("cannot send a message from the consumer engine to the consumer({}), stopping the engine", self.id);
                            Some(Err(Error::Consumer(e.into_send_error().into())))
                        } else {
                            None
                        }
                    }
                }
            }
        }
    }

    async fn handle_ack_opt(&mut self, ack_opt: Option<EngineMessage<Exe>>) -> bool {
        match ack_opt {
            None => {
                trace!("ack channel was closed");
                false
            }
            Some(EngineMessage::Ack(message_id, cumulative)) => {
                self.ack(message_id, cumulative).await;
                true
            }
            Some(EngineMessage::Nack(message_id)) => {
                if let Err(e) = self
                    .connection
                    .sender()
                    .send_redeliver_unacknowleged_messages(self.id, vec![message_id.clone()])
                    .await
                {
                    error!(
                        "could not ask for redelivery for message {:?}: {:?}",
                        message_id, e
                    );
                }
                true
            }
            Some(EngineMessage::UnackedRedelivery) => {
                let mut h = HashSet::new();
                let now = Instant::now();
                // info!("unacked messages length: {}", self.unacked_messages.len());
                for (id, t) in self.unacked_messages.iter() {
                    if *t < now {
                        h.insert(id.clone());
                    }
                }

                let ids: Vec<_> = h.iter().cloned().collect();
                if !ids.is_empty() {
                    // info!("will unack ids: {:?}", ids);
                    if let Err(e) = self
                        .connection
                        .sender()
                        .send_redeliver_unacknowleged_messages(self.id, ids)
                        .await
                    {
                        error!("could not ask for redelivery: {:?}", e);
                    } else {
                        for i in h.iter() {
                            self.unacked_messages.remove(i);
                        }
                    }
                }
                true
            }
            Some(EngineMessage::GetConnection(sender)) => {
                let _ = sender.send(self.connection.clone()).map_err(|_| {
                    error!(
                        "consumer requested the engine's connection but dropped the \
                                     channel before receiving"
                    );
                });
                true
            }
        }
    }

    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    async fn ack(&mut self, message_id: MessageIdData, cumulative: bool) {
        // FIXME: this does not handle cumulative acks
        self.unacked_messages.remove(&message_id);
        let res = self
            .connection
            .sender()
            .send_ack(self.id, vec![message_id], cumulative)
            .await;
        if res.is_err() {
            error!("ack error: {:?}", res);
        }
    }

    /// Process the message. Returns `true` if there are more messages to process
    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    async fn process_message(&mut self, frame: ConsumerFrame) -> Result<bool, Error> {
        let message = match frame {
            ConsumerFrame::Message(message, Some(payload)) => {
                self.process_payload(message, payload).await?;
                return Ok(true);
            }
            ConsumerFrame::Message(_, None) => {
                error!(
                    "Consumer {} received message without payload",
                    self.debug_format()
                );
                return Ok(true);
            }
            // Never a CommandMessage: ConsumerFrame::new takes those out.
            ConsumerFrame::Other(message) => message,
        };
        match *message {
            RawMessage {
                command:
                    BaseCommand {
                        reached_end_of_topic: Some(_),
                        ..
                    },
                ..
            } => {
                return Ok(false);
            }
            RawMessage {
                command:
                    BaseCommand {
                        active_consumer_change: Some(active_consumer_change),
                        ..
                    },
                ..
            } => {
                // TODO: Communicate this status to the Consumer and expose it
                debug!(
                    "Active consumer change for {} - Active: {:?}",
                    self.debug_format(),
                    active_consumer_change.is_active
                );
            }
            RawMessage {
                command:
                    BaseCommand {
                        close_consumer: Some(CommandCloseConsumer { consumer_id, .. }),
                        ..
                    },
                ..
            } => {
                error!(
                    "Broker notification of closed consumer {}: {}",
                    consumer_id,
                    self.debug_format()
                );

                self.reconnect().await?;
            }
            unexpected => {
                let r#type = proto::base_command::Type::try_from(unexpected.command.r#type)
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_else(|_| unexpected.command.r#type.to_string());
                warn!(
                    "Unexpected message type sent to consumer: {}. This is probably a bug!",
                    r#type
                );
            }
        }
        Ok(true)
    }

    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    async fn process_payload(
        &mut self,
        message: CommandMessage,
        payload: Payload,
    ) -> Result<(), Error> {
        let compression = match payload.metadata.compression {
            None => proto::CompressionType::None,
            Some(compression) => proto::CompressionType::try_from(compression).map_err(|err| {
                error!("unknown compression type: {}", compression);
                Error::Consumer(ConsumerError::Io(std::io::Error::other(format!(
                    "unknown compression type {compression}: {err}"
                ))))
            })?,
        };

        // pulsar2mysql patch: decompression is bounded. Output stops at the declared
        // uncompressed size and at MAX_UNCOMPRESSED, whichever is smaller; an entry that
        // declares or inflates to more is handed on empty, as one message marked with the
        // TOO_LARGE_PROPERTY property (the consumer counts it as a bad record), never inflated.
        let declared = payload.metadata.uncompressed_size.map(|n| n as usize);
        let limit = declared.unwrap_or(MAX_UNCOMPRESSED).min(MAX_UNCOMPRESSED);
        let inflated = if compression == proto::CompressionType::None {
            None
        } else if declared.is_some_and(|n| n > MAX_UNCOMPRESSED) {
            Some(Err(declared.unwrap_or(0)))
        } else {
            Some(decompress(compression, &payload.data, limit).map_err(Error::Consumer)?)
        };
        let mut payload = payload;
        match inflated {
            None => {}
            Some(Ok(data)) => payload.data = data,
            Some(Err(size)) => {
                payload.data = Vec::new();
                payload.metadata.num_messages_in_batch = None;
                payload.metadata.compression = None;
                payload.metadata.properties.push(proto::KeyValue {
                    key: TOO_LARGE_PROPERTY.to_string(),
                    value: size.to_string(),
                });
            }
        }

        // pulsar2mysql patch: a batch travels to the consumer whole, unless this engine must
        // look at its messages one by one (unacked-message tracking, dead letters).
        let batched = payload.metadata.num_messages_in_batch.is_some();
        let dead_letters_possible =
            self.dead_letter_policy.is_some() && message.redelivery_count.is_some();
        if batched && self.unacked_message_redelivery_delay.is_none() && !dead_letters_possible {
            return self
                .send_to_consumer(Entry::Batch(message.message_id, payload))
                .await;
        }
        let payloads: Vec<_> = if batched {
            BatchedMessageIterator::new(message.message_id, payload)?.collect()
        } else {
            vec![(message.message_id, payload)]
        };
        if !dead_letters_possible {
            return self.send_to_consumer(Entry::Messages(payloads)).await;
        }
        for (message_id, payload) in payloads {
            match (message.redelivery_count, &self.dead_letter_policy) {
                (Some(redelivery_count), Some(dead_letter_policy))
                    if redelivery_count as usize >= dead_letter_policy.max_redeliver_count =>
                {
                    // Send message to Dead Letter Topic and ack message in original topic
                    let Payload { data, metadata } = payload;
                    let mut properties = metadata
                        .properties
                        .into_iter()
                        .map(|p| (p.key, p.value))
                        .collect::<HashMap<_, _>>();
                    properties
                        .entry(SYSTEM_PROPERTY_REAL_TOPIC.to_string())
                        .or_insert_with(|| self.topic.clone());
                    properties
                        .entry(SYSTEM_PROPERTY_ORIGIN_MESSAGE_ID.to_string())
                        .or_insert_with(|| {
                            if let Some(batch_index) = message_id.batch_index {
                                format!(
                                    "{}:{}:{}:{}",
                                    message_id.ledger_id,
                                    message_id.entry_id,
                                    message_id.partition.unwrap_or(-1),
                                    batch_index
                                )
                            } else {
                                format!(
                                    "{}:{}:{}",
                                    message_id.ledger_id,
                                    message_id.entry_id,
                                    message_id.partition.unwrap_or(-1)
                                )
                            }
                        });
                    let message = Message {
                        payload: data,
                        properties,
                        partition_key: metadata.partition_key,
                        partition_key_b64_encoded: metadata.partition_key_b64_encoded,
                        ordering_key: metadata.ordering_key,
                        event_time: metadata.event_time,
                        ..Default::default()
                    };
                    self.client
                        .send(&dead_letter_policy.dead_letter_topic, message)
                        .await?
                        .await
                        .map_err(|e| {
                            error!("One shot cancelled {:?}", e);
                            Error::Custom("DLQ send error".to_string())
                        })?;

                    self.ack(message_id, false).await;
                }
                _ => {
                    self.send_to_consumer(Entry::Messages(vec![(message_id, payload)]))
                        .await?
                }
            }
        }
        Ok(())
    }

    /// pulsar2mysql patch: the permits to keep outstanding. Without a byte bound, the batch
    /// size (upstream's rule). With one, as many messages as fit in it at the bytes per message
    /// seen so far (between 1 and the batch size); before the first message, one: the first
    /// entry tells the size, and a topic of large messages never has thousands of them in
    /// flight.
    fn flow_target(&self) -> u32 {
        match (self.options.receiver_queue_bytes, self.bytes_per_message) {
            (None, _) => self.batch_size,
            (Some(_), None) => 1,
            (Some(bytes), Some(per_message)) => {
                (bytes / per_message.max(1)).clamp(1, u64::from(self.batch_size.max(1))) as u32
            }
        }
    }

    /// pulsar2mysql patch: learns the bytes per message from an entry of `messages` messages
    /// and `bytes` bytes. Up at once (a large message shrinks the permits before the next
    /// Flow), down by 1/16 of the gap per entry (one small entry does not open the gates).
    fn observe_size(&mut self, bytes: usize, messages: usize) {
        let seen = (bytes / messages.max(1)).max(1) as u64;
        self.bytes_per_message = Some(match self.bytes_per_message {
            Some(old) if seen < old => old - (old - seen) / 16,
            _ => seen,
        });
    }

    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    async fn send_to_consumer(&mut self, entry: Entry) -> Result<(), Error> {
        let now = Instant::now();
        if let (Some(duration), Entry::Messages(messages)) =
            (self.unacked_message_redelivery_delay, &entry)
        {
            for (message_id, _) in messages {
                self.unacked_messages
                    .insert(message_id.clone(), now + duration);
            }
        }
        if !self.credit.acquire(entry.len(), entry.bytes()).await {
            error!("tx returned: the consumer is gone");
            return Err(Error::Custom("tx closed".to_string()));
        }
        self.tx.unbounded_send(Ok(entry)).map_err(|e| {
            error!("tx returned {:?}", e);
            Error::Custom("tx closed".to_string())
        })?;
        Ok(())
    }

    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    async fn reconnect(&mut self) -> Result<(), Error> {
        debug!("reconnecting consumer for topic: {}", self.topic);

        // send CloseConsumer to server
        // remove our resolver from the Connection consumers BTreeMap,
        // stopping the current Message source
        if let Err(e) = self.connection.sender().close_consumer(self.id).await {
            error!(
                "could not close consumer {:?}({}) for topic {}: {:?}",
                self.name, self.id, self.topic, e
            );
        }
        // should have logged "rx terminated" by now

        let broker_address = self.client.lookup_topic(&self.topic).await?;

        let messages = retry_subscribe_consumer(
            &self.client,
            &mut self.connection,
            broker_address,
            &self.topic,
            &self.subscription,
            self.sub_type,
            self.id,
            &self.name,
            &self.options,
            self.batch_size,
        )
        .await?;

        self.remaining_messages = first_flow(self.batch_size) as i64;
        self.messages_rx = Some(messages);

        Ok(())
    }

    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    fn debug_format(&self) -> String {
        format!(
            "[{id} - {subscription}{name}: {topic}]",
            id = self.id,
            subscription = &self.subscription,
            name = self
                .name
                .as_ref()
                .map(|s| format!("({s})"))
                .unwrap_or_default(),
            topic = &self.topic
        )
    }

    #[cfg(feature = "async-std")]
    async fn timeout<F: Future<Output = O>, O>(
        fut: F,
        dur: Duration,
    ) -> Result<O, async_std::future::TimeoutError> {
        use async_std::prelude::FutureExt;
        fut.timeout(dur).await
    }

    #[cfg(all(not(feature = "async-std"), feature = "tokio"))]
    async fn timeout<F: Future<Output = O>, O>(
        fut: F,
        dur: Duration,
    ) -> Result<O, tokio::time::error::Elapsed> {
        tokio::time::timeout_at(tokio::time::Instant::now() + dur, fut).await
    }
}

impl<Exe: Executor> std::ops::Drop for ConsumerEngine<Exe> {
    fn drop(&mut self) {
        let conn = self.connection.clone();
        let id = self.id;
        let name = self.name.clone();
        let topic = self.topic.clone();
        let _ = self.client.executor.spawn(Box::pin(async move {
            if let Err(e) = conn.sender().close_consumer(id).await {
                error!(
                    "could not close consumer {:?}({}) for topic {}: {:?}",
                    name, id, topic, e
                );
            }
        }));
    }
}

/// pulsar2mysql patch: the most bytes one entry may inflate to (64 MiB).
pub const MAX_UNCOMPRESSED: usize = 64 << 20;

/// pulsar2mysql patch: the property marking a message whose entry was not inflated because it
/// declares or inflates to more than its cap; its value is the size (a lower bound when the
/// entry lied about it).
pub const TOO_LARGE_PROPERTY: &str = "pulsar2mysql.too-large";

/// pulsar2mysql patch: inflates `data` to at most `limit` bytes: `Ok(bytes)`, `Err(size)` when
/// it holds more (size: what it declared, or `limit + 1`), or a decoding error.
#[allow(unused_variables)]
fn decompress(
    compression: proto::CompressionType,
    data: &[u8],
    limit: usize,
) -> Result<Result<Vec<u8>, usize>, ConsumerError> {
    #[allow(unused_imports)]
    use std::io::Read;
    // Reads at most `limit + 1` bytes: one more than allowed tells "too large" apart.
    #[allow(dead_code)]
    fn bounded(mut reader: impl Read, limit: usize) -> Result<Result<Vec<u8>, usize>, ConsumerError> {
        let mut out = Vec::new();
        (&mut reader)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(ConsumerError::Io)?;
        Ok(if out.len() > limit { Err(out.len()) } else { Ok(out) })
    }
    let disabled = |codec: &str| {
        ConsumerError::Io(std::io::Error::other(format!(
            "got a {codec} compressed message but its cargo feature is deactivated"
        )))
    };
    match compression {
        proto::CompressionType::None => Ok(Ok(data.to_vec())),
        proto::CompressionType::Lz4 => {
            #[cfg(not(feature = "lz4"))]
            return Err(disabled("LZ4"));
            // The block format needs the size; the output buffer is exactly `limit` bytes and
            // a block that needs more fails to decode.
            #[cfg(feature = "lz4")]
            lz4::block::decompress(data, Some(limit as i32))
                .map(Ok)
                .map_err(ConsumerError::Io)
        }
        proto::CompressionType::Zlib => {
            #[cfg(not(feature = "flate2"))]
            return Err(disabled("zlib"));
            #[cfg(feature = "flate2")]
            bounded(flate2::read::ZlibDecoder::new(data), limit)
        }
        proto::CompressionType::Zstd => {
            #[cfg(not(feature = "zstd"))]
            return Err(disabled("zstd"));
            #[cfg(feature = "zstd")]
            bounded(
                zstd::stream::read::Decoder::new(data).map_err(ConsumerError::Io)?,
                limit,
            )
        }
        proto::CompressionType::Snappy => {
            #[cfg(not(feature = "snap"))]
            return Err(disabled("Snappy"));
            // The Java and C++ clients write raw Snappy blocks (`Snappy.compress`), pulsar-rs
            // producers the framed format, which always opens with the stream identifier.
            #[cfg(feature = "snap")]
            {
                const FRAMED_STREAM_ID: &[u8] = b"\xff\x06\x00\x00sNaPpY";
                if data.starts_with(FRAMED_STREAM_ID) {
                    bounded(snap::read::FrameDecoder::new(data), limit)
                } else {
                    let len = snap::raw::decompress_len(data)
                        .map_err(|e| ConsumerError::Io(std::io::Error::other(e)))?;
                    if len > limit {
                        return Ok(Err(len));
                    }
                    snap::raw::Decoder::new()
                        .decompress_vec(data)
                        .map(Ok)
                        .map_err(|e| ConsumerError::Io(std::io::Error::other(e)))
                }
            }
        }
    }
}
