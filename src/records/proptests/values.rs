//! One field against one column of each type: at the limits of every integer width, DECIMAL
//! precision and scale, text and binary lengths, dates, JSON and floats.

use super::*;

proptest! {
    #![proptest_config(config())]

    /// One field against one column of each type: accepted values fit the column.
    #[test]
    fn converted_values_fit(ty in column_type(), raw in value_like()) {
        let c = col(ty.clone());
        match convert_value(&raw, &c) {
            Ok(v) => assert_fits(&v, &raw, &ty),
            Err((reason, detail)) => {
                // The detail goes to logs, the summary and the dead-letter table: an excerpt
                // of the value, never all of it.
                prop_assert!(detail.chars().count() <= 200, "{}", detail);
                if std::str::from_utf8(&raw).is_err() && !matches!(ty, ColumnType::Binary { .. }) {
                    prop_assert_eq!(reason, BadReason::InvalidUtf8);
                }
            }
        }
    }

    /// Bytes that are not UTF-8 are `invalid_utf8` for every column type but binary.
    #[test]
    fn invalid_utf8_is_its_own_reason(
        ty in column_type(),
        prefix in "[0-9a-z]{0,4}",
        // Stray continuation byte, cut sequences, a surrogate, an overlong encoding.
        bad in prop::sample::select(vec![
            &b"\xff"[..], b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf",
        ]),
    ) {
        let mut raw = prefix.into_bytes();
        raw.extend_from_slice(bad);
        let got = convert_value(&raw, &col(ty.clone()));
        match ty {
            ColumnType::Binary { max_bytes } => {
                prop_assert_eq!(got.is_ok(), raw.len() as u64 <= max_bytes)
            }
            _ => prop_assert_eq!(got.unwrap_err().0, BadReason::InvalidUtf8),
        }
    }

    /// Integers of every width, signed and unsigned, at and around their bounds, with
    /// signs and leading zeros: the value if it fits, `out_of_range` if it does not.
    #[test]
    fn integers_at_their_bounds(
        bits in prop::sample::select(vec![8u32, 16, 24, 32, 64]),
        unsigned in any::<bool>(),
        near in prop::sample::select(vec![0i128, 1, -1, 2]),
        edge in 0..3usize,
        random in any::<i128>(),
        plus in any::<bool>(),
        zeros in 0..3usize,
    ) {
        let (min, max): (i128, i128) = if unsigned {
            (0, (1i128 << bits) - 1)
        } else {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        };
        let v = match edge {
            0 => min + near,
            1 => max + near,
            _ => random >> (random as u32 % 100),
        };
        let ty = if unsigned {
            ColumnType::UInt { max: max as u64 }
        } else {
            ColumnType::Int { min: min as i64, max: max as i64 }
        };
        let sign = if v < 0 { "-" } else if plus { "+" } else { "" };
        let raw = format!("{sign}{}{}", "0".repeat(zeros), v.unsigned_abs());
        let got = convert_value(raw.as_bytes(), &col(ty));
        if min <= v && v <= max {
            let want = if unsigned { Value::UInt(v as u64) } else { Value::Int(v as i64) };
            prop_assert_eq!(got, Ok(want), "{}", raw);
        } else {
            prop_assert_eq!(got.unwrap_err().0, BadReason::OutOfRange, "{}", raw);
        }
    }

    /// Anything that is not `[+-]?[0-9]+` is `invalid_value` for an integer column.
    #[test]
    fn non_integers_are_invalid(raw in "[-+ 0-9a.e]{0,6}", unsigned in any::<bool>()) {
        let ty = if unsigned {
            ColumnType::UInt { max: u64::MAX }
        } else {
            ColumnType::Int { min: i64::MIN, max: i64::MAX }
        };
        let got = convert_value(raw.as_bytes(), &col(ty));
        if !integer_literal(raw.as_bytes()) {
            prop_assert_eq!(got.unwrap_err().0, BadReason::InvalidValue, "{:?}", raw);
        } else if got.is_err() {
            prop_assert_eq!(got.unwrap_err().0, BadReason::OutOfRange, "{:?}", raw);
        }
    }

    /// DECIMAL(M,D): accepted as written if it has at most M-D integer digits and D
    /// decimals (leading and trailing zeros aside); `out_of_range` otherwise, never rounded.
    #[test]
    fn decimals_with_precision_and_scale(
        ty in decimal_type(),
        sign in prop::sample::select(vec!["", "-", "+"]),
        lead in 0..3usize,
        int in "[1-9][0-9]{0,69}|",
        frac in prop::option::of("[0-9]{0,34}"),
        trail in 0..3usize,
    ) {
        let ColumnType::Decimal { precision, scale, .. } = ty else { unreachable!() };
        let mut raw = format!("{sign}{}{int}", "0".repeat(lead));
        let frac = frac.map(|f| f + &"0".repeat(trail));
        if let Some(f) = &frac {
            raw = format!("{raw}.{f}");
        }
        let got = convert_value(raw.as_bytes(), &col(ty));
        let frac_digits = frac.as_deref().unwrap_or("").trim_end_matches('0').len() as u32;
        let well_formed = lead > 0 || !int.is_empty() || frac.as_deref().is_some_and(|f| !f.is_empty());
        if !well_formed {
            prop_assert_eq!(got.unwrap_err().0, BadReason::InvalidValue, "{}", raw);
        } else if int.len() as u32 <= precision - scale && frac_digits <= scale {
            prop_assert_eq!(got, Ok(Value::Decimal(&raw)));
        } else {
            prop_assert_eq!(got.unwrap_err().0, BadReason::OutOfRange, "{}", raw);
        }
    }

    /// Text: accepted iff it fits the column in characters and bytes; `too_long` otherwise.
    #[test]
    fn text_length_in_characters(
        s in prop_oneof![any::<String>(), "[a-zé€\u{80}-\u{ff}]{0,40}"],
        max_chars in 0..40u64,
        slack in 0..80u64,
        charset in charset(),
        // VARCHAR(n): the byte limit is n times the set's widest character; TEXT: bytes only.
        text_type in any::<bool>(),
    ) {
        let max_bytes = if text_type {
            max_chars + slack
        } else {
            max_chars * match charset {
                Charset::Latin1 | Charset::Ascii => 1,
                Charset::Bmp => 3,
                _ => 4,
            }
        };
        let max_chars = if text_type { max_bytes } else { max_chars };
        let got = convert_value(s.as_bytes(), &col(ColumnType::Text { max_chars, max_bytes, charset }));
        let fits = s.chars().count() as u64 <= max_chars && column_bytes(&s, charset) <= max_bytes;
        if fits && storable(&s, charset) {
            prop_assert_eq!(got, Ok(Value::Text(&s)));
        } else if fits {
            prop_assert_eq!(got.unwrap_err().0, BadReason::InvalidValue);
        } else {
            prop_assert_eq!(got.unwrap_err().0, BadReason::TooLong);
        }
    }

    /// Binary: any bytes, accepted iff they fit.
    #[test]
    fn binary_any_bytes(b in bytes(64), max_bytes in 0..80u64) {
        let got = convert_value(&b, &col(ColumnType::Binary { max_bytes }));
        if b.len() as u64 <= max_bytes {
            prop_assert_eq!(got, Ok(Value::Bytes(&b)));
        } else {
            prop_assert_eq!(got.unwrap_err().0, BadReason::TooLong);
        }
    }

    /// Dates and date-times from their parts, valid or not: a value MySQL reads as written,
    /// or `invalid_value` / `out_of_range`.
    #[test]
    fn dates_and_datetimes_from_parts(
        y in prop_oneof![0..=10_000i32, 1969..=2039i32, 99_990..=100_010i32],
        m in 0..=13u32, d in 0..=32u32,
        hh in 0..=24u32, mm in 0..=60u32, ss in 0..=61u32,
        frac in prop::option::of("[0-9]{1,10}"),
        ty in prop::sample::select(vec![ColumnType::Date, ColumnType::DateTime { fsp: 6 }, ColumnType::Timestamp { fsp: 6 }]),
    ) {
        let date = format!("{y:04}-{m:02}-{d:02}");
        let raw = match ty {
            ColumnType::Date => date.clone(),
            _ => {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{date} {hh:02}:{mm:02}:{ss:02}{frac}")
            }
        };
        match convert_value(raw.as_bytes(), &col(ty.clone())) {
            Ok(v) => assert_fits(&v, raw.as_bytes(), &ty),
            Err((reason, detail)) => {
                let valid_date = NaiveDate::from_ymd_opt(y, m, d).is_some();
                if !valid_date || hh > 23 || mm > 59 || ss > 60 {
                    prop_assert_eq!(reason, BadReason::InvalidValue, "{}: {}", raw, detail);
                } else {
                    prop_assert!(
                        matches!(reason, BadReason::InvalidValue | BadReason::OutOfRange),
                        "{}",
                        raw
                    );
                }
            }
        }
    }

    /// JSON: accepted only if MySQL would take it: numbers within a double, at most 100
    /// levels of arrays and objects.
    #[test]
    fn json_numbers_and_depth(
        depth in prop_oneof![0..=3usize, 95..=130usize],
        object in any::<bool>(),
        mantissa in "-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,3})?",
        exponent in prop_oneof![-400..=400i32, 300..=320i32],
    ) {
        let number = format!("{mantissa}e{exponent}");
        let (open, close) = if object { ("{\"k\":", "}") } else { ("[", "]") };
        let doc = format!("{}{number}{}", open.repeat(depth), close.repeat(depth));
        let fits: f64 = number.parse().unwrap();
        let got = convert_value(doc.as_bytes(), &col(ColumnType::Json));
        if depth <= 100 && fits.is_finite() {
            prop_assert_eq!(got, Ok(Value::Text(&doc)));
        } else {
            prop_assert_eq!(got.unwrap_err().0, BadReason::InvalidValue, "{}", doc);
        }
    }

    /// Floats: a finite number that reads back as itself, or `invalid_value`.
    #[test]
    fn floats(f in any::<f64>()) {
        let raw = format!("{f:e}");
        match convert_value(raw.as_bytes(), &col(ColumnType::DOUBLE)) {
            Ok(v) => prop_assert_eq!(v, Value::Float(f)),
            Err((reason, _)) => {
                prop_assert!(!f.is_finite());
                prop_assert_eq!(reason, BadReason::InvalidValue);
            }
        }
    }
}
