use std::{
    future::poll_fn,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    task::Poll,
};

use futures::{
    channel::{mpsc, oneshot},
    task::AtomicWaker,
};

use crate::{connection::Connection, message::proto::MessageIdData, Error, Executor, Payload};

/// One broker entry, as the engine hands it to the consumer (pulsar2mysql patch).
pub enum Entry {
    /// Its messages, split by the engine (a single message, or a batch whose messages the
    /// engine had to look at one by one: dead-letter policy, unacked-message tracking).
    Messages(Vec<(MessageIdData, Payload)>),
    /// A whole batch, split by the consumer as it is read: no vector of hundreds of
    /// metadata-sized items built and copied per entry.
    Batch(MessageIdData, Payload),
}

impl Entry {
    /// How many messages it holds, for the receiver queue's bound.
    pub fn len(&self) -> usize {
        match self {
            Entry::Messages(messages) => messages.len(),
            Entry::Batch(_, payload) => {
                payload.metadata.num_messages_in_batch.unwrap_or(1).max(1) as usize
            }
        }
    }

    /// How many bytes it holds in memory, for the receiver queue's bound in bytes: its
    /// messages' data and what holding the entry costs beyond them ([`ENTRY_OVERHEAD`]).
    pub fn bytes(&self) -> usize {
        ENTRY_OVERHEAD
            + match self {
                Entry::Messages(messages) => messages
                    .iter()
                    .map(|(_, p)| p.data.len() + std::mem::size_of::<(MessageIdData, Payload)>())
                    .sum(),
                Entry::Batch(_, payload) => payload.data.len(),
            }
    }
}

/// What one entry costs in memory beyond its data (pulsar2mysql patch): its frame while it
/// waits for room in the consumer's queue, then its item in that queue, each in a channel
/// node. The byte bound counts it, with the data, in the queue and in the Flow permits: an
/// entry of a few bytes (an unbatched message) costs over a kilobyte, so a bound in payload
/// bytes alone let a queue of small entries hold many times its bound.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<crate::connection::ConsumerFrame>()
    + std::mem::size_of::<Result<Entry, Error>>()
    + 2 * std::mem::size_of::<usize>();

pub type MessageIdDataReceiver = mpsc::UnboundedReceiver<Result<Entry, Error>>;

/// The receiver queue's bound, counted in messages and in bytes, between a consumer's engine
/// and the consumer (pulsar2mysql patch, see vendor/README.md).
///
/// The engine hands the consumer a whole entry per channel item, instead of one item per
/// message: a batch of 500 messages costs one channel operation and one wake-up instead of
/// 500. The channel itself is unbounded; this credit keeps the buffered messages at the
/// configured receiver queue size, as the bounded per-message channel did, and their bytes at
/// the configured byte bound (if any): the engine waits while either is used up.
#[derive(Debug)]
pub struct QueueCredit {
    messages: AtomicI64,
    bytes: AtomicI64,
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl QueueCredit {
    /// `bytes`: `None` for no bound in bytes.
    pub fn new(messages: u32, bytes: Option<u64>) -> Self {
        QueueCredit {
            messages: AtomicI64::new(i64::from(messages.max(1))),
            bytes: AtomicI64::new(
                bytes.map_or(i64::MAX / 2, |b| b.clamp(1, i64::MAX as u64 / 2) as i64),
            ),
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Engine side: waits until the queue has room, then takes `messages` and `bytes` from it
    /// (it may go below zero by one entry, as a bounded channel holds one item per sender
    /// beyond its capacity). False once the consumer is gone.
    pub async fn acquire(&self, messages: usize, bytes: usize) -> bool {
        poll_fn(|cx| {
            for registered in [false, true] {
                if self.closed.load(Ordering::Acquire) {
                    return Poll::Ready(false);
                }
                if self.messages.load(Ordering::Acquire) > 0
                    && self.bytes.load(Ordering::Acquire) > 0
                {
                    self.messages.fetch_sub(messages as i64, Ordering::AcqRel);
                    self.bytes.fetch_sub(bytes as i64, Ordering::AcqRel);
                    return Poll::Ready(true);
                }
                if !registered {
                    // Register, then look again: a release between the first look and the
                    // registration would otherwise be missed.
                    self.waker.register(cx.waker());
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Consumer side: `messages` holding `bytes` left the queue.
    pub fn release(&self, messages: usize, bytes: usize) {
        let messages_before = self.messages.fetch_add(messages as i64, Ordering::AcqRel);
        let bytes_before = self.bytes.fetch_add(bytes as i64, Ordering::AcqRel);
        if messages_before <= 0 || bytes_before <= 0 {
            self.waker.wake();
        }
    }

    /// Consumer side: the consumer is gone; an engine waiting for room stops waiting.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }
}

pub enum EngineEvent<Exe: Executor> {
    Message(Option<crate::connection::ConsumerFrame>),
    EngineMessage(Option<EngineMessage<Exe>>),
}

pub enum EngineMessage<Exe: Executor> {
    Ack(MessageIdData, bool),
    Nack(MessageIdData),
    UnackedRedelivery,
    GetConnection(oneshot::Sender<Arc<Connection<Exe>>>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageData {
    pub id: MessageIdData,
    pub batch_size: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct DeadLetterPolicy {
    /// Maximum number of times that a message will be redelivered before being sent to the dead
    /// letter queue.
    pub max_redeliver_count: usize,
    /// Name of the dead topic where the failing messages will be sent.
    pub dead_letter_topic: String,
}

#[cfg(test)]
mod tests {
    use super::{Entry, ENTRY_OVERHEAD};
    use crate::message::proto::MessageIdData;

    #[test]
    fn an_entry_counts_what_it_holds_in_memory_not_its_data_alone() {
        assert!((600..2048).contains(&ENTRY_OVERHEAD), "{ENTRY_OVERHEAD}");
        let payload = crate::Payload {
            metadata: Default::default(),
            data: b"0|msg-0".to_vec(),
        };
        let batch = Entry::Batch(MessageIdData::default(), payload.clone());
        assert_eq!(batch.bytes(), ENTRY_OVERHEAD + 7);
        let split = Entry::Messages(vec![
            (MessageIdData::default(), payload.clone()),
            (MessageIdData::default(), payload),
        ]);
        assert!(split.bytes() > ENTRY_OVERHEAD + 2 * 7 + 2 * 448);
    }
}
