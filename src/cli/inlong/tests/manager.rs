//! The dataflow a real InLong Manager recorded, as it is: it maps to the group's settings,
//! agrees with the Manager's own view of the stream's source and sink, and makes a whole run.

use super::*;

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
