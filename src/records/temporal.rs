//! Dates and times as MySQL stores them: DATE, DATETIME and TIMESTAMP (with their fractional
//! precision), TIME and YEAR, checked so that the server neither rounds, cuts nor refuses them.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

use super::bad::{show, Conv};
use super::{BadReason, Value};

/// Years MySQL reads from the four-digit `YYYY` the sinks write.
const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

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
pub(super) fn time_value(s: &str, fsp: u8) -> Conv<Value<'_>> {
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
pub(super) fn year_value(s: &str) -> Conv<Value<'_>> {
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

/// A `YYYY-MM-DD` date within the years the sinks can write with four digits.
pub(super) fn date_value(s: &str) -> Conv<Value<'_>> {
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
pub(super) fn datetime_value(s: &str, timestamp: bool, fsp: u8) -> Conv<Value<'_>> {
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
