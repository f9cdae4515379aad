//! The messages of one broker entry, as the reader hands them out.
//!
//! The reader takes whole entries from its consumer and splits a batch here, reading the
//! entry's metadata once (publish time, chunking, the too-large mark). Split by pulsar-rs's
//! stream, every message of a batch would carry its own copy of that metadata and of the topic
//! name, allocated anew and moved through each layer: at a few hundred thousand seed records a
//! second that was a fifth of the runner's CPU.

use pulsar::consumer::batched_message_iterator::BatchedPayloads;
use pulsar::consumer::data::Entry;
use pulsar::message::proto::MessageIdData;
use pulsar::message::Metadata;
use pulsar::Payload;

use super::{Position, SourceMessage};

/// The position of the message `id` names.
pub(super) fn from_proto(id: &MessageIdData) -> Position {
    Position::new(
        id.ledger_id as i64,
        id.entry_id as i64,
        id.batch_index.unwrap_or(-1),
    )
}

/// What the rest of an entry holds.
pub(super) struct EntryMessages {
    messages: Messages,
}

enum Messages {
    /// A batch: its messages' data, and what they share.
    Batch {
        /// The entry's ledger and entry id; a message's batch index is its place.
        entry: (i64, i64),
        next_index: i32,
        marks: Marks,
        payloads: BatchedPayloads,
    },
    /// Messages each with their own id and metadata (an entry of one message).
    Single(std::vec::IntoIter<(MessageIdData, Payload)>),
}

/// What a message's metadata says that the reader and the pipeline need.
#[derive(Clone, Copy)]
struct Marks {
    /// Epoch milliseconds, set by the producer's client.
    publish_time: i64,
    /// How many messages its entry holds (None: not a batch).
    batch_size: Option<i32>,
    chunk: Option<(i32, i32)>,
    too_large: Option<u64>,
}

impl Marks {
    fn of(metadata: &Metadata) -> Marks {
        Marks {
            publish_time: metadata.publish_time as i64,
            batch_size: metadata.num_messages_in_batch,
            chunk: metadata
                .num_chunks_from_msg
                .filter(|&chunks| chunks > 1)
                .map(|chunks| (metadata.chunk_id.unwrap_or(0), chunks)),
            too_large: metadata
                .properties
                .iter()
                .find(|kv| kv.key == pulsar::consumer::TOO_LARGE_PROPERTY)
                .map(|kv| kv.value.parse().unwrap_or(u64::MAX)),
        }
    }

    fn message(self, position: Position, payload: Vec<u8>) -> SourceMessage {
        SourceMessage {
            position,
            publish_time: self.publish_time,
            payload,
            chunk: self.chunk,
            too_large: self.too_large,
        }
    }
}

impl EntryMessages {
    /// The messages of `entry`; an error when a batch's messages cannot be decoded.
    pub(super) fn new(entry: Entry) -> Result<EntryMessages, String> {
        let messages = match entry {
            Entry::Batch(id, payload) => Messages::Batch {
                entry: (id.ledger_id as i64, id.entry_id as i64),
                next_index: 0,
                marks: Marks::of(&payload.metadata),
                payloads: BatchedPayloads::new(payload)
                    .map_err(|e| format!("cannot split a batched entry: {e}"))?,
            },
            Entry::Messages(messages) => Messages::Single(messages.into_iter()),
        };
        Ok(EntryMessages { messages })
    }

    /// The next message, with the number of messages in its entry (None: not a batch).
    pub(super) fn next(&mut self) -> Option<(SourceMessage, Option<i32>)> {
        match &mut self.messages {
            Messages::Batch {
                entry: (ledger, entry),
                next_index,
                marks,
                payloads,
            } => {
                let payload = payloads.next()?;
                let position = Position::new(*ledger, *entry, *next_index);
                *next_index += 1;
                Some((marks.message(position, payload), marks.batch_size))
            }
            Messages::Single(messages) => {
                let (id, payload) = messages.next()?;
                let marks = Marks::of(&payload.metadata);
                Some((
                    marks.message(from_proto(&id), payload.data),
                    marks.batch_size,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use pulsar::message::proto::{KeyValue, SingleMessageMetadata};

    use super::*;

    fn id(ledger: u64, entry: u64, batch_index: Option<i32>) -> MessageIdData {
        MessageIdData {
            ledger_id: ledger,
            entry_id: entry,
            batch_index,
            ..Default::default()
        }
    }

    /// A batched entry of `payloads`, framed as a producer writes them.
    fn batch(payloads: &[&[u8]], metadata: Metadata) -> Payload {
        let mut data = Vec::new();
        for payload in payloads {
            let single = SingleMessageMetadata {
                payload_size: payload.len() as i32,
                ..Default::default()
            };
            let meta = prost::Message::encode_to_vec(&single);
            data.extend_from_slice(&(meta.len() as u32).to_be_bytes());
            data.extend_from_slice(&meta);
            data.extend_from_slice(payload);
        }
        Payload {
            metadata: Metadata {
                num_messages_in_batch: Some(payloads.len() as i32),
                ..metadata
            },
            data,
        }
    }

    #[test]
    fn a_batchs_messages_share_its_publish_time_and_take_their_place_as_index() {
        let metadata = Metadata {
            publish_time: 1_700_000_000_123,
            ..Default::default()
        };
        let entry = Entry::Batch(id(7, 3, None), batch(&[b"0|a", b"1|b"], metadata));
        let mut messages = EntryMessages::new(entry).unwrap();
        let mut seen = Vec::new();
        while let Some((m, batch_size)) = messages.next() {
            assert_eq!(m.publish_time, 1_700_000_000_123);
            assert_eq!(batch_size, Some(2));
            assert_eq!((m.chunk, m.too_large), (None, None));
            seen.push((m.position, m.payload));
        }
        assert_eq!(
            seen,
            vec![
                (Position::new(7, 3, 0), b"0|a".to_vec()),
                (Position::new(7, 3, 1), b"1|b".to_vec()),
            ]
        );
    }

    #[test]
    fn a_single_message_keeps_its_own_id_and_marks() {
        let metadata = Metadata {
            publish_time: 42,
            num_chunks_from_msg: Some(3),
            chunk_id: Some(1),
            properties: vec![KeyValue {
                key: pulsar::consumer::TOO_LARGE_PROPERTY.into(),
                value: "99999999".into(),
            }],
            ..Default::default()
        };
        let payload = Payload {
            metadata,
            data: b"x".to_vec(),
        };
        let mut messages =
            EntryMessages::new(Entry::Messages(vec![(id(5, 6, None), payload)])).unwrap();
        let (m, batch_size) = messages.next().unwrap();
        assert_eq!(m.position, Position::new(5, 6, -1));
        assert_eq!(
            (m.publish_time, m.chunk, m.too_large, batch_size),
            (42, Some((1, 3)), Some(99_999_999), None)
        );
        assert!(messages.next().is_none());
    }

    #[test]
    fn a_batch_that_cannot_be_split_is_an_error_naming_it() {
        let mut payload = batch(&[b"abc"], Metadata::default());
        payload.data.truncate(6);
        let err = EntryMessages::new(Entry::Batch(id(1, 1, None), payload))
            .err()
            .unwrap();
        assert!(err.contains("cannot split a batched entry"), "{err}");
    }
}
