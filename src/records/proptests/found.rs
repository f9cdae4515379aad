//! The failing inputs the properties in `rows.rs` and `values.rs` found, kept as plain tests
//! so each stays fixed whatever cases a later run draws.

use super::*;

/// `nulls_and_escaped_data_round_trip`: with `--escape '\'` and `--null-literal '\N'`
/// (the examples the options give), `\N` was unescaped to `N` before the null literal
/// was compared, so no field was ever NULL: a nullable column got the text `N`.
#[test]
fn null_literal_is_matched_as_written() {
    let cols = [col(ColumnType::Text {
        max_chars: 9,
        max_bytes: 9,
        charset: Charset::Unicode,
    })];
    let map = [Some("c".to_string())];
    let mut c = RowConverter::new(&cols, Some(&map), b'|', Some(b'\\'), Some("\\N")).unwrap();
    c.convert(br"\N", |v| assert_eq!(v, [Value::Null])).unwrap();
    c.convert(br"\\N", |v| assert_eq!(v, [Value::Text(r"\N")]))
        .unwrap();
    c.convert(br"N", |v| assert_eq!(v, [Value::Text("N")]))
        .unwrap();
    // Without an escape byte nothing changes: the field is compared as it is.
    let mut c = RowConverter::new(&cols, Some(&map), b'|', None, Some("\\N")).unwrap();
    c.convert(br"\N", |v| assert_eq!(v, [Value::Null])).unwrap();
}

/// `non_integers_are_invalid` and `integers_at_their_bounds`: `-` was `out_of_range`,
/// `+9223372036854775808` `invalid_value`.
#[test]
fn integer_reasons() {
    let int = col(ColumnType::Int {
        min: i64::MIN,
        max: i64::MAX,
    });
    let uint = col(ColumnType::UInt { max: u64::MAX });
    for c in [&int, &uint] {
        for raw in ["-", "+", "--1", "+-1", "1-"] {
            assert_eq!(
                convert_value(raw.as_bytes(), c).unwrap_err().0,
                BadReason::InvalidValue,
                "{raw}"
            );
        }
    }
    for raw in ["+9223372036854775808", "-9223372036854775809"] {
        assert_eq!(
            convert_value(raw.as_bytes(), &int).unwrap_err().0,
            BadReason::OutOfRange,
            "{raw}"
        );
    }
    for raw in ["+18446744073709551616", "-1"] {
        assert_eq!(
            convert_value(raw.as_bytes(), &uint).unwrap_err().0,
            BadReason::OutOfRange,
            "{raw}"
        );
    }
}

/// `converted_values_fit` (found at 50,000 cases): `0.1e310` was accepted for a JSON
/// column (serde_json skips numbers it is told to ignore) and MySQL refuses it.
#[test]
fn json_mysql_refuses() {
    let json = col(ColumnType::Json);
    assert_eq!(
        convert_value(b"0.1e310", &json).unwrap_err().0,
        BadReason::InvalidValue
    );
    let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
    assert_eq!(
        convert_value(deep.as_bytes(), &json).unwrap_err().0,
        BadReason::InvalidValue
    );
    let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(convert_value(fine.as_bytes(), &json).is_ok());
    assert!(convert_value(br#"{"a":"[[[\"]]"}"#, &json).is_ok());
}

/// `converted_values_fit`: a DECIMAL's detail held the whole value (logs, the summary
/// and the dead-letter table got all of a 5 MB field); now a 40-character excerpt.
#[test]
fn decimal_details_are_excerpts() {
    let d = col(ColumnType::Decimal {
        precision: 10,
        scale: 2,
        unsigned: false,
    });
    for raw in ["1".repeat(10_000), format!("1.{}", "1".repeat(10_000))] {
        let (reason, detail) = convert_value(raw.as_bytes(), &d).unwrap_err();
        assert_eq!(reason, BadReason::OutOfRange);
        assert!(detail.len() < 200, "{detail}");
    }
}

/// `text_length_in_characters`: the byte limit of a latin1 column (one byte per
/// character) was compared with the value's UTF-8 length, so `é` x 10 was `too_long`
/// for VARCHAR(10) (or a TEXT) in latin1, and a value the set cannot hold was
/// `too_long` instead of `invalid_value`.
#[test]
fn latin1_limits_count_latin1_bytes() {
    let latin1 = |n| {
        col(ColumnType::Text {
            max_chars: n,
            max_bytes: n,
            charset: Charset::Latin1,
        })
    };
    let e10 = "é".repeat(10);
    assert_eq!(
        convert_value(e10.as_bytes(), &latin1(10)),
        Ok(Value::Text(&e10))
    );
    assert_eq!(
        convert_value(e10.as_bytes(), &latin1(9)).unwrap_err().0,
        BadReason::TooLong
    );
    assert_eq!(
        convert_value("ŵŵŵ".as_bytes(), &latin1(3)).unwrap_err().0,
        BadReason::InvalidValue
    );
}

/// `dates_and_datetimes_from_parts`: chrono reads second 60 as a leap second and the
/// sinks wrote `…:60.000000`, which MySQL refuses (the run stopped instead of counting a
/// bad record); a year past 9999 (here after an offset) was written with five digits.
#[test]
fn leap_seconds_and_years_past_9999() {
    let dt = col(ColumnType::DateTime { fsp: 6 });
    assert_eq!(
        convert_value(b"2016-12-31 23:59:60", &dt).unwrap_err().0,
        BadReason::InvalidValue
    );
    assert_eq!(
        convert_value(b"0000-01-01 00:00:60", &dt).unwrap_err().0,
        BadReason::InvalidValue
    );
    assert_eq!(
        convert_value(b"9999-12-31T23:00:00-05:00", &dt)
            .unwrap_err()
            .0,
        BadReason::OutOfRange
    );
    assert!(convert_value(b"9999-12-31 23:59:59.999999", &dt).is_ok());
    for raw in ["10000-01-01", "+10000-01-01", "-0001-01-01"] {
        assert!(
            convert_value(raw.as_bytes(), &col(ColumnType::Date)).is_err(),
            "{raw}"
        );
    }
}
