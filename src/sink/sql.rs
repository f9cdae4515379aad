//! SQL text: literals written into statements (the INSERT path, the fence, the checkpoints,
//! the dead letters) and quoted identifiers. The bottom of the sink: it uses no other file of
//! it.

use std::fmt::Write as _;

use crate::records::Value;

/// Quotes an identifier with backquotes, doubling any backquote inside.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
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

    fn lit(v: Value<'_>) -> String {
        let mut s = String::new();
        write_literal(&mut s, &v);
        s
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

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }
}
