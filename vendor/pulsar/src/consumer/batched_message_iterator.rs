use crate::{
    error::ConnectionError,
    message::{
        parse_batched_message,
        proto::{MessageIdData, SingleMessageMetadata},
        BatchedMessage, Metadata,
    },
    Payload,
};

pub struct BatchedMessageIterator {
    messages: std::vec::IntoIter<BatchedMessage>,
    message_id: MessageIdData,
    metadata: Metadata,
    total_messages: u32,
    current_index: u32,
}

impl BatchedMessageIterator {
    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    pub fn new(message_id: MessageIdData, payload: Payload) -> Result<Self, ConnectionError> {
        // pulsar2mysql patch: an error, not a panic, now that the type is public.
        let total_messages = payload.metadata.num_messages_in_batch.ok_or_else(|| {
            ConnectionError::Decoding("not a batched entry: no num_messages_in_batch".into())
        })? as u32;
        let messages = parse_batched_message(total_messages, &payload.data)?;

        Ok(Self {
            messages: messages.into_iter(),
            message_id,
            total_messages,
            metadata: payload.metadata,
            current_index: 0,
        })
    }
}

impl Iterator for BatchedMessageIterator {
    type Item = (MessageIdData, Payload);

    #[cfg_attr(feature = "telemetry", tracing::instrument(skip_all))]
    fn next(&mut self) -> Option<Self::Item> {
        let remaining = self.total_messages - self.current_index;
        if remaining == 0 {
            return None;
        }
        let index = self.current_index;
        self.current_index += 1;
        if let Some(batched_message) = self.messages.next() {
            let id = MessageIdData {
                batch_index: Some(index as i32),
                ..self.message_id.clone()
            };

            let metadata = Metadata {
                properties: batched_message.metadata.properties,
                partition_key: batched_message.metadata.partition_key,
                partition_key_b64_encoded: batched_message.metadata.partition_key_b64_encoded,
                ordering_key: batched_message.metadata.ordering_key,
                event_time: batched_message.metadata.event_time,
                ..self.metadata.clone()
            };

            let payload = Payload {
                metadata,
                data: batched_message.payload,
            };

            Some((id, payload))
        } else {
            None
        }
    }

    // pulsar2mysql patch: an exact hint, so collecting a batch allocates once instead of
    // growing (and copying) its vector of large items step by step.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining =
            ((self.total_messages - self.current_index) as usize).min(self.messages.len());
        (remaining, Some(remaining))
    }
}

/// A batch's messages' data in order, without the envelope's metadata copied into each
/// (pulsar2mysql patch): for a caller that reads the envelope once, from the entry's
/// [`Payload`]. A message's batch index is its place in this order. The batch is checked
/// whole when split; each message's metadata is decoded once and dropped, and only the place
/// of its data kept (no vector of metadata-sized items built and moved per message).
pub struct BatchedPayloads {
    data: Vec<u8>,
    places: std::vec::IntoIter<(usize, usize)>,
}

impl BatchedPayloads {
    /// Splits the batched entry `payload`; an error when it is not a batch or its messages
    /// cannot be decoded.
    pub fn new(payload: Payload) -> Result<Self, ConnectionError> {
        let total_messages = payload.metadata.num_messages_in_batch.ok_or_else(|| {
            ConnectionError::Decoding("not a batched entry: no num_messages_in_batch".into())
        })? as u32;
        let places = payload_places(total_messages, &payload.data)?;
        Ok(Self {
            data: payload.data,
            places: places.into_iter(),
        })
    }
}

/// Where each of a batch's `count` messages has its data in `data` (start, length): the
/// framing `parse_batched_message` reads (a big-endian u32 metadata size, the
/// SingleMessageMetadata, then payload_size bytes), checked the same way.
fn payload_places(count: u32, data: &[u8]) -> Result<Vec<(usize, usize)>, ConnectionError> {
    let broken =
        |what: &str| ConnectionError::Decoding(format!("Error decoding batched messages: {what}"));
    let mut places = Vec::with_capacity((count as usize).min(data.len() / 4));
    let mut at = 0usize;
    for _ in 0..count {
        let size = data
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| broken("a message's metadata size is cut off"))?;
        at += 4;
        let metadata = data
            .get(at..)
            .and_then(|rest| rest.get(..size))
            .ok_or_else(|| broken("a message's metadata is cut off"))?;
        let metadata = <SingleMessageMetadata as prost::Message>::decode(metadata)
            .map_err(|e| broken(&e.to_string()))?;
        let len = usize::try_from(metadata.payload_size)
            .map_err(|_| broken("a message declares a negative size"))?;
        at += size;
        if data.len() - at < len {
            return Err(broken("a message's data is cut off"));
        }
        places.push((at, len));
        at += len;
    }
    Ok(places)
}

