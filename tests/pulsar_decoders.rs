//! Property tests for the vendored pulsar-rs decoders (vendor/pulsar): the broker frame
//! decoder (`message::Codec`: sizes, command, payload frame, CRC32C) and the batch splitter
//! (`BatchedMessageIterator`: a batched entry into its messages). The input is hostile:
//! random bytes, truncated frames, lying sizes and counts, bad checksums. Nothing may panic,
//! every failure must be an error, and nothing may allocate more than the input justifies
//! (measured by a counting allocator). RELIABILITY.md, "Hostile input".
//!
//! Its own test binary (`cargo test --test pulsar_decoders`): it tests the vendored crate, not
//! this one, and its counting allocator is global, so it stays out of the library's unit tests.

use bytes::BytesMut;
use proptest::prelude::*;
use prost::Message as _;
use pulsar::consumer::batched_message_iterator::BatchedMessageIterator;
use pulsar::message::{Codec, Message};
use pulsar::proto::{
    base_command::Type, BaseCommand, CommandMessage, KeyValue, MessageIdData, MessageMetadata,
    SingleMessageMetadata,
};
use pulsar::Payload;
use tokio_util::codec::{Decoder, Encoder};

/// Cases per property, as the records' property tests (src/records/proptests/mod.rs):
/// `PROPTEST_CASES=100000` for a deeper run.
const CASES: u32 = 1000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes allocated on this thread while a closure runs: a global allocator that counts,
/// per thread, the bytes live and their peak. Only in this test binary.
mod meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Meter;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = LIVE.try_with(|live| {
            let v = live.get() + n;
            live.set(v);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(v)));
        });
    }

    unsafe impl GlobalAlloc for Meter {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                add(layout.size() as isize);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                add(layout.size() as isize);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            add(-(layout.size() as isize));
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                add(new_size as isize - layout.size() as isize);
            }
            p
        }
    }

    #[global_allocator]
    static METER: Meter = Meter;

    /// Runs `f`; returns its result and the most bytes it had allocated at once on this
    /// thread (what it returns included).
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let start = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(start));
        let r = f();
        let peak = PEAK.with(Cell::get) - start;
        (r, peak.max(0) as usize)
    }
}

/// The most a decoder may allocate for `input` bytes: a fixed allowance (protobuf structs,
/// error strings, nom's first 64 KiB `count` vector) plus a constant factor of the input
/// (each 4-byte batch member costs one `BatchedMessage` struct).
fn justified(input: usize) -> usize {
    256 * 1024 + 64 * input
}

fn metadata() -> impl Strategy<Value = MessageMetadata> {
    (
        any::<u64>(),
        any::<u64>(),
        prop::option::of(any::<i32>()),
        prop::collection::vec(("[a-z]{0,4}", "[a-z]{0,4}"), 0..3),
        prop::option::of("[a-z]{0,6}"),
    )
        .prop_map(|(seq, time, batch, props, key)| MessageMetadata {
            producer_name: "p".into(),
            sequence_id: seq,
            publish_time: time,
            num_messages_in_batch: batch,
            properties: props
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
            partition_key: key,
            ..Default::default()
        })
}

