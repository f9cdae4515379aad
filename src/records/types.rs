//! The target table's columns as the converter sees them, and the typed values it produces.

use chrono::{NaiveDate, NaiveDateTime};

use super::Charset;

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
