//! The range a partition's reader delivers, as pure decisions: which message is in it, which
//! is a replay, and when the partition is done. Exactly once rests on these rules; they live
//! here, apart from the consumer that feeds them, so every boundary case is a unit test.

pub use crate::range::StopReason;

use super::Position;

/// One partition's range: where it starts, where it ends, and the window in between.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Reading starts strictly after this position (checkpoint, `--from id:`, previous window).
    pub start_after: Option<Position>,
    /// The window's first message as the admin API found it; the reader subscribes there.
    pub window_start: Option<Position>,
    /// Publish-time lower bound (inclusive, epoch ms).
    pub from_publish_time: Option<i64>,
    /// Publish-time upper bound (exclusive, epoch ms).
    pub to_publish_time: Option<i64>,
    /// Message-id upper bound (inclusive).
    pub stop_at: Option<Position>,
    /// The partition's last message when the run started; `None` when the broker named none.
    pub end: Option<Position>,
}

/// What to do with one delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// At or before the last position seen: a replay after a reconnect or a resume inside a
    /// batched entry. Dropped; nothing changes.
    Replay,
    /// Past the range: dropped, and the partition is done.
    Stop(StopReason),
    /// In the range as far as positions go: it becomes the last position seen. `deliver` is
    /// false for a message published before the window (skipped, not written); `then_stop`
    /// says the partition is done after it.
    Read {
        deliver: bool,
        then_stop: Option<StopReason>,
    },
}

impl Bounds {
    /// Whether nothing of the range is left before reading anything: the start is at or past
    /// the end snapshot, or the window's first message lies past it.
    pub fn already_at_end(&self) -> bool {
        if let (Some(end), Some(after)) = (self.end, self.start_after) {
            // A whole entry (not batched, or a bound without batch index) at or past the end
            // entry, or the end's own last message (the broker names the last message of a
            // batched entry by its batch index): nothing of the snapshot is left to read.
            let whole = after.batch_index < 0 || after.batch_index == i32::MAX;
            let last_of_end = end.batch_index >= 0 && after.batch_index >= end.batch_index;
            if entry_key(after) > entry_key(end)
                || (entry_key(after) == entry_key(end) && (whole || last_of_end))
            {
                return true;
            }
        }
        // A window whose first message lies past the snapshot (a topic quiet since before
        // `from`): nothing of the snapshot is in the window.
        if let (Some(end), None, Some(first)) = (self.end, self.start_after, self.window_start) {
            if entry_key(first) > entry_key(end) {
                return true;
            }
        }
        false
    }

    /// Decides about the message at `position`, published at `publish_time`, in an entry of
    /// `batch_size` messages (`None`: not batched), given the last position seen.
    pub fn admit(
        &self,
        last_seen: Option<Position>,
        position: Position,
        publish_time: i64,
        batch_size: Option<i32>,
    ) -> Admit {
        if last_seen.is_some_and(|seen| position <= seen) {
            return Admit::Replay;
        }
        if self
            .end
            .is_some_and(|end| entry_key(position) > entry_key(end))
        {
            return Admit::Stop(StopReason::EndOfPartition);
        }
        if self.stop_at.is_some_and(|stop| position > stop) {
            return Admit::Stop(StopReason::StopIdReached);
        }
        if self.to_publish_time.is_some_and(|to| publish_time >= to) {
            return Admit::Stop(StopReason::EndOfWindow);
        }
        let last_of_entry =
            position.batch_index < 0 || batch_size.is_some_and(|n| position.batch_index + 1 >= n);
        let mut then_stop = None;
        if last_of_entry
            && self
                .end
                .is_some_and(|e| entry_key(position) == entry_key(e))
        {
            then_stop = Some(StopReason::EndOfPartition);
        }
        if self.stop_at.is_some_and(|stop| position >= stop) {
            then_stop = Some(StopReason::StopIdReached);
        }
        let deliver = self
            .from_publish_time
            .is_none_or(|from| publish_time >= from);
        Admit::Read { deliver, then_stop }
    }

    /// Whether a partition that received nothing for a whole idle period has read everything
    /// that existed at the start: with no end snapshot, yes; otherwise once a message of the
    /// end entry was seen (entries arrive whole, so the rest of it was delivered too).
    pub fn caught_up(&self, last_seen: Option<Position>) -> bool {
        match (self.end, last_seen) {
            (None, _) => true,
            (Some(end), Some(seen)) => entry_key(seen) >= entry_key(end),
            (Some(_), None) => false,
        }
    }
}

/// Upper end of a position range where a missing batch index means "the whole entry".
pub fn entry_end(p: Position) -> Position {
    if p.batch_index < 0 {
        Position::new(p.ledger_id, p.entry_id, i32::MAX)
    } else {
        p
    }
}

/// A position for people: a whole-entry bound is shown without its batch index.
pub fn show(p: Position) -> String {
    if p.batch_index == i32::MAX {
        Position::new(p.ledger_id, p.entry_id, -1).to_string()
    } else {
        p.to_string()
    }
}

