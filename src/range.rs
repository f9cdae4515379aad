//! Where messages sit in a partition, and how a partition's range was resolved and why its
//! reading stopped: the vocabulary that the configuration's bounds, the source, the sink's
//! checkpoints and the summary share (so none of them reaches into another for it).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A message's place in its partition, ordered as the broker orders them:
/// ledger, then entry, then index inside a batched entry (`-1` when not batched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub ledger_id: i64,
    pub entry_id: i64,
    pub batch_index: i32,
}

impl Position {
    /// A position from its three parts.
    pub const fn new(ledger_id: i64, entry_id: i64, batch_index: i32) -> Self {
        Position {
            ledger_id,
            entry_id,
            batch_index,
        }
    }

    /// The latest position strictly before this message, for "reading stopped right before
    /// it": the previous message of its batch, else the whole previous entry, else (the first
    /// entry of a ledger) a place before the ledger's first entry (`entry_id` -1), since the
    /// previous ledger's last entry is not known here.
    pub fn just_before(&self) -> Position {
        if self.batch_index > 0 {
            Position::new(self.ledger_id, self.entry_id, self.batch_index - 1)
        } else {
            Position::new(self.ledger_id, self.entry_id - 1, i32::MAX)
        }
    }

    /// Whether `self` is the same entry as `other`, or an earlier one.
    pub fn entry_at_or_before(&self, other: &Position) -> bool {
        (self.ledger_id, self.entry_id) <= (other.ledger_id, other.entry_id)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.batch_index >= 0 {
            write!(
                f,
                "{}:{}:{}",
                self.ledger_id, self.entry_id, self.batch_index
            )
        } else {
            write!(f, "{}:{}", self.ledger_id, self.entry_id)
        }
    }
}

impl FromStr for Position {
    type Err = String;

    /// `LEDGER:ENTRY` or `LEDGER:ENTRY:BATCH_INDEX`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| p.trim().parse::<i64>().ok();
        match parts.as_slice() {
            [l, e] => match (num(l), num(e)) {
                (Some(l), Some(e)) => Ok(Position::new(l, e, -1)),
                _ => Err(format!(
                    "'{s}' is not a message id (LEDGER:ENTRY[:BATCH_INDEX])"
                )),
            },
            [l, e, b] => match (num(l), num(e), num(b)) {
                (Some(l), Some(e), Some(b)) if b >= -1 && b <= i32::MAX as i64 => {
                    Ok(Position::new(l, e, b as i32))
                }
                _ => Err(format!(
                    "'{s}' is not a message id (LEDGER:ENTRY[:BATCH_INDEX])"
                )),
            },
            _ => Err(format!(
                "'{s}' is not a message id (LEDGER:ENTRY[:BATCH_INDEX])"
            )),
        }
    }
}

/// Why a partition's reader stopped (reported in the summary as snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The last message that existed when the run started was read.
    EndOfPartition,
    /// A message published at or after `--to` was seen.
    EndOfWindow,
    /// The `--to id:` bound was read.
    StopIdReached,
    /// The start (checkpoint, id bound or window start) is already at or past the end.
    AlreadyAtEnd,
}

impl StopReason {
    /// The summary's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndOfPartition => "end_of_partition",
            StopReason::EndOfWindow => "end_of_window",
            StopReason::StopIdReached => "stop_id_reached",
            StopReason::AlreadyAtEnd => "already_at_end",
        }
    }
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
    pub stopped_because: Option<StopReason>,
    /// Where the job's previous window stopped in this partition, when this window was chained
    /// after it (reading then starts right after it, whatever the publish times).
    pub previous_window_end: Option<String>,
    /// The last position read (written or skipped): where this window stopped.
    #[serde(skip)]
    pub last_read: Option<Position>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_like_the_broker() {
        let a = Position::new(10, 5, -1);
        let b = Position::new(10, 5, 0);
        let c = Position::new(10, 6, -1);
        let d = Position::new(11, 0, -1);
        assert!(a < b && b < c && c < d);
        assert!(b.entry_at_or_before(&a));
    }

    #[test]
    fn just_before_is_the_last_position_before() {
        for p in [
            Position::new(10, 5, 3),
            Position::new(10, 5, 0),
            Position::new(10, 5, -1),
            Position::new(10, 0, -1),
        ] {
            let before = p.just_before();
            assert!(before < p, "{p} {before:?}");
            // Nothing of another message lies between them.
            assert!(Position::new(10, 4, 7) <= before || p.entry_id == 0);
        }
        assert_eq!(
            Position::new(10, 5, 3).just_before(),
            Position::new(10, 5, 2)
        );
        assert_eq!(
            Position::new(10, 0, -1).just_before(),
            Position::new(10, -1, i32::MAX)
        );
        assert!(Position::new(9, 99, -1) < Position::new(10, 0, -1).just_before());
    }

    #[test]
    fn position_round_trips() {
        for s in ["12:5", "12:5:3"] {
            assert_eq!(s.parse::<Position>().unwrap().to_string(), s);
        }
        assert!("12".parse::<Position>().is_err());
        assert!("a:b".parse::<Position>().is_err());
    }
}
