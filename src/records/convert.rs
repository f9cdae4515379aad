//! One field -> one typed value for its column, checked so that nothing reaches MySQL that
//! the server would truncate, round or reject.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

use super::{BadReason, Charset, Column, ColumnType, Value};

/// Empties a value buffer and gives it back with a new lifetime, keeping its allocation
/// (collecting an emptied `Vec` into one of the same layout reuses the memory in place).
pub(super) fn recycle<'b>(mut values: Vec<Value<'_>>) -> Vec<Value<'b>> {
    values.clear();
    values.into_iter().map(|_| Value::Null).collect()
}

type Conv<T> = Result<T, (BadReason, String)>;

/// `[+-]?[0-9]+`: an integer, whether or not it fits a column (as Rust's parser reads one).
fn integer_literal(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Years MySQL reads from the four-digit `YYYY` the sinks write.
const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

fn text(raw: &[u8]) -> Conv<&str> {
    std::str::from_utf8(raw).map_err(|e| {
        (
            BadReason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })
}

fn show(raw: &str) -> String {
    let mut s: String = raw.chars().take(40).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    format!("{s:?}")
}

/// Converts one field to one column's type.
pub fn convert_value<'a>(raw: &'a [u8], col: &Column) -> Conv<Value<'a>> {
    match &col.ty {
        ColumnType::Int { min, max } => int_value(text(raw)?, *min, *max),
        ColumnType::UInt { max } => uint_value(text(raw)?, *max),
        ColumnType::Bool => bool_value(text(raw)?),
        ColumnType::Decimal { precision, scale } => {
            let s = text(raw)?;
            check_decimal(s, *precision, *scale)?;
            Ok(Value::Decimal(s))
        }
        ColumnType::Float => float_value(text(raw)?),
        ColumnType::Text {
            max_chars,
            max_bytes,
            charset,
        } => text_value(text(raw)?, *max_chars, *max_bytes, *charset),
        ColumnType::Binary { max_bytes } => binary_value(raw, *max_bytes),
        ColumnType::Enum(values) => enum_value(text(raw)?, values),
        ColumnType::Date => date_value(text(raw)?),
        ColumnType::DateTime | ColumnType::Timestamp => {
            datetime_value(text(raw)?, col.ty == ColumnType::Timestamp)
        }
        ColumnType::Json => json_value(text(raw)?),
        ColumnType::Other => Ok(Value::Text(text(raw)?)),
    }
}

/// A signed integer within `min..=max`; one that does not fit is `out_of_range`, not
/// `invalid_value`, so the reason says what is wrong.
fn int_value(s: &str, min: i64, max: i64) -> Conv<Value<'_>> {
    let v: i64 = s.parse().map_err(|_| {
        if integer_literal(s) {
            (
                BadReason::OutOfRange,
                format!("{} is outside {min}..={max}", show(s)),
            )
        } else {
            (
                BadReason::InvalidValue,
                format!("{} is not an integer", show(s)),
            )
        }
    })?;
    if v < min || v > max {
        return Err((
            BadReason::OutOfRange,
            format!("{v} is outside {min}..={max}"),
        ));
    }
    Ok(Value::Int(v))
}

/// An unsigned integer up to `max`; a negative one is `out_of_range` with its own detail.
fn uint_value(s: &str, max: u64) -> Conv<Value<'_>> {
    let v: u64 = s.parse().map_err(|_| {
        if integer_literal(s) && s.starts_with('-') {
            (
                BadReason::OutOfRange,
                format!("{} is negative for an unsigned column", show(s)),
            )
        } else if integer_literal(s) {
            (BadReason::OutOfRange, format!("{} is above {max}", show(s)))
        } else {
            (
                BadReason::InvalidValue,
                format!("{} is not an unsigned integer", show(s)),
            )
        }
    })?;
    if v > max {
        return Err((BadReason::OutOfRange, format!("{v} is above {max}")));
    }
    Ok(Value::UInt(v))
}

/// The spellings of a boolean producers use, as MySQL's 1 or 0.
fn bool_value(s: &str) -> Conv<Value<'_>> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" => Ok(Value::Int(1)),
        "0" | "false" | "f" | "no" | "n" => Ok(Value::Int(0)),
        _ => Err((
            BadReason::InvalidValue,
            format!("{} is not a boolean", show(s)),
        )),
    }
}

/// A finite double: MySQL has no NaN or infinity.
fn float_value(s: &str) -> Conv<Value<'_>> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Value::Float(v)),
        _ => Err((
            BadReason::InvalidValue,
            format!("{} is not a finite number", show(s)),
        )),
    }
}

/// Text that fits the column in bytes and characters and that its character set can store,
/// so the server neither truncates it nor replaces a character.
fn text_value(s: &str, max_chars: u64, max_bytes: u64, charset: Charset) -> Conv<Value<'_>> {
    if s.len() as u64 > max_bytes {
        // The limit counts bytes in the column's set: latin1 and ascii take one per
        // character, whatever UTF-8 takes.
        let n = match charset {
            Charset::Latin1 | Charset::Ascii => s.chars().count(),
            _ => s.len(),
        };
        if n as u64 > max_bytes {
            return Err((
                BadReason::TooLong,
                format!("{n} bytes exceed the column's {max_bytes}"),
            ));
        }
    }
    if s.len() as u64 > max_chars {
        let n = s.chars().count() as u64;
        if n > max_chars {
            return Err((
                BadReason::TooLong,
                format!("{n} characters exceed the column's {max_chars}"),
            ));
        }
    }
    if let Some(c) = charset.first_unstorable(s) {
        return Err((
            BadReason::InvalidValue,
            format!(
                "character U+{:04X} cannot be stored in the column's character set, {}",
                c as u32,
                charset.describe()
            ),
        ));
    }
    Ok(Value::Text(s))
}