fn message_command(ledger: u64, entry: u64) -> BaseCommand {
    BaseCommand {
        r#type: Type::Message as i32,
        message: Some(CommandMessage {
            consumer_id: 7,
            message_id: MessageIdData {
                ledger_id: ledger,
                entry_id: entry,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A valid frame as the broker sends it: the encoder's output, and the offset of the CRC.
fn frame(metadata: MessageMetadata, data: Vec<u8>) -> (Vec<u8>, usize) {
    let command = message_command(1, 2);
    let crc_at = 4 + 4 + command.encoded_len() + 2;
    let mut out = BytesMut::new();
    Codec
        .encode(
            Message {
                command,
                payload: Some(Payload { metadata, data }),
            },
            &mut out,
        )
        .unwrap();
    (out.to_vec(), crc_at)
}

/// Decodes frames from `input` until the decoder wants more bytes or fails; returns the
/// messages, how it ended, and the bytes it allocated at most. Never more frames than
/// 8-byte headers in the input.
fn decode_all(input: &[u8]) -> (Vec<Message>, Result<(), String>, usize) {
    let mut buf = BytesMut::from(input);
    let ((messages, end), peak) = meter::peak(|| {
        let mut messages = Vec::new();
        for _ in 0..=input.len() / 8 {
            match Codec.decode(&mut buf) {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => return (messages, Ok(())),
                Err(e) => return (messages, Err(e.to_string())),
            }
        }
        panic!("the decoder returned more frames than the input holds")
    });
    (messages, end, peak)
}

/// A frame's fields, each honest or not: sizes that lie, a wrong magic number, a wrong CRC.
fn hostile_frame() -> impl Strategy<Value = Vec<u8>> {
    // Each field lies in about one frame out of five.
    fn lie<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
        prop::option::weighted(0.2, s)
    }
    (
        lie(any::<u32>()),
        lie(any::<u32>()),
        lie(prop::collection::vec(any::<u8>(), 0..24)),
        lie(any::<u16>()),
        lie(any::<u32>()),
        lie(any::<u32>()),
        prop_oneof![
            3 => metadata().prop_map(|m| m.encode_to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..48),
        ],
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(
            |(total, cmd_size, cmd, magic, crc, meta_size, meta, data)| {
                let command = message_command(1, 2).encode_to_vec();
                let cmd = cmd.unwrap_or(command);
                let mut rest = Vec::new();
                rest.extend_from_slice(&magic.unwrap_or(0x0e01).to_be_bytes());
                let mut covered = Vec::new();
                covered.extend_from_slice(&meta_size.unwrap_or(meta.len() as u32).to_be_bytes());
                covered.extend_from_slice(&meta);
                covered.extend_from_slice(&data);
                let good_crc = crc32c(&covered);
                rest.extend_from_slice(&crc.unwrap_or(good_crc).to_be_bytes());
                rest.extend_from_slice(&covered);
                let mut body = Vec::new();
                body.extend_from_slice(&cmd_size.unwrap_or(cmd.len() as u32).to_be_bytes());
                body.extend_from_slice(&cmd);
                body.extend_from_slice(&rest);
                let mut out = total.unwrap_or(body.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&body);
                out
            },
        )
}

/// CRC32C (Castagnoli), bit by bit: independent of the decoder's table-driven one.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A batched entry's payload: each member's metadata size, metadata and payload.
fn batch_payload(members: &[(SingleMessageMetadata, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (meta, data) in members {
        out.extend_from_slice(&(meta.encoded_len() as u32).to_be_bytes());
        meta.encode(&mut out).unwrap();
        out.extend_from_slice(data);
    }
    out
}

fn batch_member() -> impl Strategy<Value = (SingleMessageMetadata, Vec<u8>)> {
    (
        prop::collection::vec(any::<u8>(), 0..32),
        prop::option::weighted(0.1, any::<i32>()),
        prop::option::of("[a-z]{0,5}"),
    )
        .prop_map(|(data, lie, key)| {
            let meta = SingleMessageMetadata {
                payload_size: lie.unwrap_or(data.len() as i32),
                partition_key: key,
                ..Default::default()
            };
            (meta, data)
        })
}

/// Splits a batched entry as the consumer does; the messages' payloads, or the error.
fn split(count: Option<i32>, data: Vec<u8>) -> (Result<Vec<Vec<u8>>, String>, usize) {
    let payload = Payload {
        metadata: MessageMetadata {
            producer_name: "p".into(),
            num_messages_in_batch: count,
            ..Default::default()
        },
        data,
    };
    let id = MessageIdData {
        ledger_id: 1,
        entry_id: 2,
        ..Default::default()
    };
    meter::peak(|| match BatchedMessageIterator::new(id, payload) {
        Ok(messages) => Ok(messages.map(|(_, p)| p.data).collect()),
        Err(e) => Err(e.to_string()),
    })
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes: frames, "need more bytes" or an error; never a panic, never more
    /// memory than the input justifies.
    #[test]
    fn frames_from_random_bytes(input in prop::collection::vec(any::<u8>(), 0..256)) {
        let (messages, _, peak) = decode_all(&input);
        prop_assert!(peak <= justified(input.len()), "{} bytes for {}", peak, input.len());
        for m in messages {
            prop_assert!(m.payload.map_or(0, |p| p.data.len()) <= input.len());
        }
    }

    /// Frames whose sizes, magic number and CRC may each lie: decoded only if the CRC
    /// matches what was sent; a size past the input waits for more bytes without
    /// allocating for it.
    #[test]
    fn frames_with_lying_fields(input in hostile_frame()) {
        let (messages, end, peak) = decode_all(&input);
        prop_assert!(peak <= justified(input.len()), "{} bytes for {}", peak, input.len());
        let total = u32::from_be_bytes(input[..4].try_into().unwrap()) as usize;
        if total + 4 > input.len() {
            prop_assert!(messages.is_empty());
            prop_assert_eq!(end, Ok(()));
        }
        for m in &messages {
            if let Some(p) = m.payload.as_ref().filter(|p| !p.data.is_empty()) {
                // The CRC held: the payload is bytes that were sent.
                prop_assert!(input.windows(p.data.len()).any(|w| w == p.data));
            }
        }
    }

    /// A valid frame decodes to what was sent; each of its prefixes waits for more bytes
    /// (nothing consumed, nothing allocated).
    #[test]
    fn valid_frames_and_their_prefixes(
        meta in metadata(),
        data in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let (bytes, _) = frame(meta.clone(), data.clone());
        let (messages, end, _) = decode_all(&bytes);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(messages.len(), 1);
        let payload = messages[0].payload.as_ref().unwrap();
        prop_assert_eq!(&payload.metadata, &meta);
        prop_assert_eq!(&payload.data, &data);

        let prefix = &bytes[..cut.index(bytes.len())];
        let mut buf = BytesMut::from(prefix);
        let (got, peak) = meter::peak(|| Codec.decode(&mut buf).map(|m| m.is_some()));
        prop_assert_eq!(got.ok(), Some(false));
        prop_assert_eq!(buf.len(), prefix.len());
        prop_assert_eq!(peak, 0);
    }

    /// One byte changed anywhere the CRC covers (metadata size, metadata, payload) or in
    /// the CRC itself: a decoding error, never a message.
    #[test]
    fn bad_checksums_are_errors(
        meta in metadata(),
        data in prop::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let (mut bytes, crc_at) = frame(meta, data);
        let i = crc_at + at.index(bytes.len() - crc_at);
        bytes[i] ^= flip;
        let (messages, end, _) = decode_all(&bytes);
        prop_assert!(messages.is_empty());
        prop_assert!(end.is_err());
    }

    /// Valid frames back to back, with up to three bytes overwritten anywhere (sizes,
    /// command, magic number, CRC, metadata, payload): never a panic, never more memory than
    /// the input justifies, and a message only where the CRC still holds.
    #[test]
    fn frames_with_bytes_changed_anywhere(
        frames in prop::collection::vec((metadata(), prop::collection::vec(any::<u8>(), 0..32)), 1..4),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut input = Vec::new();
        for (meta, data) in &frames {
            input.extend_from_slice(&frame(meta.clone(), data.clone()).0);
        }
        let clean = input.clone();
        for (at, b) in &changes {
            let i = at.index(input.len());
            input[i] = *b;
        }
        let (messages, end, peak) = decode_all(&input);
        prop_assert!(peak <= justified(input.len()), "{} bytes for {}", peak, input.len());
        if input == clean {
            prop_assert_eq!(end, Ok(()));
            prop_assert_eq!(messages.len(), frames.len());
        }
        for (m, (_, data)) in messages.iter().zip(&frames) {
            if let Some(p) = &m.payload {
                if input == clean {
                    prop_assert_eq!(&p.data, data);
                }
            }
        }
    }

    /// A batch as the producer wrote it, or with lying member sizes, a lying member count,
    /// cut short or with bytes changed: the messages that are there, or an error; never a
    /// panic, never more memory than the input justifies, never more messages than it holds.
    #[test]
    fn batches(
        members in prop::collection::vec(batch_member(), 0..8),
        count in prop::option::weighted(0.3, prop_oneof![any::<i32>(), Just(i32::MAX), Just(-1), 0..16i32]),
        cut in prop::option::weighted(0.2, any::<prop::sample::Index>()),
        flip in prop::option::weighted(0.2, (any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let mut data = batch_payload(&members);
        if let Some(cut) = cut {
            data.truncate(cut.index(data.len() + 1));
        }
        if let (Some((at, b)), false) = (flip, data.is_empty()) {
            let i = at.index(data.len());
            data[i] ^= b;
        }
        let honest = cut.is_none()
            && flip.is_none_or(|(_, b)| b == 0)
            && members.iter().all(|(m, d)| m.payload_size as usize == d.len());
        let len = data.len();
        let declared = count.unwrap_or(members.len() as i32);
        let (got, peak) = split(Some(declared), data);
        prop_assert!(peak <= justified(len), "{} bytes for {}", peak, len);
        match got {
            Ok(messages) => {
                prop_assert!(messages.len() <= len / 4);
                prop_assert!(messages.len() as u64 <= declared as u32 as u64);
                if honest {
                    let sent: Vec<_> = members.iter().map(|(_, d)| d.clone()).collect();
                    prop_assert_eq!(&messages[..], &sent[..messages.len()]);
                }
            }
            Err(e) => prop_assert!(!honest || declared as u32 as usize > members.len(), "{}", e),
        }
    }
}

/// Cases the properties are built around, spelled out.
mod cases {
    use super::*;

    #[test]
    fn a_huge_member_count_over_a_few_bytes_is_an_error_without_a_huge_vector() {
        for count in [i32::MAX, -1, 1 << 20] {
            let (got, peak) = split(Some(count), vec![0; 12]);
            assert!(got.is_err(), "{count}");
            assert!(peak <= justified(12), "{count}: {peak}");
        }
    }

    #[test]
    fn a_member_that_lies_about_its_payload_size_is_an_error() {
        for lie in [i32::MAX, -1, 100] {
            let meta = SingleMessageMetadata {
                payload_size: lie,
                ..Default::default()
            };
            let (got, peak) = split(Some(1), batch_payload(&[(meta, b"abc".to_vec())]));
            assert!(got.is_err(), "{lie}");
            assert!(peak <= justified(20), "{lie}: {peak}");
        }
    }

    /// The splitter parses a whole batch at once: each member costs one `BatchedMessage`,
    /// however small it is on the wire. 10,000 empty members (60 KB) stay within the bound.
    #[test]
    fn many_empty_members_cost_a_bounded_multiple_of_their_bytes() {
        let empty = SingleMessageMetadata::default();
        let members = vec![(empty, Vec::new()); 10_000];
        let data = batch_payload(&members);
        let len = data.len();
        let (got, peak) = split(Some(10_000), data);
        assert_eq!(got.unwrap().len(), 10_000);
        eprintln!(
            "{len} bytes -> {peak} bytes at most ({:.1} x)",
            peak as f64 / len as f64
        );
        assert!(peak <= justified(len), "{peak} for {len}");
    }

    /// The meter sees what it must.
    #[test]
    fn the_meter_counts() {
        let (v, peak) = meter::peak(|| vec![1u8; 1 << 20]);
        assert!(peak >= 1 << 20);
        drop(v);
    }

    #[test]
    fn an_entry_without_a_member_count_is_an_error() {
        let (got, _) = split(None, vec![0; 8]);
        assert!(got.is_err());
    }

    #[test]
    fn a_frame_size_of_4_gib_waits_for_bytes_and_allocates_nothing() {
        let mut input = u32::MAX.to_be_bytes().to_vec();
        input.extend_from_slice(&[0; 60]);
        let (messages, end, peak) = decode_all(&input);
        assert!(messages.is_empty());
        assert_eq!(end, Ok(()));
        assert_eq!(peak, 0);
    }
}
