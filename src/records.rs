//! Records: the bytes of one message -> fields -> typed values for the target columns.
//!
//! Splitting reuses one buffer across records (no allocation per record on the hot path);
//! conversion borrows from the payload and checks every value against its column's type, so
//! nothing reaches MySQL that the server would truncate, round or reject.

use std::fmt;
use std::ops::Range;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::Serialize;

/// Splits a record on a one-byte delimiter, honouring an optional escape byte
/// (`\|` is a literal `|`, `\\` a literal `\`). No quoting.
#[derive(Debug, Clone)]
pub struct FieldSplitter {
    delimiter: u8,
    escape: Option<u8>,
    spans: Vec<Range<usize>>,
    unescaped: Vec<u8>,
    /// With escapes: each field's span in the record as written.
    raw_spans: Vec<Range<usize>>,
}

/// The fields of one record, borrowed from the payload or from the splitter's buffer.
#[derive(Debug)]
pub struct Fields<'a> {
    bytes: &'a [u8],
    spans: &'a [Range<usize>],
    /// The record as written and each field's span in it (the same as `bytes` and `spans`
    /// when nothing was unescaped).
    raw: &'a [u8],
    raw_spans: &'a [Range<usize>],
}

impl<'a> Fields<'a> {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no fields (never true: an empty record has one empty field).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes of field `i`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.bytes[self.spans[i].clone()]
    }

    /// The bytes of field `i` as written in the record, escape bytes included.
    pub fn raw(&self, i: usize) -> &'a [u8] {
        &self.raw[self.raw_spans[i].clone()]
    }
}

impl FieldSplitter {
    /// A splitter for one delimiter and optional escape byte.
    pub fn new(delimiter: u8, escape: Option<u8>) -> Self {
        FieldSplitter {
            delimiter,
            escape,
            spans: Vec::with_capacity(16),
            unescaped: Vec::new(),
            raw_spans: Vec::new(),
        }
    }

    /// Splits `record`; the result lives until the next call.
    pub fn split<'a>(&'a mut self, record: &'a [u8]) -> Result<Fields<'a>, BadRecord> {
        self.spans.clear();
        let escape = match self.escape {
            Some(e) if memchr::memchr(e, record).is_some() => e,
            _ => {
                let mut start = 0;
                for i in memchr::memchr_iter(self.delimiter, record) {
                    self.spans.push(start..i);
                    start = i + 1;
                }
                self.spans.push(start..record.len());
                return Ok(Fields {
                    bytes: record,
                    spans: &self.spans,
                    raw: record,
                    raw_spans: &self.spans,
                });
            }
        };
        self.unescaped.clear();
        self.raw_spans.clear();
        let mut start = 0;
        let mut raw_start = 0;
        let mut bytes = record.iter().enumerate();
        while let Some((i, &b)) = bytes.next() {
            if b == escape {
                match bytes.next() {
                    Some((_, &next)) => self.unescaped.push(next),
                    None => {
                        return Err(BadRecord::new(
                            BadReason::Malformed,
                            None,
                            format!("record ends with a lone escape character at byte {i}"),
                        ))
                    }
                }
            } else if b == self.delimiter {
                self.spans.push(start..self.unescaped.len());
                start = self.unescaped.len();
                self.raw_spans.push(raw_start..i);
                raw_start = i + 1;
            } else {
                self.unescaped.push(b);
            }
        }
        self.spans.push(start..self.unescaped.len());
        self.raw_spans.push(raw_start..record.len());
        Ok(Fields {
            bytes: &self.unescaped,
            spans: &self.spans,
            raw: record,
            raw_spans: &self.raw_spans,
        })
    }
}

