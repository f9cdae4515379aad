//! Property tests for hostile records: the splitter, escapes, the null literal and every
//! column type's converter. Whatever the bytes, a record becomes either a row whose values
//! fit their columns or a bad record with the right reason; nothing panics.
//! (RELIABILITY.md, "Hostile input".)
//!
//! One file per topic, the strategies and oracles they share here: `rows.rs` (the splitter,
//! escapes, the null literal, whole records against whole tables), `values.rs` (one field
//! against each column type), `found.rs` (what the properties found, kept as plain tests).

use chrono::{Datelike, NaiveDate, Timelike};
use proptest::prelude::*;

use super::*;

/// Cases per property: enough to hit the edges, small enough for a few seconds each in a
/// debug build on a shared machine.
const CASES: u32 = 1000;

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES=100000 for a deeper run.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        // Failures are kept as named regression tests in found.rs, not as files next to the source.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes with the interesting ones over-represented: delimiters, escapes, the null
/// literal's letters, NUL, bytes that start or continue multi-byte UTF-8 sequences.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        2 => prop::sample::select(vec![b'|', b'\\', b',', b'\t', b'N', b'\n', 0, 0x80, 0xc3, 0xe2, 0xff]),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(byte(), 0..max)
}

fn col(ty: ColumnType) -> Column {
    Column {
        name: "c".into(),
        ty,
        nullable: true,
        has_default: false,
        auto_increment: false,
    }
}

/// Every column type, with small and large limits.
fn column_type() -> impl Strategy<Value = ColumnType> {
    prop_oneof![
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| ColumnType::Int {
            min: a.min(b),
            max: a.max(b)
        }),
        any::<u64>().prop_map(|max| ColumnType::UInt { max }),
        Just(ColumnType::Bool),
        decimal_type(),
        prop::sample::select(vec![ColumnType::DOUBLE, ColumnType::FLOAT]),
        any::<bool>().prop_map(|unsigned| ColumnType::Float {
            max: f64::MAX,
            unsigned
        }),
        (0..20u64, 0..80u64, charset()).prop_map(|(max_chars, max_bytes, charset)| {
            ColumnType::Text {
                max_chars,
                max_bytes,
                charset,
            }
        }),
        (0..40u64).prop_map(|max_bytes| ColumnType::Binary { max_bytes }),
        prop::collection::vec("[a-zA-Z ]{0,4}", 0..4).prop_map(ColumnType::Enum),
        Just(ColumnType::Date),
        (0..=6u8).prop_map(|fsp| ColumnType::DateTime { fsp }),
        (0..=6u8).prop_map(|fsp| ColumnType::Timestamp { fsp }),
        (0..=6u8).prop_map(|fsp| ColumnType::Time { fsp }),
        Just(ColumnType::Year),
        prop::collection::vec("[a-z]{1,3}", 0..4).prop_map(ColumnType::Set),
        (1..=64u32).prop_map(|bits| ColumnType::Bit { bits }),
        Just(ColumnType::Json),
        Just(ColumnType::Other),
    ]
}

fn charset() -> impl Strategy<Value = Charset> {
    prop::sample::select(vec![
        Charset::Unicode,
        Charset::Bmp,
        Charset::Latin1,
        Charset::Ascii,
        Charset::Unchecked,
    ])
}

/// The bytes `s` takes in a column of this character set (what the column's byte limit
/// counts): one per character in latin1 and ascii, UTF-8's in utf8mb3 and utf8mb4.
fn column_bytes(s: &str, charset: Charset) -> u64 {
    match charset {
        Charset::Latin1 | Charset::Ascii => s.chars().count() as u64,
        _ => s.len() as u64,
    }
}

/// Whether a column of this character set can store every character of `s`.
fn storable(s: &str, charset: Charset) -> bool {
    s.chars().all(|c| match charset {
        Charset::Unicode | Charset::Unchecked => true,
        Charset::Bmp => (c as u32) <= 0xffff,
        Charset::Ascii => c.is_ascii(),
        // Windows-1252, as MySQL's latin1 (which also maps its five undefined bytes).
        Charset::Latin1 => {
            let mut buf = [0u8; 4];
            c.is_ascii()
                || (0xa0..=0xff).contains(&(c as u32))
                || "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8d}Ž\u{8f}\u{90}‘’“”•–—˜™š›œ\u{9d}žŸ"
                    .contains(c.encode_utf8(&mut buf) as &str)
        }
    })
}

/// DECIMAL(M,D) as MySQL allows it: 1 <= M <= 65, 0 <= D <= min(M, 30).
fn decimal_type() -> impl Strategy<Value = ColumnType> {
    (1..=65u32)
        .prop_flat_map(|p| (Just(p), 0..=p.min(30)))
        .prop_map(|(precision, scale)| ColumnType::Decimal {
            precision,
            scale,
            unsigned: false,
        })
}

