//! Batches as data: the rows of a write stream's partitions (multi-row INSERT statements or
//! LOAD DATA input), their dead letters, and each partition's checkpoint move ([`Span`]), ready
//! to commit together. Built by `batch_builder.rs`, committed by `commit.rs`.

use std::sync::Arc;

use super::checkpoint::Span;
use super::dead_letter::DeadLetter;
use super::tsv::TsvData;
use crate::range::Position;

/// A LOAD DATA batch still being filled, which the writer may start loading already.
pub struct OpenBatch {
    pub(super) statement: Arc<str>,
    pub(super) data: TsvData,
    /// Every partition the batch may hold rows of, with the checkpoint the batch follows (see
    /// [`Span::after`]): the early load fences them all, since rows of any of them may still
    /// join the batch.
    pub(super) fenced: Vec<(i32, Option<Position>)>,
}

/// The rows of a batch, in the form the sink's write strategy sends.
#[derive(Debug, Clone)]
pub enum Body {
    /// Complete multi-row INSERT statements and the number of rows in each.
    Statements(Vec<(String, u64)>),
    /// Tab-separated rows (complete) and the LOAD DATA statement that reads them.
    Tsv { statement: Arc<str>, data: TsvData },
}

impl Default for Body {
    fn default() -> Self {
        Body::Statements(Vec::new())
    }
}

/// Rows of the partitions a write stream reads, ready to commit together with each one's
/// checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub body: Body,
    pub rows: u64,
    pub dead_letters: Vec<DeadLetter>,
    pub spans: Vec<Span>,
}

impl Batch {
    /// Whether the batch consumed nothing (no row, no bad record): nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.spans.iter().all(|s| s.last.is_none())
    }

    /// The partitions with records in the batch, for logs and messages: `3` or `0, 2, 5`.
    pub fn partitions(&self) -> String {
        let names: Vec<String> = self
            .spans
            .iter()
            .filter(|s| s.last.is_some())
            .map(|s| s.partition.to_string())
            .collect();
        names.join(", ")
    }
}
