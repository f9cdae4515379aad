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
    /// DECIMAL(precision, scale): checked, never rounded; UNSIGNED refuses negatives.
    Decimal {
        precision: u32,
        scale: u32,
        unsigned: bool,
    },
    /// FLOAT / DOUBLE: finite, at most `max` in magnitude (FLOAT is single precision), and
    /// not negative when UNSIGNED.
    Float { max: f64, unsigned: bool },
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
    /// DATETIME(fsp): a fraction with more digits than `fsp` would be rounded or truncated.
    DateTime { fsp: u8 },
    /// TIMESTAMP(fsp): as DATETIME, and range-checked (1970-2038, UTC).
    Timestamp { fsp: u8 },
    /// TIME(fsp): `[-]H:MM:SS[.f]` within -838:59:59..838:59:59.
    Time { fsp: u8 },
    /// YEAR: four digits, 1901..2155 or 0000 (shorter forms are read as other years).
    Year,
    /// SET: comma-separated members of the listed values.
    Set(Vec<String>),
    /// BIT(bits): an unsigned number that fits in `bits` bits.
    Bit { bits: u32 },
    /// JSON (checked to parse) .
    Json,
    /// Anything else (spatial types...): passed as text, the server checks it strictly.
    Other,
}

impl ColumnType {
    /// DOUBLE: any finite number.
    pub const DOUBLE: ColumnType = ColumnType::Float {
        max: f64::MAX,
        unsigned: false,
    };
    /// FLOAT: single precision, whose largest value is about 3.4e38.
    pub const FLOAT: ColumnType = ColumnType::Float {
        max: f32::MAX as f64,
        unsigned: false,
    };
}

/// One target column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// Has a DEFAULT, is AUTO_INCREMENT or generated: may be left out of the mapping.
    pub has_default: bool,
    /// AUTO_INCREMENT: NULL asks for the next value, so the null literal is welcome even
    /// where the column is NOT NULL (anywhere else NOT NULL refuses it, DEFAULT or not).
    pub auto_increment: bool,
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
    /// A BIT column's value, already checked to fit.
    Bits(u64),
}
