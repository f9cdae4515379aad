//! Dead letters: the records `--on-bad-record dead-letter` keeps in `p2m_dead_letter`
//! (topic, partition, message id, publish time, raw payload, reason), written in the batch's
//! transaction by statements sized to what the server accepts.

use std::fmt::Write as _;
use std::sync::Arc;

use super::sql::write_literal;
use crate::range::Position;
use crate::records::{BadRecord, Value};

/// A record that went to the dead-letter table.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: Arc<str>,
    pub partition: i32,
    pub position: Position,
    pub publish_time: i64,
    pub payload: Vec<u8>,
    pub reason: BadRecord,
}

/// The dead letters of a batch as INSERT statements of at most `max_bytes` each (the server
/// refuses a statement over `max_allowed_packet`, and a refused dead letter would stop every
/// re-run). A payload too large for a statement of its own is stored cut to fit, and its
/// detail says so: the message id names the whole record in Pulsar.
pub(super) fn statements(job_id: &str, dead: &[DeadLetter], max_bytes: usize) -> Vec<String> {
    const HEAD: &str = "INSERT INTO p2m_dead_letter (job_id, topic, partition_index, message_id, \
                        publish_time, payload, reason, detail) VALUES ";
    const TAIL: &str = " ON DUPLICATE KEY UPDATE reason = VALUES(reason), detail = VALUES(detail)";
    let mut statements = Vec::new();
    let mut sql = String::new();
    let mut row = String::new();
    for d in dead {
        row.clear();
        row.push('(');
        write_literal(&mut row, &Value::Text(job_id));
        row.push(',');
        write_literal(&mut row, &Value::Text(&d.topic));
        let _ = write!(row, ",{},", d.partition);
        write_literal(&mut row, &Value::Text(&d.position.to_string()));
        let _ = write!(row, ",{},", d.publish_time);
        let fixed = row.len() + 2 * 1024 + 64; // the reason and detail below, escaped, and more
                                               // Hex doubles the bytes: what fits beside the statement's head, tail and other fields.
        let room = max_bytes.saturating_sub(HEAD.len() + TAIL.len() + fixed) / 2;
        let (payload, cut) = if d.payload.len() > room {
            (&d.payload[..room], true)
        } else {
            (&d.payload[..], false)
        };
        write_literal(&mut row, &Value::Bytes(payload));
        row.push(',');
        write_literal(&mut row, &Value::Text(d.reason.reason.as_str()));
        row.push(',');
        let mut detail = d.reason.to_string();
        if cut {
            detail = format!(
                "payload cut to its first {room} of {} bytes to fit max_allowed_packet; {detail}",
                d.payload.len()
            );
        }
        let detail: String = detail.chars().take(1000).collect();
        write_literal(&mut row, &Value::Text(&detail));
        row.push(')');
        if !sql.is_empty() && sql.len() + 1 + row.len() + TAIL.len() > max_bytes {
            sql.push_str(TAIL);
            statements.push(std::mem::take(&mut sql));
        }
        if sql.is_empty() {
            sql.push_str(HEAD);
        } else {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    if !sql.is_empty() {
        sql.push_str(TAIL);
        statements.push(sql);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_split_into_statements_the_server_accepts() {
        let dead = |n: usize, size: usize| {
            (0..n)
                .map(|i| DeadLetter {
                    topic: "t".into(),
                    partition: 0,
                    position: Position::new(1, i as i64, -1),
                    publish_time: 7,
                    payload: vec![0xab; size],
                    reason: BadRecord::chunk(0, 2),
                })
                .collect::<Vec<_>>()
        };
        let max = 64 * 1024;
        // 40 payloads of 10 kB: 800 kB of hex, in statements of at most 64 kB.
        let many = statements("j", &dead(40, 10_000), max);
        assert!(many.len() >= 13, "{} statements", many.len());
        assert!(many.iter().all(|s| s.len() <= max));
        let rows: usize = many.iter().map(|s| s.matches("'1:").count()).sum();
        assert_eq!(rows, 40);
        // One payload larger than a statement: stored cut, and the detail says so.
        let big = statements("j", &dead(1, 1 << 20), max);
        assert_eq!(big.len(), 1);
        assert!(big[0].len() <= max, "{}", big[0].len());
        assert!(big[0].contains("payload cut to its first"));
        assert!(statements("j", &[], max).is_empty());
    }
}