impl Iterator for BatchedPayloads {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let (start, len) = self.places.next()?;
        Some(self.data[start..start + len].to_vec())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.places.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::proto::SingleMessageMetadata;

    #[test]
    fn per_message_b64_flag_not_taken_from_batch_envelope() {
        let messages = [
            BatchedMessage {
                metadata: SingleMessageMetadata {
                    partition_key: Some("plain-key".into()),
                    partition_key_b64_encoded: Some(false),
                    payload_size: 1,
                    ..Default::default()
                },
                payload: b"a".to_vec(),
            },
            BatchedMessage {
                metadata: SingleMessageMetadata {
                    partition_key: Some("YmluYXJ5".into()),
                    partition_key_b64_encoded: Some(true),
                    payload_size: 1,
                    ..Default::default()
                },
                payload: b"b".to_vec(),
            },
        ];

        let mut data = Vec::new();
        for message in &messages {
            message.serialize(&mut data);
        }

        // Envelope flag deliberately disagrees with the first message. Before the
        // fix, `..self.metadata.clone()` leaked this onto every batch member.
        let payload = Payload {
            metadata: Metadata {
                producer_name: "test".into(),
                sequence_id: 0,
                publish_time: 0,
                num_messages_in_batch: Some(2),
                partition_key_b64_encoded: Some(true),
                ..Default::default()
            },
            data,
        };

        let expanded: Vec<_> = BatchedMessageIterator::new(
            MessageIdData {
                ledger_id: 1,
                entry_id: 2,
                ..Default::default()
            },
            payload,
        )
        .unwrap()
        .collect();

        assert_eq!(expanded.len(), 2);
        assert_eq!(
            expanded[0].1.metadata.partition_key.as_deref(),
            Some("plain-key")
        );
        assert_eq!(
            expanded[0].1.metadata.partition_key_b64_encoded,
            Some(false),
            "per-message flag must win over the batch envelope"
        );
        assert_eq!(expanded[1].1.metadata.partition_key_b64_encoded, Some(true));
    }

    #[test]
    fn batched_payloads_are_the_messages_data_in_order() {
        let mut data = Vec::new();
        for (i, payload) in [&b"a"[..], b"", b"ccc"].into_iter().enumerate() {
            BatchedMessage {
                metadata: SingleMessageMetadata {
                    payload_size: payload.len() as i32,
                    partition_key: Some(format!("key-{i}")),
                    ..Default::default()
                },
                payload: payload.to_vec(),
            }
            .serialize(&mut data);
        }
        let batch = |data: Vec<u8>| Payload {
            metadata: Metadata {
                num_messages_in_batch: Some(3),
                ..Default::default()
            },
            data,
        };
        let split: Vec<_> = BatchedPayloads::new(batch(data.clone())).unwrap().collect();
        assert_eq!(split, vec![b"a".to_vec(), vec![], b"ccc".to_vec()]);
        // The same messages as BatchedMessageIterator gives.
        let id = MessageIdData::default();
        let theirs: Vec<_> = BatchedMessageIterator::new(id, batch(data.clone()))
            .unwrap()
            .map(|(_, p)| p.data)
            .collect();
        assert_eq!(split, theirs);
        // Cut anywhere, the batch is an error, as for BatchedMessageIterator.
        for cut in 0..data.len() {
            let cut_data = data[..cut].to_vec();
            assert!(BatchedPayloads::new(batch(cut_data.clone())).is_err(), "cut at {cut}");
            let id = MessageIdData::default();
            assert!(BatchedMessageIterator::new(id, batch(cut_data)).is_err());
        }
        let not_a_batch = Payload {
            metadata: Metadata::default(),
            data: Vec::new(),
        };
        assert!(BatchedPayloads::new(not_a_batch).is_err());
    }
}