/// What a column accepts, read from `information_schema.COLUMNS`.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// TINYINT..BIGINT, signed, with the type's range.
    Int { min: i64, max: i64 },
    /// Unsigned integers with the type's maximum.
    UInt { max: u64 },
    /// TINYINT(1) / BOOLEAN: accepts 0/1 and true/false.
    Bool,
    /// DECIMAL(precision, scale): checked, never rounded.
    Decimal { precision: u32, scale: u32 },
    /// FLOAT / DOUBLE.
    Float,
    /// CHAR/VARCHAR/TEXT: valid UTF-8, at most `max_chars` characters and `max_bytes` bytes,
    /// and only characters the column's `charset` can store.
    Text {
        max_chars: u64,
        max_bytes: u64,
        charset: Charset,
    },
    /// BINARY/VARBINARY/BLOB: raw bytes.
    Binary { max_bytes: u64 },
    /// ENUM: one of the listed values.
    Enum(Vec<String>),
    /// DATE.
    Date,
    /// DATETIME (any fractional precision).
    DateTime,
    /// TIMESTAMP: also range-checked (1970-2038, UTC).
    Timestamp,
    /// JSON (checked to parse) .
    Json,
    /// TIME, YEAR, SET and anything else: passed as text, the server checks it strictly.
    Other,
}

/// One target column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// Has a DEFAULT, is AUTO_INCREMENT or generated: may be left out of the mapping.
    pub has_default: bool,
}

/// A converted value, borrowing text and bytes from the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    UInt(u64),
    /// A decimal number already checked against precision and scale.
    Decimal(&'a str),
    Float(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
}

/// Why a record could not become a row; the label used in metrics and the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReason {
    /// Too few or too many fields.
    FieldCount,
    /// Bytes that are not UTF-8 for a text column.
    InvalidUtf8,
    /// A value that does not parse as the column's type.
    InvalidValue,
    /// A number outside the column's range or precision.
    OutOfRange,
    /// Text or bytes longer than the column.
    TooLong,
    /// NULL for a NOT NULL column.
    NullNotAllowed,
    /// Structurally broken (e.g. a trailing escape).
    Malformed,
    /// One chunk of a message the producer split (producer chunking): never a row of its own.
    Chunked,
    /// An entry that declares or inflates to more than the decompression cap.
    TooLarge,
}

impl BadReason {
    /// Stable label for metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::FieldCount => "field_count",
            BadReason::InvalidUtf8 => "invalid_utf8",
            BadReason::InvalidValue => "invalid_value",
            BadReason::OutOfRange => "out_of_range",
            BadReason::TooLong => "too_long",
            BadReason::NullNotAllowed => "null_not_allowed",
            BadReason::Malformed => "malformed",
            BadReason::Chunked => "chunked",
            BadReason::TooLarge => "too_large",
        }
    }
}

/// Which characters a text column can store, by its character set. Rows travel as utf8mb4;
/// the server converts them to the column's set and refuses (strict mode) what it cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// utf8mb4, utf16, utf32: every character.
    #[default]
    Unicode,
    /// utf8mb3 (`utf8` in older servers) and ucs2: the Basic Multilingual Plane only.
    Bmp,
    /// latin1, which MySQL and MariaDB define as Windows-1252.
    Latin1,
    /// ascii: U+0000 to U+007F.
    Ascii,
    /// Any other set (gbk, sjis, ...): not checked here; the server refuses what it cannot hold.
    Unchecked,
}

/// The characters Windows-1252 puts at 0x80-0x9F, besides the five bytes it leaves undefined
/// (0x81, 0x8D, 0x8F, 0x90, 0x9D), which MySQL's latin1 maps to U+0081 and so on.
const CP1252_HIGH: [char; 32] = [
    '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2c6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}', '\u{178}',
];

impl Charset {
    /// From information_schema's CHARACTER_SET_NAME.
    pub fn from_name(name: &str) -> Charset {
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4" | "utf16" | "utf16le" | "utf32" => Charset::Unicode,
            "utf8mb3" | "utf8" | "ucs2" => Charset::Bmp,
            "latin1" => Charset::Latin1,
            "ascii" => Charset::Ascii,
            _ => Charset::Unchecked,
        }
    }

    /// The first character of `s` this set cannot store, if any.
    fn first_unstorable(self, s: &str) -> Option<char> {
        match self {
            Charset::Unicode | Charset::Unchecked => None,
            // Characters past U+FFFF are exactly the 4-byte UTF-8 sequences (lead 0xF0-0xF4).
            Charset::Bmp => {
                memchr::memchr3(0xf0, 0xf1, 0xf2, s.as_bytes())
                    .or_else(|| memchr::memchr2(0xf3, 0xf4, s.as_bytes()))?;
                s.chars().find(|&c| c as u32 > 0xffff)
            }
            _ if s.is_ascii() => None,
            Charset::Ascii => s.chars().find(|c| !c.is_ascii()),
            Charset::Latin1 => s.chars().find(|&c| {
                !(c as u32 <= 0x7f
                    || (0xa0..=0xff).contains(&(c as u32))
                    || CP1252_HIGH.contains(&c))
            }),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Charset::Bmp => "utf8mb3 (or ucs2), which holds nothing past U+FFFF such as emoji",
            Charset::Latin1 => "latin1 (Windows-1252)",
            Charset::Ascii => "ascii",
            Charset::Unicode | Charset::Unchecked => "this",
        }
    }
}