/// The entry a position belongs to: the unit the broker delivers and `get_last_message_id`
/// names.
fn entry_key(p: Position) -> (i64, i64) {
    (p.ledger_id, p.entry_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(entry: i64, batch_index: i32) -> Position {
        Position::new(7, entry, batch_index)
    }

    fn read(then_stop: Option<StopReason>) -> Admit {
        Admit::Read {
            deliver: true,
            then_stop,
        }
    }

    #[test]
    fn a_bound_without_batch_index_covers_the_whole_entry() {
        let end = entry_end(Position::new(5, 9, -1));
        assert!(Position::new(5, 9, 99) <= end);
        assert!(Position::new(5, 10, -1) > end);
        assert_eq!(entry_end(Position::new(5, 9, 2)), Position::new(5, 9, 2));
        assert_eq!(show(end), "5:9");
    }

    #[test]
    fn the_first_message_of_a_window_is_in_it_and_earlier_ones_are_skipped() {
        let b = Bounds {
            from_publish_time: Some(1_000),
            to_publish_time: Some(2_000),
            ..Default::default()
        };
        // Before the window: read past (it moves the position) but not delivered.
        assert_eq!(
            b.admit(None, p(1, -1), 999, None),
            Admit::Read {
                deliver: false,
                then_stop: None
            }
        );
        // Exactly at `from`: inclusive.
        assert_eq!(b.admit(Some(p(1, -1)), p(2, -1), 1_000, None), read(None));
        assert_eq!(b.admit(Some(p(2, -1)), p(3, -1), 1_999, None), read(None));
        // Exactly at `to`: exclusive, the partition is done.
        assert_eq!(
            b.admit(Some(p(3, -1)), p(4, -1), 2_000, None),
            Admit::Stop(StopReason::EndOfWindow)
        );
    }

    #[test]
    fn replays_after_a_reconnect_or_inside_a_batch_are_dropped() {
        let b = Bounds::default();
        assert_eq!(b.admit(Some(p(5, 3)), p(5, 3), 0, Some(10)), Admit::Replay);
        assert_eq!(b.admit(Some(p(5, 3)), p(5, 1), 0, Some(10)), Admit::Replay);
        assert_eq!(b.admit(Some(p(5, 3)), p(4, -1), 0, None), Admit::Replay);
        assert_eq!(b.admit(Some(p(5, 3)), p(5, 4), 0, Some(10)), read(None));
    }

    #[test]
    fn the_end_entry_ends_the_partition_after_its_last_message() {
        // The broker names a batched end entry by its last message's index.
        let b = Bounds {
            end: Some(p(9, 4)),
            ..Default::default()
        };
        assert_eq!(b.admit(Some(p(8, -1)), p(9, 0), 0, Some(5)), read(None));
        assert_eq!(
            b.admit(Some(p(9, 3)), p(9, 4), 0, Some(5)),
            read(Some(StopReason::EndOfPartition))
        );
        // Anything past the end entry (published after the run started) is not read.
        assert_eq!(
            b.admit(Some(p(9, 4)), p(10, -1), 0, None),
            Admit::Stop(StopReason::EndOfPartition)
        );
        // A non-batched end entry.
        let b = Bounds {
            end: Some(p(9, -1)),
            ..Default::default()
        };
        assert_eq!(
            b.admit(Some(p(8, -1)), p(9, -1), 0, None),
            read(Some(StopReason::EndOfPartition))
        );
    }

    #[test]
    fn a_stop_id_inside_a_batch_is_inclusive() {
        let b = Bounds {
            stop_at: Some(p(6, 2)),
            end: Some(p(9, -1)),
            ..Default::default()
        };
        assert_eq!(b.admit(Some(p(6, 0)), p(6, 1), 0, Some(5)), read(None));
        assert_eq!(
            b.admit(Some(p(6, 1)), p(6, 2), 0, Some(5)),
            read(Some(StopReason::StopIdReached))
        );
        assert_eq!(
            b.admit(Some(p(6, 2)), p(6, 3), 0, Some(5)),
            Admit::Stop(StopReason::StopIdReached)
        );
        // A stop id without batch index covers its whole entry: the entry's last message is
        // read, and the next entry's first stops the partition.
        let b = Bounds {
            stop_at: Some(entry_end(p(6, -1))),
            ..Default::default()
        };
        assert_eq!(b.admit(Some(p(6, 3)), p(6, 4), 0, Some(5)), read(None));
        assert_eq!(
            b.admit(Some(p(6, 4)), p(7, 0), 0, Some(5)),
            Admit::Stop(StopReason::StopIdReached)
        );
    }

    #[test]
    fn a_start_at_or_past_the_end_has_nothing_to_read() {
        let end = Some(p(9, 4));
        let at = |after: Position| Bounds {
            start_after: Some(after),
            end,
            ..Default::default()
        };
        assert!(at(p(9, 4)).already_at_end(), "the end's last message");
        assert!(at(p(10, -1)).already_at_end(), "past the end entry");
        assert!(at(p(9, -1)).already_at_end(), "the whole end entry");
        assert!(!at(p(9, 2)).already_at_end(), "inside the end entry");
        assert!(!at(p(8, -1)).already_at_end());
        // A window that starts past the snapshot.
        let quiet = Bounds {
            window_start: Some(p(12, -1)),
            end,
            ..Default::default()
        };
        assert!(quiet.already_at_end());
        // No end snapshot: never known to be at the end in advance.
        assert!(!Bounds {
            start_after: Some(p(9, 4)),
            ..Default::default()
        }
        .already_at_end());
    }

    #[test]
    fn an_idle_partition_is_caught_up_once_it_saw_the_end_entry() {
        let b = Bounds {
            end: Some(p(9, 4)),
            ..Default::default()
        };
        assert!(!b.caught_up(None));
        assert!(!b.caught_up(Some(p(8, -1))));
        assert!(b.caught_up(Some(p(9, 0))));
        assert!(Bounds::default().caught_up(None));
    }

    #[test]
    fn stop_reasons_have_the_summary_names() {
        let json = serde_json::to_string(&StopReason::EndOfWindow).unwrap();
        assert_eq!(json, "\"end_of_window\"");
        assert_eq!(StopReason::AlreadyAtEnd.as_str(), "already_at_end");
    }
}
