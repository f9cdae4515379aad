//! The mapping, with the dataflow a real InLong Manager recorded (tests/data/inlong-manager)
//! and variants of it.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

use super::source::PULSAR_TOKEN_AUTH;
use super::*;
use crate::config::Config;
use crate::error::ExitCode;

const LIST_ALL: &str =
    include_str!("../../../tests/data/inlong-manager/20-cfg-stream-listAll.json");

/// The recorded Manager answer to `stream/listAll`, whole.
fn list_all() -> Value {
    serde_json::from_str(LIST_ALL).unwrap()
}

/// The `dataflow` entry of the recorded stream's extList: InLong Sort's GroupInfo.
fn recorded() -> Value {
    let answer = list_all();
    let ext = answer["response"]["data"]["list"][0]["extList"]
        .as_array()
        .unwrap();
    let entry = ext.iter().find(|e| e["keyName"] == "dataflow").unwrap();
    serde_json::from_str(entry["keyValue"].as_str().unwrap()).unwrap()
}

fn with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc = recorded();
    edit(&mut doc);
    doc
}

fn node<'a>(doc: &'a mut Value, id: &str) -> &'a mut Value {
    doc["streams"][0]["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == id)
        .unwrap()
}

fn map(doc: &Value) -> Result<DataflowOptions> {
    parse_dataflow(&doc.to_string(), "test.json", None, None)
}

fn unsupported(doc: &Value) -> String {
    let err = map(doc).unwrap_err();
    assert!(matches!(err, DataflowError::Unsupported(_)), "{err}");
    err.to_string()
}

/// The document in a file, as `--inlong-dataflow FILE` reads it.
fn file(doc: &Value) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("p2m-inlong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.json", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, doc.to_string()).unwrap();
    path.display().to_string()
}

fn args(doc: &Value) -> RunArgs {
    RunArgs {
        inlong_dataflow: Some(file(doc)),
        ..Default::default()
    }
}

fn config(args: RunArgs) -> crate::error::Result<Config> {
    args.into_config()
}

