//! One field -> one typed value for its column, checked so that nothing reaches MySQL that
//! the server would truncate, round or reject.

use super::bad::{show, Conv};
use super::temporal::{date_value, datetime_value, time_value, year_value};
use super::{BadReason, Charset, Column, ColumnType, Value};

/// Empties a value buffer and gives it back with a new lifetime, keeping its allocation
/// (collecting an emptied `Vec` into one of the same layout reuses the memory in place).
pub(super) fn recycle<'b>(mut values: Vec<Value<'_>>) -> Vec<Value<'b>> {
    values.clear();
    values.into_iter().map(|_| Value::Null).collect()
}

/// `[+-]?[0-9]+`: an integer, whether or not it fits a column (as Rust's parser reads one).
fn integer_literal(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn text(raw: &[u8]) -> Conv<&str> {
    std::str::from_utf8(raw).map_err(|e| {
        (
            BadReason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })
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
