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
        ColumnType::Decimal {
            precision,
            scale,
            unsigned,
        } => {
            let s = text(raw)?;
            check_decimal(s, *precision, *scale)?;
            if *unsigned && is_negative_decimal(s) {
                return Err((
                    BadReason::OutOfRange,
                    format!("{} is negative for an unsigned column", show(s)),
                ));
            }
            Ok(Value::Decimal(s))
        }
        ColumnType::Float { max, unsigned } => float_value(text(raw)?, *max, *unsigned),
        ColumnType::Text {
            max_chars,
            max_bytes,
            charset,
        } => text_value(text(raw)?, *max_chars, *max_bytes, *charset),
        ColumnType::Binary { max_bytes } => binary_value(raw, *max_bytes),
        ColumnType::Enum(values) => enum_value(text(raw)?, values),
        ColumnType::Date => date_value(text(raw)?),
        ColumnType::DateTime { fsp } => datetime_value(text(raw)?, false, *fsp),
        ColumnType::Timestamp { fsp } => datetime_value(text(raw)?, true, *fsp),
        ColumnType::Time { fsp } => time_value(text(raw)?, *fsp),
        ColumnType::Year => year_value(text(raw)?),
        ColumnType::Set(values) => set_value(text(raw)?, values),
        ColumnType::Bit { bits } => bit_value(text(raw)?, *bits),
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

/// A finite number (MySQL has no NaN or infinity) the column can hold: FLOAT's range is
/// single precision's, and UNSIGNED refuses negatives.
fn float_value(s: &str, max: f64, unsigned: bool) -> Conv<Value<'_>> {
    let v = match s.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => {
            return Err((
                BadReason::InvalidValue,
                format!("{} is not a finite number", show(s)),
            ))
        }
    };
    if v.abs() > max {
        return Err((
            BadReason::OutOfRange,
            format!("{} is beyond the column's range (±{max:e})", show(s)),
        ));
    }
    if unsigned && v < 0.0 {
        return Err((
            BadReason::OutOfRange,
            format!("{} is negative for an unsigned column", show(s)),
        ));
    }
    Ok(Value::Float(v))
}

/// A decimal literal below zero (`-0.00` is zero).
fn is_negative_decimal(s: &str) -> bool {
    s.starts_with('-') && s.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// The digits of a fraction (after the first `.`) past what a column of `fsp` digits
/// stores must be zeros: MariaDB would truncate them, MySQL round them (into the next day,
/// for `23:59:59.9` in a `DATETIME`).
fn check_fraction(s: &str, fsp: u8) -> Conv<()> {
    let Some((_, after)) = s.split_once('.') else {
        return Ok(());
    };
    let digits = after.bytes().take_while(u8::is_ascii_digit);
    if digits.skip(fsp as usize).any(|b| b != b'0') {
        return Err((
            BadReason::OutOfRange,
            format!(
                "{} has more fractional digits than the column's {fsp}; it would be rounded",
                show(s)
            ),
        ));
    }
    Ok(())
}

/// `[-]H:MM[:SS[.f]]` (hours up to 838, as many digits as needed) within TIME's range,
/// with no more fractional digits than the column keeps. Other spellings MySQL reads
/// (`D HH:MM`, `HHMMSS`) mean different things in different contexts: refused.
fn time_value(s: &str, fsp: u8) -> Conv<Value<'_>> {
    let invalid = || {
        (
            BadReason::InvalidValue,
            format!("{} is not a time ([-]HH:MM:SS[.ffffff])", show(s)),
        )
    };
    let body = s.strip_prefix('-').unwrap_or(s);
    let (clock, fraction) = body.split_once('.').unwrap_or((body, ""));
    let parts: Vec<&str> = clock.split(':').collect();
    let number = |p: &str, max_len: usize| -> Option<u32> {
        (!p.is_empty() && p.len() <= max_len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (number(h, 3), number(m, 2), Some(0)),
        [h, m, sec] => (number(h, 3), number(m, 2), number(sec, 2)),
        _ => return Err(invalid()),
    };
    let (Some(h), Some(m), Some(sec)) = (h, m, sec) else {
        return Err(invalid());
    };
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || (parts.len() == 2 && !fraction.is_empty()) {
        return Err(invalid());
    }
    if m > 59 || sec > 59 {
        return Err((
            BadReason::InvalidValue,
            format!("{} has minutes or seconds past 59", show(s)),
        ));
    }
    let whole = h * 3600 + m * 60 + sec;
    let max = 838 * 3600 + 59 * 60 + 59;
    if whole > max || (whole == max && fraction.bytes().any(|b| b != b'0')) {
        return Err((
            BadReason::OutOfRange,
            format!(
                "{} is outside the TIME range (-838:59:59..838:59:59)",
                show(s)
            ),
        ));
    }
    check_fraction(s, fsp)?;
    Ok(Value::Text(s))
}

/// A four-digit year YEAR stores as written: 1901..2155, or 0000. One or two digits are
/// read as 1970..2069, differently for numbers and text, so they are refused.
fn year_value(s: &str) -> Conv<Value<'_>> {
    if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err((
            BadReason::InvalidValue,
            format!("{} is not a four-digit year", show(s)),
        ));
    }
    let y: u32 = s.parse().expect("four digits");
    if y != 0 && !(1901..=2155).contains(&y) {
        return Err((
            BadReason::OutOfRange,
            format!("{y} is outside the YEAR range (1901..2155, or 0000)"),
        ));
    }
    Ok(Value::Text(s))
}

/// Comma-separated members of the SET, in any case, as MySQL matches them; empty is the
/// empty set.
fn set_value<'a>(s: &'a str, values: &[String]) -> Conv<Value<'a>> {
    if s.is_empty() {
        return Ok(Value::Text(s));
    }
    match s
        .split(',')
        .find(|m| !values.iter().any(|v| v.eq_ignore_ascii_case(m)))
    {
        None => Ok(Value::Text(s)),
        Some(m) => Err((
            BadReason::InvalidValue,
            format!("{} is not one of the SET values", show(m)),
        )),
    }
}

/// A number for a BIT(bits) column, written as that number (the text's bytes would be
/// stored instead), that fits in its bits.
fn bit_value(s: &str, bits: u32) -> Conv<Value<'_>> {
    let v: u64 = s.parse().map_err(|_| {
        if integer_literal(s) {
            (
                BadReason::OutOfRange,
                format!("{} does not fit in BIT({bits})", show(s)),
            )
        } else {
            (
                BadReason::InvalidValue,
                format!("{} is not an unsigned integer for BIT({bits})", show(s)),
            )
        }
    })?;
    if bits < 64 && v >> bits != 0 {
        return Err((
            BadReason::OutOfRange,
            format!("{v} does not fit in BIT({bits})"),
        ));
    }
    Ok(Value::Bits(v))
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

/// A date-time MySQL stores as written: no leap second, a four-digit year, no more
/// fractional digits than the column keeps, and for a TIMESTAMP column the 1970..2038 range
/// it can hold.
fn datetime_value(s: &str, timestamp: bool, fsp: u8) -> Conv<Value<'_>> {
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
    check_fraction(s, fsp)?;
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
