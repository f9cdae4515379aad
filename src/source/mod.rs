//! Source: a bounded range of a Pulsar topic, read partition by partition.
//!
//! Every message carries its [`Position`], so the sink can checkpoint exactly what it committed
//! and a re-run (or a reconnect) can drop anything at or before the last position seen.

use serde::Serialize;

mod admin;
pub mod bounds;
mod connect;
mod denied;
mod entry;
mod reader;

pub use self::connect::PulsarSource;
pub use self::reader::PartitionReader;
pub use crate::range::{Position, ResolvedRange};

/// The most bytes an entry may declare or inflate to: past it, it is never inflated and its
/// messages become `too_large` bad records (the vendored client's cap, named here so that the
/// pipeline need not reach into the client).
pub const MAX_ENTRY_BYTES: usize = pulsar::consumer::MAX_UNCOMPRESSED;

/// One message of the range, with what the sink needs to place and checkpoint it.
#[derive(Debug, Clone)]
pub struct SourceMessage {
    pub position: Position,
    /// Publish time in epoch milliseconds (set by the producer's client).
    pub publish_time: i64,
    pub payload: Vec<u8>,
    /// `(chunk id, chunks)` when the message is one chunk of a larger one (producer chunking).
    pub chunk: Option<(i32, i32)>,
    /// The size its entry declares or inflates to, when that is over the decompression cap:
    /// the entry was not inflated and `payload` is empty.
    pub too_large: Option<u64>,
}

/// One partition of the topic (`index` is `None` for a non-partitioned topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub index: Option<u32>,
    /// The topic name to subscribe to (`...-partition-N` for partitioned topics).
    pub topic: String,
}

impl Partition {
    /// The index stored in checkpoint rows: `-1` for a non-partitioned topic.
    pub fn checkpoint_index(&self) -> i32 {
        self.index.map_or(-1, |i| i as i32)
    }
}