/// Any bytes that fit: a binary column takes them as they are, UTF-8 or not.
fn binary_value(raw: &[u8], max_bytes: u64) -> Conv<Value<'_>> {
    if raw.len() as u64 > max_bytes {
        return Err((
            BadReason::TooLong,
            format!("{} bytes exceed the column's {max_bytes}", raw.len()),
        ));
    }
    Ok(Value::Bytes(raw))
}

/// One of the ENUM's values, in any case, as MySQL matches them.
fn enum_value<'a>(s: &'a str, values: &[String]) -> Conv<Value<'a>> {
    if values.iter().any(|v| v.eq_ignore_ascii_case(s)) {
        Ok(Value::Text(s))
    } else {
        Err((
            BadReason::InvalidValue,
            format!("{} is not one of the ENUM values", show(s)),
        ))
    }
}

/// A `YYYY-MM-DD` date within the years the sinks can write with four digits.
fn date_value(s: &str) -> Conv<Value<'_>> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        (
            BadReason::InvalidValue,
            format!("{} is not a date (YYYY-MM-DD)", show(s)),
        )
    })?;
    if !YEARS.contains(&d.year()) {
        return Err((
            BadReason::OutOfRange,
            format!("{} is outside the DATE range (years 0000..9999)", show(s)),
        ));
    }
    Ok(Value::Date(d))
}

/// A date-time MySQL stores as written: no leap second, a four-digit year, and for a
/// TIMESTAMP column the 1970..2038 range it can hold.
fn datetime_value(s: &str, timestamp: bool) -> Conv<Value<'_>> {
    let dt = parse_datetime(s).ok_or_else(|| {
        (
            BadReason::InvalidValue,
            format!(
                "{} is not a date-time (YYYY-MM-DD HH:MM:SS[.ffffff] or RFC 3339)",
                show(s)
            ),
        )
    })?;
    if dt.nanosecond() >= 1_000_000_000 {
        // chrono reads second 60 as a leap second; MySQL has none.
        return Err((
            BadReason::InvalidValue,
            format!("{} has second 60 (MySQL has no leap seconds)", show(s)),
        ));
    }
    if !YEARS.contains(&dt.year()) {
        return Err((
            BadReason::OutOfRange,
            format!(
                "{} is outside the DATETIME range (years 0000..9999)",
                show(s)
            ),
        ));
    }
    if timestamp {
        let secs = dt.and_utc().timestamp();
        if !(1..=2_147_483_647).contains(&secs) {
            return Err((
                BadReason::OutOfRange,
                format!(
                    "{} is outside the TIMESTAMP range (1970-01-01 .. 2038-01-19 UTC)",
                    show(s)
                ),
            ));
        }
    }
    Ok(Value::DateTime(dt))
}

/// JSON that MySQL accepts: valid, every number within a double, nested no deeper than its
/// limit.
fn json_value(s: &str) -> Conv<Value<'_>> {
    // Parsed, not skipped: skipping lets a number past a double through (`1e400`),
    // which MySQL refuses.
    serde_json::from_str::<serde_json::Value>(s)
        .map_err(|e| (BadReason::InvalidValue, format!("not valid JSON: {e}")))?;
    if json_depth(s) > JSON_MAX_DEPTH {
        return Err((
            BadReason::InvalidValue,
            format!("JSON nested deeper than MySQL's {JSON_MAX_DEPTH} levels"),
        ));
    }
    Ok(Value::Text(s))
}

/// MySQL refuses JSON documents nested deeper than this (`JSON_DOCUMENT_MAX_DEPTH`).
const JSON_MAX_DEPTH: usize = 100;

/// How deeply the arrays and objects of valid JSON text nest.
pub(super) fn json_depth(s: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in s.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    max
}

/// Date-times without an offset are taken as UTC (the session time zone pulsar2mysql sets);
/// RFC 3339 values with an offset are converted to UTC.
fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt);
        }
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).naive_utc())
}

fn check_decimal(s: &str, precision: u32, scale: u32) -> Conv<()> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err((
            BadReason::InvalidValue,
            format!("{} is not a decimal number", show(s)),
        ));
    }
    let int_digits = int.trim_start_matches('0').len() as u32;
    if int_digits > precision - scale {
        return Err((
            BadReason::OutOfRange,
            format!(
                "{} has more than {} integer digits for DECIMAL({precision},{scale})",
                show(s),
                precision - scale
            ),
        ));
    }
    if frac.trim_end_matches('0').len() as u32 > scale {
        return Err((
            BadReason::OutOfRange,
            format!(
                "{} has more than {scale} decimal places for DECIMAL({precision},{scale}); it would be rounded",
                show(s)
            ),
        ));
    }
    Ok(())
}
