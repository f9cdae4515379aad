//! The range bounds as given (`--from`, `--to`): checked while arguments are parsed, so a
//! bound in epoch seconds or a malformed message id fails before any I/O, and shown back in
//! the same form, which keys the range's checkpoints.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::range::Position;

/// Where reading starts in each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartBound {
    /// The first retained message.
    Earliest,
    /// The first message published at or after this instant (epoch ms), inclusive.
    PublishTime(i64),
    /// Strictly after the given message id (per partition index; `None` key = every partition).
    AfterId(Vec<(Option<u32>, Position)>),
}

/// Where reading stops in each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndBound {
    /// The last message that exists when the run starts (taken once per partition).
    Latest,
    /// Before the first message published at or after this instant (epoch ms), exclusive.
    PublishTime(i64),
    /// At the given message id, inclusive (per partition index; `None` key = every partition).
    AtId(Vec<(Option<u32>, Position)>),
}

/// Smallest integer accepted as epoch milliseconds: anything below 1e11 (1973-03-03 in ms)
/// can only be epoch seconds in practice, which the InLong chain is known to mix up.
const MIN_EPOCH_MS: i64 = 100_000_000_000;

fn parse_instant(s: &str, flag: &str) -> std::result::Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        if n != 0 && n.abs() < MIN_EPOCH_MS {
            return Err(format!(
                "{flag} {s} looks like epoch seconds; pulsar2mysql takes epoch milliseconds \
                 (use {}) or an RFC 3339 timestamp",
                n.saturating_mul(1000)
            ));
        }
        return Ok(n);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|_| {
            format!(
                "{flag} '{s}' is not a bound: use epoch milliseconds, an RFC 3339 timestamp \
                 (2024-05-01T10:00:00Z), or {}",
                if flag == "--from" {
                    "'earliest' or 'id:LEDGER:ENTRY'"
                } else {
                    "'latest' or 'id:LEDGER:ENTRY'"
                }
            )
        })
}

fn parse_ids(s: &str, flag: &str) -> std::result::Result<Vec<(Option<u32>, Position)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (partition, id) =
            match part.split_once('=') {
                Some((p, id)) => (
                    Some(p.trim().parse::<u32>().map_err(|_| {
                        format!("{flag}: '{p}' in '{part}' is not a partition index")
                    })?),
                    id,
                ),
                None => (None, part),
            };
        let pos = id
            .trim()
            .parse::<Position>()
            .map_err(|e| format!("{flag}: {e}"))?;
        out.push((partition, pos));
    }
    if out.len() > 1 && out.iter().any(|(p, _)| p.is_none()) {
        return Err(format!(
            "{flag}: with several ids, prefix each with its partition: id:0=L:E,1=L:E"
        ));
    }
    Ok(out)
}

impl FromStr for StartBound {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "earliest" | "" => Ok(StartBound::Earliest),
            s if s.starts_with("id:") => parse_ids(&s[3..], "--from").map(StartBound::AfterId),
            s => parse_instant(s, "--from").map(StartBound::PublishTime),
        }
    }
}

impl FromStr for EndBound {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "latest" | "" => Ok(EndBound::Latest),
            s if s.starts_with("id:") => parse_ids(&s[3..], "--to").map(EndBound::AtId),
            s => parse_instant(s, "--to").map(EndBound::PublishTime),
        }
    }
}

fn fmt_ids(ids: &[(Option<u32>, Position)]) -> String {
    ids.iter()
        .map(|(p, pos)| match p {
            Some(p) => format!("{p}={pos}"),
            None => pos.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for StartBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartBound::Earliest => f.write_str("earliest"),
            StartBound::PublishTime(ms) => write!(f, "{ms}"),
            StartBound::AfterId(ids) => write!(f, "id:{}", fmt_ids(ids)),
        }
    }
}

impl fmt::Display for EndBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndBound::Latest => f.write_str("latest"),
            EndBound::PublishTime(ms) => write!(f, "{ms}"),
            EndBound::AtId(ids) => write!(f, "id:{}", fmt_ids(ids)),
        }
    }
}

/// The id bound that applies to one partition, if any.
pub fn id_for_partition(
    ids: &[(Option<u32>, Position)],
    partition: Option<u32>,
) -> Option<Position> {
    ids.iter()
        .find(|(p, _)| p.is_none() || *p == partition)
        .map(|(_, pos)| *pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_are_refused_with_a_hint() {
        let err = "1732500000".parse::<StartBound>().unwrap_err();
        assert!(err.contains("epoch seconds"), "{err}");
        assert!(err.contains("1732500000000"), "{err}");
        assert_eq!(
            "1732500000000".parse::<StartBound>().unwrap(),
            StartBound::PublishTime(1_732_500_000_000)
        );
    }
    #[test]
    fn rfc3339_bounds() {
        assert_eq!(
            "2024-11-25T00:00:00Z".parse::<EndBound>().unwrap(),
            EndBound::PublishTime(1_732_492_800_000)
        );
        assert_eq!(
            "2024-11-25T08:00:00+08:00".parse::<EndBound>().unwrap(),
            EndBound::PublishTime(1_732_492_800_000)
        );
        assert!("yesterday".parse::<EndBound>().is_err());
    }
    #[test]
    fn id_bounds() {
        let b = "id:12:5".parse::<StartBound>().unwrap();
        assert_eq!(
            b,
            StartBound::AfterId(vec![(None, Position::new(12, 5, -1))])
        );
        let b = "id:0=12:5:3,2=14:0".parse::<EndBound>().unwrap();
        let EndBound::AtId(ids) = b else { panic!() };
        assert_eq!(
            id_for_partition(&ids, Some(2)),
            Some(Position::new(14, 0, -1))
        );
        assert_eq!(id_for_partition(&ids, Some(1)), None);
        assert!("id:12".parse::<EndBound>().is_err());
    }
}
