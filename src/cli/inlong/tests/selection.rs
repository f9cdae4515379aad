//! Which stream and which MySQL sink a run is, when the dataflow has several.

use serde_json::{json, Value};

use super::*;
use crate::error::ExitCode;

#[test]
fn several_streams_need_a_stream_selector() {
    let mut doc = recorded();
    let mut second = doc["streams"][0].clone();
    second["streamId"] = json!("orders");
    node_in(&mut second, "pulsar_source")["topic"] = json!("public/default/orders");
    node_in(&mut second, "mysql_sink")["tableName"] = json!("orders");
    doc["streams"].as_array_mut().unwrap().push(second);
    let text = doc.to_string();
    let err = parse_dataflow(&text, "f", None, None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("2 streams")
            && msg.contains("'inlong_real_1206143817'")
            && msg.contains("'orders'")
            && msg.contains("--inlong-stream"),
        "{msg}"
    );
    let orders = parse_dataflow(&text, "f", Some("orders"), None).unwrap();
    assert_eq!(
        (orders.topic.0.as_str(), orders.table.as_str()),
        ("persistent://public/default/orders", "orders")
    );
    let first = parse_dataflow(&text, "f", Some("inlong_real_1206143817"), None).unwrap();
    assert_eq!(first.table, "sink_table");
    let err = parse_dataflow(&text, "f", Some("nope"), None).unwrap_err();
    assert!(
        err.to_string().contains("--inlong-stream 'nope' is not in"),
        "{err}"
    );
    // Through the options, as a run gets them; exit code 2.
    let mut a = args(&doc);
    let err = config(a.clone()).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Usage);
    a.inlong_stream = Some("orders".into());
    assert_eq!(config(a).unwrap().sink.table, "orders");
}

fn node_in<'a>(stream: &'a mut Value, id: &str) -> &'a mut Value {
    stream["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == id)
        .unwrap()
}

#[test]
fn several_mysql_sinks_need_a_sink_selector() {
    let doc = with(|d| {
        let mut other = node(d, "mysql_sink").clone();
        other["id"] = json!("mysql_archive");
        other["tableName"] = json!("archive");
        let stream = &mut d["streams"][0];
        stream["nodes"].as_array_mut().unwrap().push(other);
        stream["relations"][0]["outputs"] = json!(["mysql_sink", "mysql_archive"]);
    });
    let err = map(&doc).unwrap_err().to_string();
    assert!(
        err.contains("--inlong-sink") && err.contains("'mysql_archive'"),
        "{err}"
    );
    let archive = parse_dataflow(&doc.to_string(), "f", None, Some("mysql_archive")).unwrap();
    assert_eq!(
        (archive.sink_id.as_str(), archive.table.as_str()),
        ("mysql_archive", "archive")
    );
    // A sink no relation feeds is not a sink of this source.
    let orphan = with(|d| {
        let mut other = node(d, "mysql_sink").clone();
        other["id"] = json!("orphan");
        d["streams"][0]["nodes"].as_array_mut().unwrap().push(other);
    });
    let err = parse_dataflow(&orphan.to_string(), "f", None, Some("orphan")).unwrap_err();
    assert!(err.to_string().contains("no relation"), "{err}");
}