#[test]
fn the_recorded_dataflow_maps_to_the_groups_settings() {
    let flow = map(&recorded()).unwrap();
    assert_eq!(flow.stream_id, "inlong_real_1206143817");
    assert_eq!(flow.sink_id, "mysql_sink");
    assert_eq!(
        flow.topic.0,
        "persistent://public/default/inlong_real_1206143817"
    );
    assert_eq!(flow.pulsar_url, "pulsar://127.0.0.1:6650");
    assert_eq!(
        flow.pulsar_admin_url.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(flow.delimiter, b'|');
    assert_eq!((flow.escape, flow.null_literal.as_deref()), (None, None));
    assert!(!flow.ignore_parse_errors);
    assert_eq!((flow.from.as_deref(), flow.to.as_deref()), (None, None));
    assert_eq!(flow.table, "sink_table");
    assert_eq!(
        flow.mysql,
        MysqlTarget {
            host: "127.0.0.1".into(),
            port: 3306,
            user: "inlong_real".into(),
            database: "inlong_real_sink".into(),
            ssl_mode: None,
        }
    );
    assert_eq!(flow.columns_option(), "id,name");
    assert_eq!(
        flow.mode,
        WriteMode::Upsert,
        "the sink declares primaryKey id"
    );
    assert_eq!(flow.mysql_password, Some(Secret("<redacted>".into())));
    assert_eq!(flow.pulsar_auth, None);
}

/// The same answer lists the stream's source and sink as the Manager stores them: the mapping
/// must say what they say (the Manager's `dataSeparator` is the ASCII code, 124).
#[test]
fn the_mapping_agrees_with_the_managers_own_source_and_sink() {
    let answer = list_all();
    let stream = &answer["response"]["data"]["list"][0];
    let source = &stream["sourceList"][0];
    let sink = &stream["sinkList"][0];
    let flow = map(&recorded()).unwrap();
    let code: u8 = source["dataSeparator"].as_str().unwrap().parse().unwrap();
    assert_eq!(flow.delimiter, code);
    assert_eq!(
        flow.topic.0,
        format!(
            "persistent://{}/{}/{}",
            source["pulsarTenant"].as_str().unwrap(),
            source["namespace"].as_str().unwrap(),
            source["topic"].as_str().unwrap()
        )
    );
    assert_eq!(flow.pulsar_url, source["serviceUrl"].as_str().unwrap());
    assert_eq!(flow.mysql.database, sink["databaseName"].as_str().unwrap());
    assert_eq!(flow.table, sink["tableName"].as_str().unwrap());
    assert_eq!(flow.mysql.user, sink["username"].as_str().unwrap());
    let sink_columns: Vec<Option<String>> = sink["sinkFieldList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Some(f["fieldName"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(flow.columns, sink_columns);
}

#[test]
fn the_recorded_dataflow_becomes_a_whole_run_configuration() {
    let cfg = config(args(&recorded())).unwrap();
    assert_eq!(
        cfg.source.topic.0,
        "persistent://public/default/inlong_real_1206143817"
    );
    assert_eq!(cfg.source.service_url, "pulsar://127.0.0.1:6650");
    assert_eq!(
        cfg.source.admin_url.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(cfg.records.delimiter, b'|');
    assert_eq!(
        cfg.records.columns,
        Some(vec![Some("id".into()), Some("name".into())])
    );
    assert_eq!(
        cfg.sink.url,
        "mysql://inlong_real@127.0.0.1:3306/inlong_real_sink"
    );
    assert_eq!(cfg.sink.table, "sink_table");
    assert_eq!(cfg.sink.password.as_deref(), Some("<redacted>"));
    assert_eq!(cfg.sink.mode, WriteMode::Upsert);
    assert_eq!(
        cfg.job_id,
        "persistent://public/default/inlong_real_1206143817->sink_table"
    );
    // `migrate` takes the MySQL side from the dataflow too.
    let sink = args(&recorded()).into_sink_config().unwrap();
    assert_eq!(
        sink.url,
        "mysql://inlong_real@127.0.0.1:3306/inlong_real_sink"
    );
}

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

#[test]
fn options_that_agree_are_fine_and_options_that_disagree_name_both_places() {
    let same = RunArgs {
        topic: Some("persistent://public/default/inlong_real_1206143817".into()),
        table: Some("inlong_real_sink.sink_table".into()),
        delimiter: Some("124".into()),
        columns: Some("id,name".into()),
        mode: Some(WriteMode::Upsert),
        pulsar_url: Some("pulsar://127.0.0.1:6650/".into()),
        mysql_url: Some(
            "mysql://inlong_real@127.0.0.1/inlong_real_sink?ssl-mode=disabled"
                .parse()
                .unwrap(),
        ),
        ..args(&recorded())
    };
    let cfg = config(same).unwrap();
    assert_eq!(
        cfg.sink.tls.mode,
        crate::config::SslMode::Disabled,
        "the explicit URL's own TLS setting stays"
    );

    let cases: Vec<(RunArgs, &str, &str)> = vec![
        (
            RunArgs {
                topic: Some("other".into()),
                ..args(&recorded())
            },
            "--topic 'other'",
            "pulsarExtract node topic 'public/default/inlong_real_1206143817'",
        ),
        (
            RunArgs {
                table: Some("t2".into()),
                ..args(&recorded())
            },
            "--table 't2'",
            "tableName",
        ),
        (
            RunArgs {
                delimiter: Some(",".into()),
                ..args(&recorded())
            },
            "--delimiter ','",
            "fieldDelimiter '|'",
        ),
        (
            RunArgs {
                columns: Some("name,id".into()),
                ..args(&recorded())
            },
            "--columns 'name,id'",
            "fieldRelations",
        ),
        (
            RunArgs {
                mode: Some(WriteMode::Insert),
                ..args(&recorded())
            },
            "--mode 'insert'",
            "primaryKey",
        ),
        (
            RunArgs {
                pulsar_url: Some("pulsar://elsewhere:6650".into()),
                ..args(&recorded())
            },
            "--pulsar-url",
            "serviceUrl",
        ),
        (
            RunArgs {
                escape: Some("\\".into()),
                ..args(&with(|d| {
                    node(d, "pulsar_source")["format"]["escapeCharacter"] = json!("^")
                }))
            },
            "--escape '\\'",
            "escapeCharacter '^'",
        ),
        (
            RunArgs {
                null_literal: Some("NULL".into()),
                ..args(&with(|d| {
                    node(d, "pulsar_source")["format"]["nullLiteral"] = json!("\\N")
                }))
            },
            "--null-literal 'NULL'",
            "nullLiteral",
        ),
        (
            RunArgs {
                mysql_url: Some(
                    "mysql://root:pw-in-url@127.0.0.1:3306/inlong_real_sink"
                        .parse()
                        .unwrap(),
                ),
                ..args(&recorded())
            },
            "--mysql-url 'mysql://root:***@127.0.0.1:3306/inlong_real_sink'",
            "url and username 'mysql://inlong_real@127.0.0.1:3306/inlong_real_sink'",
        ),
        (
            RunArgs {
                mysql_url: Some(
                    "mysql://inlong_real@127.0.0.1:3307/inlong_real_sink"
                        .parse()
                        .unwrap(),
                ),
                ..args(&recorded())
            },
            "--mysql-url",
            "url and username",
        ),
    ];
    for (a, option, place) in cases {
        let err = config(a).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage);
        let msg = err.to_string();
        assert!(
            msg.contains(option) && msg.contains(place) && msg.contains("give it in one place"),
            "{option}: {msg}"
        );
        assert!(!msg.contains("pw-in-url"), "{msg}");
    }
}

#[test]
fn secrets_are_compared_never_shown() {
    let doc = with(|d| {
        node(d, "mysql_sink")["password"] = json!("pw-from-manager");
        let src = node(d, "pulsar_source");
        src["clientAuthPluginClassName"] = json!(PULSAR_TOKEN_AUTH);
        src["clientAuthParams"] = json!("token:jwt-from-manager");
    });
    let cfg = config(RunArgs {
        pulsar_admin_url: Some("https://127.0.0.1:8443".into()),
        ..args(&doc)
    });
    // The recorded admin URL is http: the dataflow's own admin URL disagrees with the option.
    assert!(cfg.unwrap_err().to_string().contains("--pulsar-admin-url"));
    let cfg = config(args(&doc)).unwrap();
    assert_eq!(cfg.sink.password.as_deref(), Some("pw-from-manager"));
    assert_eq!(cfg.source.auth_token.as_deref(), Some("jwt-from-manager"));
    // The same secret through the environment is fine.
    let cfg = config(RunArgs {
        mysql_password: Some(Secret("pw-from-manager".into())),
        pulsar_token: Some(Secret("jwt-from-manager".into())),
        ..args(&doc)
    })
    .unwrap();
    assert_eq!(cfg.sink.password.as_deref(), Some("pw-from-manager"));
    for a in [
        RunArgs {
            mysql_password: Some(Secret("pw-from-env".into())),
            ..args(&doc)
        },
        RunArgs {
            mysql_url: Some(
                "mysql://inlong_real:pw-from-env@127.0.0.1/inlong_real_sink"
                    .parse()
                    .unwrap(),
            ),
            ..args(&doc)
        },
        RunArgs {
            pulsar_token: Some(Secret("jwt-from-env".into())),
            ..args(&doc)
        },
    ] {
        let msg = config(a).unwrap_err().to_string();
        assert!(
            msg.contains("values not shown") && msg.contains("give it in one place"),
            "{msg}"
        );
        for secret in [
            "pw-from-manager",
            "pw-from-env",
            "jwt-from-manager",
            "jwt-from-env",
        ] {
            assert!(!msg.contains(secret), "{msg}");
        }
    }
    // No password in the dataflow (the task DAG takes it out and passes it in the
    // environment): the environment's is used.
    let bare = with(|d| node(d, "mysql_sink")["password"] = Value::Null);
    let cfg = config(RunArgs {
        mysql_password: Some(Secret("pw-from-env".into())),
        ..args(&bare)
    })
    .unwrap();
    assert_eq!(cfg.sink.password.as_deref(), Some("pw-from-env"));
    // Debug output of what the mapping found shows no secret either.
    let shown = format!("{:?}", map(&doc).unwrap());
    assert!(
        !shown.contains("pw-from-manager") && !shown.contains("jwt-from-manager"),
        "{shown}"
    );
    // A token file, as Pulsar's AuthenticationToken takes it.
    let filed = with(|d| {
        let src = node(d, "pulsar_source");
        src["clientAuthPluginClassName"] = json!(PULSAR_TOKEN_AUTH);
        src["clientAuthParams"] = json!("file:///etc/pulsar/token");
    });
    assert_eq!(
        map(&filed).unwrap().pulsar_auth,
        Some(PulsarAuth::TokenFile("/etc/pulsar/token".into()))
    );
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
