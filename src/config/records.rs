//! How payload bytes become fields: the delimiter and escape bytes as users write them, and
//! what a record that cannot become a row does to the run.

use std::str::FromStr;

use serde::Serialize;

/// The field separator of a record: one ASCII byte. Written as the character itself (`|`, `,`),
/// an escape (`\t`), or as InLong stores it: the decimal ASCII code (`"124"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(pub u8);

impl FromStr for Delimiter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        parse_ascii_char(s, "delimiter").map(Delimiter)
    }
}

/// Parses one ASCII character given literally, as `\t`, or as a decimal code of 2-3 digits.
pub fn parse_ascii_char(s: &str, what: &str) -> std::result::Result<u8, String> {
    match s {
        "\\t" | "tab" => return Ok(b'\t'),
        "\\0" => return Ok(0),
        _ => {}
    }
    if s.len() == 1 && s.is_ascii() {
        return Ok(s.as_bytes()[0]);
    }
    if (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u16>() {
            Ok(code) if code < 128 => Ok(code as u8),
            _ => Err(format!(
                "{what} '{s}' is not an ASCII code (0-127); give a single character like '|' or a code like '124'"
            )),
        };
    }
    Err(format!(
        "{what} '{s}' must be a single ASCII character (e.g. '|'), '\\t', or a decimal ASCII code (e.g. '124')"
    ))
}

/// What to do with a record that cannot become a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadRecordPolicy {
    /// Stop the run at the first bad record (nothing of its batch is committed).
    Fail,
    /// Count it, report it, and go on.
    Skip,
    /// Store it in the dead-letter table in the same transaction as the good rows.
    DeadLetter,
}

/// How payload bytes become fields.
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    pub delimiter: u8,
    pub escape: Option<u8>,
    /// A field equal to this string becomes SQL NULL.
    pub null_literal: Option<String>,
    /// Explicit field -> column mapping; `None` maps fields to the table's columns in order.
    /// An entry of `None` skips that field.
    pub columns: Option<Vec<Option<String>>>,
    pub on_bad_record: BadRecordPolicy,
    /// Most bad records tolerated before the run fails (skip and dead-letter policies).
    pub max_bad_records: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_forms() {
        assert_eq!("|".parse::<Delimiter>().unwrap().0, b'|');
        assert_eq!("124".parse::<Delimiter>().unwrap().0, b'|');
        assert_eq!("\\t".parse::<Delimiter>().unwrap().0, b'\t');
        assert_eq!("44".parse::<Delimiter>().unwrap().0, b',');
        assert!("||".parse::<Delimiter>().is_err());
        assert!("300".parse::<Delimiter>().is_err());
        assert!("é".parse::<Delimiter>().is_err());
    }
}
