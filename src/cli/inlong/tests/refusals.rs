//! What the runner cannot honour exactly, and a document that is not a dataflow, refused with
//! a sentence naming it.

use serde_json::json;

use super::*;
use crate::error::ExitCode;

#[test]
fn what_the_runner_cannot_do_is_refused_with_its_name() {
    let kafka = with(|d| node(d, "pulsar_source")["type"] = json!("kafkaExtract"));
    assert!(unsupported(&kafka).contains("'kafkaExtract'"));
    let transform = with(|d| {
        let stream = &mut d["streams"][0];
        stream["nodes"].as_array_mut().unwrap().push(json!({
            "type": "baseTransform", "id": "t1", "name": "t1", "fields": [],
            "fieldRelations": [], "filters": []
        }));
    });
    let msg = unsupported(&transform);
    assert!(
        msg.contains("'baseTransform'") && msg.contains("no transform"),
        "{msg}"
    );
    let hive = with(|d| node(d, "mysql_sink")["type"] = json!("hiveLoad"));
    assert!(unsupported(&hive).contains("'hiveLoad'"));
    let filter = with(|d| {
        node(d, "mysql_sink")["filters"] =
            json!([{"type": "singleValueFilter", "source": {"type": "field", "name": "id"}}])
    });
    assert!(unsupported(&filter).contains("a filter"));
    let json_format = with(|d| node(d, "pulsar_source")["format"] = json!({"type": "jsonFormat"}));
    assert!(unsupported(&json_format).contains("'jsonFormat'"));
    let quoted = with(|d| {
        node(d, "pulsar_source")["format"]["disableQuoteCharacter"] = json!(false);
        node(d, "pulsar_source")["format"]["quoteCharacter"] = json!("\"");
    });
    assert!(unsupported(&quoted).contains("quoted CSV"));
    let comments = with(|d| node(d, "pulsar_source")["format"]["allowComments"] = json!(true));
    assert!(unsupported(&comments).contains("allowComments"));
    let join = with(|d| d["streams"][0]["relations"][0]["type"] = json!("innerJoin"));
    assert!(unsupported(&join).contains("'innerJoin'"));
    let props =
        with(|d| node(d, "mysql_sink")["properties"] = json!({"sink.buffer-flush.max-rows": "10"}));
    assert!(unsupported(&props).contains("sink.buffer-flush.max-rows"));
    let unknown = with(|d| node(d, "mysql_sink")["someNewSetting"] = json!("on"));
    assert!(unsupported(&unknown).contains("'someNewSetting'"));
    let keyed = with(|d| node(d, "pulsar_source")["primaryKey"] = json!("id"));
    assert!(unsupported(&keyed).contains("upsert-pulsar"));
    let latest = with(|d| node(d, "pulsar_source")["scanStartupMode"] = json!("latest"));
    assert!(unsupported(&latest).contains("'latest'"));
    let auth = with(|d| {
        let src = node(d, "pulsar_source");
        src["clientAuthPluginClassName"] =
            json!("org.apache.pulsar.client.impl.auth.AuthenticationTls");
        src["clientAuthParams"] = json!("tlsCertFile:/c,tlsKeyFile:/k");
    });
    assert!(unsupported(&auth).contains("AuthenticationTls"));
    let tz = with(|d| {
        node(d, "mysql_sink")["url"] =
            json!("jdbc:mysql://127.0.0.1:3306/inlong_real_sink?serverTimezone=Asia/Shanghai")
    });
    assert!(unsupported(&tz).contains("'serverTimezone'"));
    let cluster = with(|d| node(d, "mysql_sink")["url"] = json!("jdbc:mysql://a:3306,b:3306/db"));
    assert!(unsupported(&cluster).contains("several servers"));
    let creds = with(|d| node(d, "mysql_sink")["url"] = json!("jdbc:mysql://u:hunter2@h/db"));
    let msg = unsupported(&creds);
    assert!(!msg.contains("hunter2") && msg.contains("***"), "{msg}");
    // Every refusal is a configuration error: exit 2.
    let err = config(args(&kafka)).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Usage);
    assert!(err.to_string().contains("cannot honour exactly"), "{err}");
}

#[test]
fn not_json_or_not_a_dataflow_says_so() {
    let err = parse_dataflow("{nope", "group.json", None, None).unwrap_err();
    assert!(err.to_string().contains("group.json is not JSON"), "{err}");
    let err = parse_dataflow("{\"streams\": []}", "f", None, None).unwrap_err();
    assert!(err.to_string().contains("no stream"), "{err}");
    // The Manager's whole answer instead of the dataflow in it.
    let err = parse_dataflow(LIST_ALL, "f", None, None).unwrap_err();
    assert!(err.to_string().contains("`dataflow` entry"), "{err}");
    let missing = RunArgs {
        inlong_dataflow: Some("/nonexistent/dataflow.json".into()),
        ..Default::default()
    };
    let err = config(missing).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read the InLong dataflow /nonexistent/dataflow.json"),
        "{err}"
    );
}
