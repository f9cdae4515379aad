//! Bad records: why a record could not become a row, and where.

use std::fmt;

use serde::Serialize;

/// Why a record could not become a row; the label used in metrics and the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReason {
    /// Too few or too many fields.
    FieldCount,
    /// Bytes that are not UTF-8 for a text column.
    InvalidUtf8,
    /// A value that does not parse as the column's type.
    InvalidValue,
    /// A number outside the column's range or precision.
    OutOfRange,
    /// Text or bytes longer than the column.
    TooLong,
    /// NULL for a NOT NULL column.
    NullNotAllowed,
    /// Structurally broken (e.g. a trailing escape).
    Malformed,
    /// One chunk of a message the producer split (producer chunking): never a row of its own.
    Chunked,
    /// An entry that declares or inflates to more than the decompression cap.
    TooLarge,
}

impl BadReason {
    /// Stable label for metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::FieldCount => "field_count",
            BadReason::InvalidUtf8 => "invalid_utf8",
            BadReason::InvalidValue => "invalid_value",
            BadReason::OutOfRange => "out_of_range",
            BadReason::TooLong => "too_long",
            BadReason::NullNotAllowed => "null_not_allowed",
            BadReason::Malformed => "malformed",
            BadReason::Chunked => "chunked",
            BadReason::TooLarge => "too_large",
        }
    }
}

/// A record that cannot become a row: the reason, the column if one is to blame, and a
/// sentence for the person reading the dead-letter table or the log.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRecord {
    pub reason: BadReason,
    pub column: Option<String>,
    pub detail: String,
}

impl BadRecord {
    /// Chunk `id` (from 0) of a message the producer split into `of` chunks. Each chunk is only
    /// a slice of the record's bytes; written as a row, one could pass every check and be wrong.
    pub fn chunk(id: i32, of: i32) -> Self {
        BadRecord::new(
            BadReason::Chunked,
            None,
            format!(
                "chunk {} of {of} of a message the producer split (producer chunking); \
                 pulsar2mysql does not reassemble chunked messages: keep records under the \
                 broker's maxMessageSize or turn chunking off",
                id + 1
            ),
        )
    }

    /// A message whose entry declares or inflates to `size` bytes, over the cap of `cap`: not
    /// inflated (a decompression bomb, or a record larger than any row can be).
    pub fn too_large(size: u64, cap: usize) -> Self {
        BadRecord::new(
            BadReason::TooLarge,
            None,
            format!(
                "its entry inflates to {size} bytes, over the {cap}-byte cap per entry; it was \
                 not decompressed (a decompression bomb, or a record no row can hold)"
            ),
        )
    }

    /// A row whose SQL alone is `bytes` long, over the `max` bytes of a statement the server
    /// accepts (`max_allowed_packet`): the server would refuse it on every re-run.
    pub fn row_too_large(bytes: usize, max: usize) -> Self {
        BadRecord::new(
            BadReason::TooLarge,
            None,
            format!(
                "the row is {bytes} bytes as SQL, over the {max} bytes of a statement the server \
                 accepts (its max_allowed_packet)"
            ),
        )
    }

    pub(super) fn new(reason: BadReason, column: Option<&str>, detail: String) -> Self {
        BadRecord {
            reason,
            column: column.map(str::to_string),
            detail,
        }
    }
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(
                f,
                "{} (column `{c}`): {}",
                self.reason.as_str(),
                self.detail
            ),
            None => write!(f, "{}: {}", self.reason.as_str(), self.detail),
        }
    }
}

/// A conversion's result: the value, or why the field is a bad record and a detail.
pub(super) type Conv<T> = Result<T, (BadReason, String)>;

/// A field as a bad record's detail shows it: quoted, at most 40 characters (a 5 MB field
/// must not fill the logs, the summary and the dead-letter table).
pub(super) fn show(raw: &str) -> String {
    let mut s: String = raw.chars().take(40).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    format!("{s:?}")
}
