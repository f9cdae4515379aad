//! Records: the bytes of one message -> fields -> typed values for the target columns.
//!
//! Splitting reuses one buffer across records (no allocation per record on the hot path);
//! conversion borrows from the payload and checks every value against its column's type, so
//! nothing reaches MySQL that the server would truncate, round or reject.

mod bad;
mod charset;
mod convert;
mod converter;
mod split;
mod temporal;
mod types;

pub use bad::{BadReason, BadRecord};
pub use charset::Charset;
pub use convert::convert_value;
pub use converter::RowConverter;
pub use split::FieldSplitter;
pub use types::{Column, ColumnType, Value};

#[cfg(test)]
use convert::json_depth;

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
                auto_increment: true,
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
                auto_increment: false,
            },
            Column {
                name: "create_time".into(),
                ty: ColumnType::Timestamp { fsp: 0 },
                nullable: true,
                has_default: true,
                auto_increment: false,
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
                unsigned: false,
            },
            nullable: false,
            has_default: false,
            auto_increment: false,
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
            ty: ColumnType::Timestamp { fsp: 3 },
            nullable: false,
            has_default: false,
            auto_increment: false,
        };
        assert!(convert_value(b"2024-05-01 10:00:00", &ts).is_ok());
        assert!(convert_value(b"2024-05-01T10:00:00.123+02:00", &ts).is_ok());
        assert!(convert_value(b"2024-05-01T10:00:00.120000000+02:00", &ts).is_ok());
        // A fourth digit would be rounded (MySQL) or cut (MariaDB).
        assert_eq!(
            convert_value(b"2024-05-01T10:00:00.1235+02:00", &ts)
                .unwrap_err()
                .0,
            BadReason::OutOfRange
        );
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
            auto_increment: false,
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
            auto_increment: false,
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
            auto_increment: false,
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
                auto_increment: false,
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
mod proptests;