/// A record that cannot become a row: the reason, the column if one is to blame, and a
/// sentence for the person reading the dead-letter table or the log.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRecord {
    pub reason: BadReason,
    pub column: Option<String>,
    pub detail: String,
}

impl BadRecord {
    /// Chunk `id` (from 0) of a message the producer split into `of` chunks. Each chunk is only
    /// a slice of the record's bytes; written as a row, one could pass every check and be wrong.
    pub fn chunk(id: i32, of: i32) -> Self {
        BadRecord::new(
            BadReason::Chunked,
            None,
            format!(
                "chunk {} of {of} of a message the producer split (producer chunking); \
                 pulsar2mysql does not reassemble chunked messages: keep records under the \
                 broker's maxMessageSize or turn chunking off",
                id + 1
            ),
        )
    }

    /// A message whose entry declares or inflates to `size` bytes, over the cap of `cap`: not
    /// inflated (a decompression bomb, or a record larger than any row can be).
    pub fn too_large(size: u64, cap: usize) -> Self {
        BadRecord::new(
            BadReason::TooLarge,
            None,
            format!(
                "its entry inflates to {size} bytes, over the {cap}-byte cap per entry; it was \
                 not decompressed (a decompression bomb, or a record no row can hold)"
            ),
        )
    }

    /// A row whose SQL alone is `bytes` long, over the `max` bytes of a statement the server
    /// accepts (`max_allowed_packet`): the server would refuse it on every re-run.
    pub fn row_too_large(bytes: usize, max: usize) -> Self {
        BadRecord::new(
            BadReason::TooLarge,
            None,
            format!(
                "the row is {bytes} bytes as SQL, over the {max} bytes of a statement the server \
                 accepts (its max_allowed_packet)"
            ),
        )
    }

    fn new(reason: BadReason, column: Option<&str>, detail: String) -> Self {
        BadRecord {
            reason,
            column: column.map(str::to_string),
            detail,
        }
    }
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(
                f,
                "{} (column `{c}`): {}",
                self.reason.as_str(),
                self.detail
            ),
            None => write!(f, "{}: {}", self.reason.as_str(), self.detail),
        }
    }
}

/// Turns records into rows for one table: split, map fields to columns, convert.
#[derive(Debug, Clone)]
pub struct RowConverter {
    splitter: FieldSplitter,
    /// For each field: the index into `columns` it feeds, or `None` if the field is skipped.
    field_targets: Vec<Option<usize>>,
    /// The mapped columns, in the order values are produced.
    columns: Vec<Column>,
    null_literal: Option<Vec<u8>>,
    /// Reused value buffer (see [`recycle`]).
    scratch: Vec<Value<'static>>,
}

