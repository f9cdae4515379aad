//! SQL text: literals written into statements (the INSERT path, the fence, the dead letters),
//! and the dead letters' INSERT statements sized to what the server accepts.

use std::fmt::Write as _;

use super::batch::DeadLetter;
use crate::records::Value;

/// The dead letters of a batch as INSERT statements of at most `max_bytes` each (the server
/// refuses a statement over `max_allowed_packet`, and a refused dead letter would stop every
/// re-run). A payload too large for a statement of its own is stored cut to fit, and its
/// detail says so: the message id names the whole record in Pulsar.
pub(super) fn dead_letter_statements(
    job_id: &str,
    dead: &[DeadLetter],
    max_bytes: usize,
) -> Vec<String> {
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

/// Appends `v` as a SQL literal. Text is quoted with backslash escapes (the session's sql_mode
/// has no NO_BACKSLASH_ESCAPES), bytes are written as hex, numbers as digits.
pub fn write_literal(out: &mut String, v: &Value<'_>) {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) | Value::Bits(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Decimal(d) => out.push_str(d),
        Value::Float(f) => {
            let _ = write!(out, "{f:e}");
        }
        Value::Text(s) => {
            out.push('\'');
            let bytes = s.as_bytes();
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                let esc = match b {
                    b'\'' => "\\'",
                    b'\\' => "\\\\",
                    0 => "\\0",
                    b'\n' => "\\n",
                    b'\r' => "\\r",
                    0x1a => "\\Z",
                    _ => continue,
                };
                out.push_str(&s[start..i]);
                out.push_str(esc);
                start = i + 1;
            }
            out.push_str(&s[start..]);
            out.push('\'');
        }
        Value::Bytes(b) => {
            out.push_str("X'");
            for byte in b.iter() {
                let _ = write!(out, "{byte:02X}");
            }
            out.push('\'');
        }
        Value::Date(d) => {
            let _ = write!(out, "'{}'", d.format("%Y-%m-%d"));
        }
        Value::DateTime(dt) => {
            let _ = write!(out, "'{}'", dt.format("%Y-%m-%d %H:%M:%S%.6f"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::Position;
    use crate::records::BadRecord;

    fn lit(v: Value<'_>) -> String {
        let mut s = String::new();
        write_literal(&mut s, &v);
        s
    }

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
        let many = dead_letter_statements("j", &dead(40, 10_000), max);
        assert!(many.len() >= 13, "{} statements", many.len());
        assert!(many.iter().all(|s| s.len() <= max));
        let rows: usize = many.iter().map(|s| s.matches("'1:").count()).sum();
        assert_eq!(rows, 40);
        // One payload larger than a statement: stored cut, and the detail says so.
        let big = dead_letter_statements("j", &dead(1, 1 << 20), max);
        assert_eq!(big.len(), 1);
        assert!(big[0].len() <= max, "{}", big[0].len());
        assert!(big[0].contains("payload cut to its first"));
        assert!(dead_letter_statements("j", &[], max).is_empty());
    }

    #[test]
    fn literals_escape_everything_that_matters() {
        assert_eq!(lit(Value::Text("it's")), r"'it\'s'");
        assert_eq!(lit(Value::Text("a\\b")), r"'a\\b'");
        assert_eq!(lit(Value::Text("n\0\n\r\u{1a}")), r"'n\0\n\r\Z'");
        assert_eq!(lit(Value::Text("é")), "'é'");
        assert_eq!(lit(Value::Bytes(&[0, 255])), "X'00FF'");
        assert_eq!(lit(Value::Int(-5)), "-5");
        assert_eq!(lit(Value::Null), "NULL");
        assert_eq!(lit(Value::Float(1.5)), "1.5e0");
    }
}
