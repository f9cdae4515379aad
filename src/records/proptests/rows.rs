//! Whole records: the splitter with any delimiter and escape byte, rows rendered with escapes
//! and null literals, any record against a table of any column types.

use super::*;

proptest! {
    #![proptest_config(config())]

    /// Any bytes, any delimiter and escape: fields or `malformed`, never a panic; without
    /// escapes the fields are exactly the pieces between delimiters.
    #[test]
    fn split_any_bytes(record in bytes(64), delimiter in byte(), escape in prop::option::of(byte())) {
        let mut s = FieldSplitter::new(delimiter, escape);
        match split_all(&mut s, &record) {
            Ok(fields) => {
                prop_assert!(!fields.is_empty());
                if escape.is_none_or(|e| !record.contains(&e)) {
                    let pieces: Vec<Vec<u8>> =
                        record.split(|&b| b == delimiter).map(<[u8]>::to_vec).collect();
                    prop_assert_eq!(fields, pieces);
                }
            }
            Err(e) => {
                prop_assert_eq!(e.reason, BadReason::Malformed);
                // Only a record that ends inside an escape sequence is malformed.
                prop_assert_eq!(Some(*record.last().unwrap()), escape);
            }
        }
    }

    /// A row rendered with escapes splits back into the same fields, however many
    /// delimiters and escape bytes the fields hold.
    #[test]
    fn escaped_row_round_trips(
        fields in prop::collection::vec(bytes(12), 1..8),
        (delimiter, escape) in (byte(), byte()).prop_filter("distinct", |(d, e)| d != e),
    ) {
        let record = render(&fields, delimiter, escape);
        let mut s = FieldSplitter::new(delimiter, Some(escape));
        prop_assert_eq!(split_all(&mut s, &record).unwrap(), fields.clone());
        // The splitter reuses its buffers: a second record after it splits the same.
        let again = render(&fields[..1], delimiter, escape);
        prop_assert_eq!(split_all(&mut s, &again).unwrap(), fields[..1].to_vec());
    }

    /// With an escape byte and a null literal written with it (`\N`), a rendered row with
    /// NULLs and data (including the text `\N` itself) converts back to the same values.
    #[test]
    fn nulls_and_escaped_data_round_trip(
        fields in prop::collection::vec(prop::option::of(bytes(8)), 1..6),
        escape_null in any::<bool>(),
    ) {
        let (delimiter, escape) = (b'|', b'\\');
        let null: &[u8] = if escape_null { b"\\N" } else { b"NULL" };
        let mut record = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                record.push(delimiter);
            }
            match f {
                None => record.extend_from_slice(null),
                Some(b) => {
                    let mut escaped = render(std::slice::from_ref(b), delimiter, escape);
                    // Data that reads as the null literal is written escaped, as data.
                    if escaped == null {
                        escaped.insert(0, escape);
                    }
                    record.extend_from_slice(&escaped);
                }
            }
        }
        let cols: Vec<Column> = (0..fields.len())
            .map(|i| Column {
                name: format!("c{i}"),
                ..col(ColumnType::Binary { max_bytes: 64 })
            })
            .collect();
        let mapping: Vec<Option<String>> = cols.iter().map(|c| Some(c.name.clone())).collect();
        let mut c = RowConverter::new(
            &cols,
            Some(&mapping),
            delimiter,
            Some(escape),
            Some(std::str::from_utf8(null).unwrap()),
        )
        .unwrap();
        let got = c
            .convert(&record, |v| v.iter().map(|v| match v {
                Value::Null => None,
                Value::Bytes(b) => Some(b.to_vec()),
                v => panic!("{v:?}"),
            }).collect::<Vec<_>>())
            .unwrap();
        prop_assert_eq!(got, fields);
    }

    /// Any record against a table of any column types: a row whose values fit, or a bad
    /// record with a reason that fits what is wrong.
    #[test]
    fn any_record_any_table(
        types in prop::collection::vec((column_type(), any::<bool>()), 1..5),
        values in prop::collection::vec(value_like(), 0..6),
        null_literal in prop::option::of("(\\\\N|NULL|)"),
        escape in prop::option::of(Just(b'\\')),
    ) {
        let cols: Vec<Column> = types
            .iter()
            .enumerate()
            .map(|(i, (ty, nullable))| Column {
                name: format!("c{i}"),
                ty: ty.clone(),
                nullable: *nullable,
                has_default: false,
                auto_increment: false,
            })
            .collect();
        let record = values.join(&b'|');
        let mapping: Vec<Option<String>> = cols.iter().map(|c| Some(c.name.clone())).collect();
        let mut c =
            RowConverter::new(&cols, Some(&mapping), b'|', escape, null_literal.as_deref()).unwrap();
        match c.convert(&record, |v| v.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>()) {
            Ok(row) => prop_assert_eq!(row.len(), cols.len()),
            Err(e) => {
                let fields = FieldSplitter::new(b'|', escape).split(&record).map(|f| f.len());
                match e.reason {
                    BadReason::FieldCount => prop_assert_ne!(fields, Ok(cols.len())),
                    BadReason::Malformed => prop_assert!(fields.is_err()),
                    _ => {
                        prop_assert_eq!(fields, Ok(cols.len()));
                        prop_assert!(e.column.is_some(), "{}", e);
                    }
                }
            }
        }
    }
}