impl RowConverter {
    /// Builds the converter from the table's columns and the mapping. `mapping` lists, per
    /// field, the column it feeds (`None` = skip the field); without it, fields map to the
    /// table's columns in order, leaving out the trailing columns that have defaults.
    pub fn new(
        table_columns: &[Column],
        mapping: Option<&[Option<String>]>,
        delimiter: u8,
        escape: Option<u8>,
        null_literal: Option<&str>,
    ) -> Result<Self, String> {
        let mut columns = Vec::new();
        let mut field_targets = Vec::new();
        match mapping {
            Some(names) => {
                for name in names {
                    match name {
                        None => field_targets.push(None),
                        Some(name) => {
                            let col = table_columns
                                .iter()
                                .find(|c| c.name.eq_ignore_ascii_case(name))
                                .ok_or_else(|| {
                                    format!(
                                        "the mapping names column `{name}`, which the table does not have (it has: {})",
                                        table_columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                                    )
                                })?;
                            if columns.iter().any(|c: &Column| c.name == col.name) {
                                return Err(format!("the mapping names column `{name}` twice"));
                            }
                            field_targets.push(Some(columns.len()));
                            columns.push(col.clone());
                        }
                    }
                }
            }
            None => {
                let keep = table_columns
                    .iter()
                    .rposition(|c| !c.has_default && !c.nullable)
                    .map_or(0, |i| i + 1);
                for col in &table_columns[..keep] {
                    field_targets.push(Some(columns.len()));
                    columns.push(col.clone());
                }
                if columns.is_empty() {
                    return Err(
                        "every column of the table has a default; give --columns to say which fields go where"
                            .into(),
                    );
                }
            }
        }
        for col in table_columns {
            if !col.has_default && !col.nullable && !columns.iter().any(|c| c.name == col.name) {
                return Err(format!(
                    "column `{}` is NOT NULL without a default but no field maps to it",
                    col.name
                ));
            }
        }
        Ok(RowConverter {
            splitter: FieldSplitter::new(delimiter, escape),
            field_targets,
            columns,
            null_literal: null_literal.map(|s| s.as_bytes().to_vec()),
            scratch: Vec::new(),
        })
    }

    /// The mapped columns, in the order [`RowConverter::convert`] yields values.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Number of fields a record must have.
    pub fn field_count(&self) -> usize {
        self.field_targets.len()
    }

