//! How the nodes' settings map: the CSV format, the source fields to the sink columns, the
//! JDBC URL's TLS setting, parse errors and publish-time boundaries.

use serde_json::{json, Value};

use super::*;

#[test]
fn escape_null_literal_and_a_decimal_delimiter() {
    let doc = with(|d| {
        let format = &mut node(d, "pulsar_source")["format"];
        format["fieldDelimiter"] = json!("44");
        format["escapeCharacter"] = json!("\\");
        format["nullLiteral"] = json!("\\N");
    });
    let cfg = config(args(&doc)).unwrap();
    assert_eq!(cfg.records.delimiter, b',');
    assert_eq!(cfg.records.escape, Some(b'\\'));
    assert_eq!(cfg.records.null_literal.as_deref(), Some("\\N"));
    // A tab, as the Manager writes the character itself.
    let tab = with(|d| node(d, "pulsar_source")["format"]["fieldDelimiter"] = json!("\t"));
    assert_eq!(map(&tab).unwrap().delimiter, b'\t');
    // No delimiter is no guess.
    let none = with(|d| node(d, "pulsar_source")["format"]["fieldDelimiter"] = Value::Null);
    assert!(map(&none)
        .unwrap_err()
        .to_string()
        .contains("fieldDelimiter"));
    let wide = with(|d| node(d, "pulsar_source")["format"]["fieldDelimiter"] = json!("||"));
    assert!(unsupported(&wide).contains("fieldDelimiter"));
}

#[test]
fn columns_follow_the_source_field_order_not_the_tables() {
    // The record is "name|extra|id"; the table has id, then name; `extra` goes nowhere.
    let doc = with(|d| {
        let src = node(d, "pulsar_source");
        src["fields"] = json!([
            {"type": "field", "name": "name", "formatInfo": {"type": "string"}},
            {"type": "field", "name": "extra", "formatInfo": {"type": "string"}},
            {"type": "field", "name": "id", "formatInfo": {"type": "int"}},
        ]);
        let sink = node(d, "mysql_sink");
        sink["fieldRelations"] = json!([
            {"type": "fieldRelation", "inputField": {"type": "field", "name": "id"},
             "outputField": {"type": "field", "name": "user_id"}},
            {"type": "fieldRelation", "inputField": {"type": "field", "name": "name"},
             "outputField": {"type": "field", "name": "user_name"}},
        ]);
    });
    let flow = map(&doc).unwrap();
    assert_eq!(flow.columns_option(), "user_name,-,user_id");
    let cfg = config(args(&doc)).unwrap();
    assert_eq!(
        cfg.records.columns,
        Some(vec![Some("user_name".into()), None, Some("user_id".into())])
    );
}

#[test]
fn unmappable_field_relations_are_refused() {
    let relation = |input: Value, column: &str| {
        with(|d| {
            node(d, "mysql_sink")["fieldRelations"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "fieldRelation", "inputField": input,
                              "outputField": {"type": "field", "name": column}}))
        })
    };
    let constant = relation(json!({"type": "constant", "value": "x"}), "tag");
    assert!(unsupported(&constant).contains("column 'tag'"));
    let function = relation(
        json!({"type": "cascadeFunctionWrapper", "functions": []}),
        "tag",
    );
    assert!(unsupported(&function).contains("cascadeFunctionWrapper"));
    let unknown = relation(json!({"type": "field", "name": "nope"}), "tag");
    assert!(unsupported(&unknown).contains("'nope', which is not a field of the source"));
    let twice = relation(json!({"type": "field", "name": "id"}), "id_copy");
    assert!(unsupported(&twice).contains("two columns"));
    let both = relation(json!({"type": "field", "name": "name"}), "id");
    assert!(unsupported(&both).contains("field 'name' written to two columns"));
    let comma =
        with(|d| node(d, "mysql_sink")["fieldRelations"][1]["outputField"]["name"] = json!("a,b"));
    assert!(unsupported(&comma).contains("'a,b'"));
    let meta = with(|d| {
        node(d, "pulsar_source")["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "metaField", "name": "proc_time", "metaField": "PROCESS_TIME"}))
    });
    assert!(unsupported(&meta).contains("metaField 'proc_time'"));
}

#[test]
fn jdbc_settings_map_to_tls_and_parse_errors_to_skipping() {
    let doc = with(|d| {
        node(d, "mysql_sink")["url"] = json!(
            "jdbc:mysql://db.example:3307/shop?useSSL=false&characterEncoding=utf8&rewriteBatchedStatements=true"
        );
        node(d, "pulsar_source")["format"]["ignoreParseErrors"] = json!(true);
    });
    let cfg = config(args(&doc)).unwrap();
    assert_eq!(cfg.sink.url, "mysql://inlong_real@db.example:3307/shop");
    assert_eq!(cfg.sink.tls.mode, crate::config::SslMode::Disabled);
    assert_eq!(cfg.records.on_bad_record, BadRecordPolicy::Skip);
    assert_eq!(
        cfg.records.max_bad_records,
        u64::MAX,
        "Flink skips without a limit"
    );
    let strict = RunArgs {
        on_bad_record: Some(BadRecordPolicy::Fail),
        ..args(&doc)
    };
    assert!(config(strict)
        .unwrap_err()
        .to_string()
        .contains("ignoreParseErrors"));
    let verify =
        with(|d| node(d, "mysql_sink")["url"] = json!("jdbc:mysql://h/db?sslMode=VERIFY_IDENTITY"));
    assert_eq!(
        map(&verify).unwrap().mysql.ssl_mode.as_deref(),
        Some("verify-identity")
    );
    // The window the Manager fills in when it submits an offline job.
    let bounded = with(|d| {
        node(d, "pulsar_source")["sourceBoundaryOptions"] = json!({
            "source.start.publish-time": "1796567900000",
            "source.stop.at-publish-time": "1796567960000"
        })
    });
    let cfg = config(args(&bounded)).unwrap();
    assert_eq!(cfg.range_key(), "from=1796567900000;to=1796567960000");
    let other = RunArgs {
        from: Some("1796567800000".into()),
        ..args(&bounded)
    };
    assert!(config(other)
        .unwrap_err()
        .to_string()
        .contains("source.start.publish-time"));
}