/// Strings that look like values of some column type, or almost do.
fn value_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(24),
        "[-+]?[0-9]{0,22}(\\.[0-9]{0,8})?".prop_map(String::into_bytes),
        "[0-9+-]{0,6}-[0-9]{1,3}-[0-9]{1,3}([ T][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{0,10})?)?(Z|[+-][0-9]{2}:[0-9]{2})?"
            .prop_map(String::into_bytes),
        "[-+]?([0-9]{0,3}\\.?[0-9]{0,3}([eE][-+]?[0-9]{0,4})?|inf|NaN|infinity)".prop_map(String::into_bytes),
        "(true|false|yes|no|[01TFYN]|\\{\\}|\\[1,2\\]|\"x\"|null)".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        // Long values: whatever their length, a bad record's detail stays short.
        "[-+]?[0-9]{1,300}(\\.[0-9]{0,300})?".prop_map(String::into_bytes),
    ]
}

/// The reason a converter must give, or that the value must be accepted; `None` = no
/// opinion beyond "no panic, and a value that fits" (checked by [`assert_fits`]).
fn assert_fits(v: &Value<'_>, raw: &[u8], ty: &ColumnType) {
    match (v, ty) {
        (Value::Int(i), ColumnType::Int { min, max }) => assert!(min <= i && i <= max),
        (Value::UInt(u), ColumnType::UInt { max }) => assert!(u <= max),
        (Value::Int(i), ColumnType::Bool) => assert!(*i == 0 || *i == 1),
        (Value::Decimal(d), ColumnType::Decimal { unsigned, .. }) => {
            assert_eq!(d.as_bytes(), raw);
            assert!(
                !unsigned || !d.starts_with('-') || d.bytes().all(|b| !(b'1'..=b'9').contains(&b))
            );
        }
        (Value::Float(f), ColumnType::Float { max, unsigned }) => {
            assert!(f.is_finite() && f.abs() <= *max);
            assert!(!unsigned || *f >= 0.0);
        }
        (
            Value::Text(s),
            ColumnType::Text {
                max_chars,
                max_bytes,
                charset,
            },
        ) => {
            assert!(column_bytes(s, *charset) <= *max_bytes);
            assert!(s.chars().count() as u64 <= *max_chars);
            assert!(storable(s, *charset));
        }
        (Value::Bytes(b), ColumnType::Binary { max_bytes }) => {
            assert!(b.len() as u64 <= *max_bytes);
            assert_eq!(*b, raw);
        }
        (Value::Text(s), ColumnType::Enum(values)) => {
            assert!(values.iter().any(|v| v.eq_ignore_ascii_case(s)))
        }
        (Value::Date(d), ColumnType::Date) => assert_mysql_date(d),
        (Value::DateTime(dt), ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp }) => {
            // No fraction the column would round.
            assert_eq!(dt.nanosecond() % 10u32.pow(9 - *fsp as u32), 0, "{dt}");
            assert_mysql_date(&dt.date());
            // What the sinks write must be a date-time MySQL reads back as the same value.
            let written = dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            assert_eq!(written.len(), 26, "{written}");
            assert!(
                dt.second() < 60 && dt.nanosecond() < 1_000_000_000,
                "{written}"
            );
            if matches!(ty, ColumnType::Timestamp { .. }) {
                let secs = dt.and_utc().timestamp();
                assert!((1..=2_147_483_647).contains(&secs), "{written}");
            }
        }
        (Value::Text(s), ColumnType::Json) => {
            assert!(serde_json::from_str::<serde_json::Value>(s).is_ok());
            assert!(json_depth(s) <= 100);
        }
        (Value::Text(s), ColumnType::Time { fsp }) => {
            assert_eq!(s.as_bytes(), raw);
            let (_, frac) = s.split_once('.').unwrap_or((s, ""));
            assert!(frac.bytes().skip(*fsp as usize).all(|b| b == b'0'), "{s}");
        }
        (Value::Text(s), ColumnType::Year) => {
            let y: u32 = s.parse().unwrap();
            assert!(
                s.len() == 4 && (y == 0 || (1901..=2155).contains(&y)),
                "{s}"
            );
        }
        (Value::Text(s), ColumnType::Set(values)) => {
            assert!(
                s.is_empty()
                    || s.split(',')
                        .all(|m| values.iter().any(|v| v.eq_ignore_ascii_case(m)))
            )
        }
        (Value::Bits(b), ColumnType::Bit { bits }) => assert!(*bits == 64 || b >> bits == 0),
        (Value::Text(s), ColumnType::Other) => assert_eq!(s.as_bytes(), raw),
        (v, ty) => panic!("{v:?} for a {ty:?} column"),
    }
}

/// A DATE the sinks write as `YYYY-MM-DD` (a four-digit year, as MySQL and MariaDB read it).
fn assert_mysql_date(d: &NaiveDate) {
    let written = d.format("%Y-%m-%d").to_string();
    assert!((0..=9999).contains(&d.year()), "{written}");
    assert_eq!(written.len(), 10, "{written}");
}

/// Renders fields as a producer would: escape byte before every delimiter and escape byte.
fn render(fields: &[Vec<u8>], delimiter: u8, escape: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        for &b in f {
            if b == delimiter || b == escape {
                out.push(escape);
            }
            out.push(b);
        }
    }
    out
}

fn split_all(s: &mut FieldSplitter, record: &[u8]) -> Result<Vec<Vec<u8>>, BadRecord> {
    let f = s.split(record)?;
    Ok((0..f.len()).map(|i| f.get(i).to_vec()).collect())
}

/// `[+-]?[0-9]+`: an integer, whether or not it fits.
fn integer_literal(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").or(s.strip_prefix(b"+")).unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

mod found;
mod rows;
mod values;