    /// Converts one record and hands its values, in column order, to `emit`.
    /// The value buffer is reused from record to record: no allocation per record.
    pub fn convert<R>(
        &mut self,
        record: &[u8],
        emit: impl FnOnce(&[Value<'_>]) -> R,
    ) -> Result<R, BadRecord> {
        let RowConverter {
            splitter,
            field_targets,
            columns,
            null_literal,
            scratch,
        } = self;
        let fields = splitter.split(record)?;
        if fields.len() != field_targets.len() {
            return Err(BadRecord::new(
                BadReason::FieldCount,
                None,
                format!(
                    "expected {} fields, found {}",
                    field_targets.len(),
                    fields.len()
                ),
            ));
        }
        let mut values = recycle(std::mem::take(scratch));
        values.resize(columns.len(), Value::Null);
        for (i, target) in field_targets.iter().enumerate() {
            let Some(ci) = *target else { continue };
            let col = &columns[ci];
            // The null literal is matched as written: with `\` as the escape, `\N` is NULL
            // and `\\N` is the text `\N`.
            values[ci] = if null_literal.as_deref() == Some(fields.raw(i)) {
                if !col.nullable && !col.has_default {
                    return Err(BadRecord::new(
                        BadReason::NullNotAllowed,
                        Some(&col.name),
                        format!("field {i} is the null literal but the column is NOT NULL"),
                    ));
                }
                Value::Null
            } else {
                convert_value(fields.get(i), col).map_err(|(reason, detail)| {
                    BadRecord::new(reason, Some(&col.name), format!("field {i}: {detail}"))
                })?
            };
        }
        let result = emit(&values);
        *scratch = recycle(values);
        Ok(result)
    }
}

/// Empties a value buffer and gives it back with a new lifetime, keeping its allocation
/// (collecting an emptied `Vec` into one of the same layout reuses the memory in place).
fn recycle<'b>(mut values: Vec<Value<'_>>) -> Vec<Value<'b>> {
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
        ColumnType::Int { min, max } => {
            let s = text(raw)?;
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
            if v < *min || v > *max {
                return Err((
                    BadReason::OutOfRange,
                    format!("{v} is outside {min}..={max}"),
                ));
            }
            Ok(Value::Int(v))
        }
        ColumnType::UInt { max } => {
            let s = text(raw)?;
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
            if v > *max {
                return Err((BadReason::OutOfRange, format!("{v} is above {max}")));
            }
            Ok(Value::UInt(v))
        }
        ColumnType::Bool => {
            let s = text(raw)?;
            match s.to_ascii_lowercase().as_str() {
                "1" | "true" | "t" | "yes" | "y" => Ok(Value::Int(1)),
                "0" | "false" | "f" | "no" | "n" => Ok(Value::Int(0)),
                _ => Err((
                    BadReason::InvalidValue,
                    format!("{} is not a boolean", show(s)),
                )),
            }
        }
        ColumnType::Decimal { precision, scale } => {
            let s = text(raw)?;
            check_decimal(s, *precision, *scale)?;
            Ok(Value::Decimal(s))
        }
        ColumnType::Float => {
            let s = text(raw)?;
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Value::Float(v)),
                _ => Err((
                    BadReason::InvalidValue,
                    format!("{} is not a finite number", show(s)),
                )),
            }
        }
        ColumnType::Text {
            max_chars,
            max_bytes,
            charset,
        } => {
            let s = text(raw)?;
            if s.len() as u64 > *max_bytes {
                // The limit counts bytes in the column's set: latin1 and ascii take one per
                // character, whatever UTF-8 takes.
                let n = match charset {
                    Charset::Latin1 | Charset::Ascii => s.chars().count(),
                    _ => s.len(),
                };
                if n as u64 > *max_bytes {
                    return Err((
                        BadReason::TooLong,
                        format!("{n} bytes exceed the column's {max_bytes}"),
                    ));
                }
            }
            if s.len() as u64 > *max_chars {
                let n = s.chars().count() as u64;
                if n > *max_chars {
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
        ColumnType::Binary { max_bytes } => {
            if raw.len() as u64 > *max_bytes {
                return Err((
                    BadReason::TooLong,
                    format!("{} bytes exceed the column's {max_bytes}", raw.len()),
                ));
            }
            Ok(Value::Bytes(raw))
        }
        ColumnType::Enum(values) => {
            let s = text(raw)?;
            if values.iter().any(|v| v.eq_ignore_ascii_case(s)) {
                Ok(Value::Text(s))
            } else {
                Err((
                    BadReason::InvalidValue,
                    format!("{} is not one of the ENUM values", show(s)),
                ))
            }
        }
        ColumnType::Date => {
            let s = text(raw)?;
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
        ColumnType::DateTime | ColumnType::Timestamp => {
            let s = text(raw)?;
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
            if col.ty == ColumnType::Timestamp {
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
        ColumnType::Json => {
            let s = text(raw)?;
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
        ColumnType::Other => Ok(Value::Text(text(raw)?)),
    }
}

/// MySQL refuses JSON documents nested deeper than this (`JSON_DOCUMENT_MAX_DEPTH`).
const JSON_MAX_DEPTH: usize = 100;

/// How deeply the arrays and objects of valid JSON text nest.
fn json_depth(s: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(delim: u8, esc: Option<u8>, rec: &[u8]) -> Vec<Vec<u8>> {
        let mut s = FieldSplitter::new(delim, esc);
        let f = s.split(rec).unwrap();
        (0..f.len()).map(|i| f.get(i).to_vec()).collect()
    }

    #[test]
    fn splits_seed_record() {
        assert_eq!(
            fields(b'|', None, b"0|msg-0"),
            vec![b"0".to_vec(), b"msg-0".to_vec()]
        );
    }

    #[test]
    fn empty_and_trailing_fields_are_kept() {
        assert_eq!(fields(b'|', None, b""), vec![b"".to_vec()]);
        assert_eq!(
            fields(b'|', None, b"a||b|"),
            vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec(), b"".to_vec()]
        );
    }

    #[test]
    fn escape_makes_delimiter_literal() {
        assert_eq!(
            fields(b'|', Some(b'\\'), br"1|a\|b|c\\d"),
            vec![b"1".to_vec(), b"a|b".to_vec(), br"c\d".to_vec()]
        );
        // Without an escape byte configured, a backslash is data.
        assert_eq!(
            fields(b'|', None, br"a\|b"),
            vec![br"a\".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn lone_trailing_escape_is_bad() {
        let mut s = FieldSplitter::new(b'|', Some(b'\\'));
        assert_eq!(s.split(br"a|b\").unwrap_err().reason, BadReason::Malformed);
    }

    #[test]
    fn splitter_reuses_buffers_across_records() {
        let mut s = FieldSplitter::new(b',', None);
        assert_eq!(s.split(b"a,b,c").unwrap().len(), 3);
        assert_eq!(s.split(b"x").unwrap().len(), 1);
    }

    fn seed_columns() -> Vec<Column> {
        vec![
            Column {
                name: "id".into(),
                ty: ColumnType::Int {
                    min: i32::MIN as i64,
                    max: i32::MAX as i64,
                },
                nullable: false,
                has_default: true,
            },
            Column {
                name: "name".into(),
                ty: ColumnType::Text {
                    max_chars: 255,
                    max_bytes: 1020,
                    charset: Charset::Unicode,
                },
                nullable: false,
                has_default: false,
            },
            Column {
                name: "create_time".into(),
                ty: ColumnType::Timestamp,
                nullable: true,
                has_default: true,
            },
        ]
    }

    #[test]
    fn default_mapping_leaves_out_trailing_defaults() {
        let c = RowConverter::new(&seed_columns(), None, b'|', None, None).unwrap();
        assert_eq!(c.field_count(), 2);
        assert_eq!(
            c.columns()
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["id", "name"]
        );
    }

    #[test]
    fn converts_seed_record_and_keeps_explicit_zero() {
        let mut c = RowConverter::new(&seed_columns(), None, b'|', None, None).unwrap();
        let record = b"0|msg-0".to_vec();
        let n = c
            .convert(&record, |v| {
                assert_eq!(v, [Value::Int(0), Value::Text("msg-0")]);
                v.len()
            })
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn wrong_field_count_both_ways() {
        let mut c = RowConverter::new(&seed_columns(), None, b'|', None, None).unwrap();
        assert_eq!(
            c.convert(b"1", |_| ()).unwrap_err().reason,
            BadReason::FieldCount
        );
        assert_eq!(
            c.convert(b"1|a|b", |_| ()).unwrap_err().reason,
            BadReason::FieldCount
        );
    }

    #[test]
    fn bad_values_name_the_column() {
        let mut c = RowConverter::new(&seed_columns(), None, b'|', None, None).unwrap();
        let e = c.convert(b"x1|a", |_| ()).unwrap_err();
        assert_eq!(
            (e.reason, e.column.as_deref()),
            (BadReason::InvalidValue, Some("id"))
        );
        let e = c.convert(b"99999999999|a", |_| ()).unwrap_err();
        assert_eq!(e.reason, BadReason::OutOfRange);
        let e = c.convert(b"1|\xff\xfe", |_| ()).unwrap_err();
        assert_eq!(
            (e.reason, e.column.as_deref()),
            (BadReason::InvalidUtf8, Some("name"))
        );
        let long = format!("1|{}", "é".repeat(256));
        assert_eq!(
            c.convert(long.as_bytes(), |_| ()).unwrap_err().reason,
            BadReason::TooLong
        );
        let fits = format!("1|{}", "é".repeat(255));
        c.convert(fits.as_bytes(), |_| ()).unwrap();
    }

    #[test]
    fn explicit_mapping_with_skipped_field() {
        let map = vec![Some("name".to_string()), None, Some("id".to_string())];
        let mut c = RowConverter::new(&seed_columns(), Some(&map), b'|', None, None).unwrap();
        c.convert(b"bob|ignored|7", |v| {
            assert_eq!(v, [Value::Text("bob"), Value::Int(7)])
        })
        .unwrap();
        assert!(RowConverter::new(
            &seed_columns(),
            Some(&[Some("nope".into())]),
            b'|',
            None,
            None
        )
        .is_err());
        // `name` is NOT NULL without default: leaving it unmapped is refused up front.
        assert!(RowConverter::new(
            &seed_columns(),
            Some(&[Some("id".into())]),
            b'|',
            None,
            None
        )
        .is_err());
    }

    #[test]
    fn null_literal() {
        let mut cols = seed_columns();
        cols[1].nullable = true;
        let mut c = RowConverter::new(
            &cols,
            Some(&[Some("id".into()), Some("name".into())]),
            b'|',
            None,
            Some("\\N"),
        )
        .unwrap();
        c.convert(b"1|\\N", |v| assert_eq!(v[1], Value::Null))
            .unwrap();
    }

    #[test]
    fn decimals_are_checked_not_rounded() {
        let col = Column {
            name: "d".into(),
            ty: ColumnType::Decimal {
                precision: 5,
                scale: 2,
            },
            nullable: false,
            has_default: false,
        };
        assert!(convert_value(b"123.45", &col).is_ok());
        assert!(convert_value(b"-0.5", &col).is_ok());
        assert!(convert_value(b"123.450", &col).is_ok());
        assert_eq!(
            convert_value(b"1.234", &col).unwrap_err().0,
            BadReason::OutOfRange
        );
        assert_eq!(
            convert_value(b"1234", &col).unwrap_err().0,
            BadReason::OutOfRange
        );
        assert_eq!(
            convert_value(b"1e3", &col).unwrap_err().0,
            BadReason::InvalidValue
        );
        assert_eq!(
            convert_value(b".", &col).unwrap_err().0,
            BadReason::InvalidValue
        );
    }

    #[test]
    fn datetimes_and_timestamps() {
        let ts = Column {
            name: "t".into(),
            ty: ColumnType::Timestamp,
            nullable: false,
            has_default: false,
        };
        assert!(convert_value(b"2024-05-01 10:00:00", &ts).is_ok());
        assert!(convert_value(b"2024-05-01T10:00:00.123+02:00", &ts).is_ok());
        assert_eq!(
            convert_value(b"2040-01-01 00:00:00", &ts).unwrap_err().0,
            BadReason::OutOfRange
        );
        assert_eq!(
            convert_value(b"yesterday", &ts).unwrap_err().0,
            BadReason::InvalidValue
        );
        let d = Column {
            name: "d".into(),
            ty: ColumnType::Date,
            nullable: false,
            has_default: false,
        };
        assert!(convert_value(b"2024-02-29", &d).is_ok());
        assert!(convert_value(b"2023-02-29", &d).is_err());
    }

    #[test]
    fn unsigned_and_bool() {
        let u = Column {
            name: "u".into(),
            ty: ColumnType::UInt { max: 255 },
            nullable: false,
            has_default: false,
        };
        assert_eq!(convert_value(b"255", &u).unwrap(), Value::UInt(255));
        assert_eq!(
            convert_value(b"256", &u).unwrap_err().0,
            BadReason::OutOfRange
        );
        assert_eq!(
            convert_value(b"-1", &u).unwrap_err().0,
            BadReason::OutOfRange
        );
        let b = Column {
            name: "b".into(),
            ty: ColumnType::Bool,
            nullable: false,
            has_default: false,
        };
        assert_eq!(convert_value(b"TRUE", &b).unwrap(), Value::Int(1));
        assert!(convert_value(b"2", &b).is_err());
    }

    #[test]
    fn text_columns_refuse_characters_their_set_cannot_store() {
        let conv = |charset, s: &str| {
            let col = Column {
                name: "t".into(),
                ty: ColumnType::Text {
                    max_chars: 50,
                    max_bytes: 200,
                    charset,
                },
                nullable: false,
                has_default: false,
            };
            convert_value(s.as_bytes(), &col).map(|_| ())
        };
        assert!(conv(Charset::Unicode, "smile \u{1f600}").is_ok());
        assert!(conv(Charset::Bmp, "caf\u{e9} \u{4e2d}\u{ffff}").is_ok());
        let (reason, detail) = conv(Charset::Bmp, "smile \u{1f600}").unwrap_err();
        assert_eq!(reason, BadReason::InvalidValue);
        assert!(detail.contains("U+1F600"), "{detail}");
        assert!(conv(Charset::Latin1, "caf\u{e9} \u{20ac} \u{178} \u{81}").is_ok());
        assert!(conv(Charset::Latin1, "\u{4e2d}").is_err());
        assert!(
            conv(Charset::Latin1, "\u{80}").is_err(),
            "C1 controls cp1252 redefines"
        );
        assert!(conv(Charset::Ascii, "plain").is_ok());
        assert!(conv(Charset::Ascii, "caf\u{e9}").is_err());
        assert!(conv(Charset::Unchecked, "\u{1f600}").is_ok());
        assert_eq!(Charset::from_name("UTF8MB3"), Charset::Bmp);
        assert_eq!(Charset::from_name("gbk"), Charset::Unchecked);
    }
}

#[cfg(test)]
pub(crate) mod proptests;
