//! A run driven by an InLong dataflow alone: the document a real InLong Manager recorded
//! (tests/data/inlong-manager), pointed at this test's topic, database and MySQL account, read
//! from stdin as the group's task DAG gives it, with the password in the environment only.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const LIST_ALL: &str = include_str!("../data/inlong-manager/20-cfg-stream-listAll.json");

/// The recorded GroupInfo, with the source and sink moved to this test's topic, table and
/// account; the record is `name|id` (not the table's order), `\` escapes, `\N` is NULL.
fn dataflow(topic: &str, db: &TestDb, user: &str) -> Value {
    let answer: Value = serde_json::from_str(LIST_ALL).unwrap();
    let ext = &answer["response"]["data"]["list"][0]["extList"][0];
    assert_eq!(ext["keyName"], "dataflow");
    let mut doc: Value = serde_json::from_str(ext["keyValue"].as_str().unwrap()).unwrap();
    let server = url::Url::parse(&mysql_server_url()).unwrap();
    let jdbc = format!(
        "jdbc:mysql://{}:{}/{}",
        server.host_str().unwrap(),
        server.port().unwrap_or(3306),
        db.name
    );
    for node in doc["streams"][0]["nodes"].as_array_mut().unwrap() {
        match node["type"].as_str().unwrap() {
            "pulsarExtract" => {
                node["topic"] = json!(topic.trim_start_matches("persistent://"));
                node["serviceUrl"] = json!(pulsar_url());
                node["adminUrl"] = json!(admin_url());
                node["fields"] = json!([
                    {"type": "field", "name": "name", "formatInfo": {"type": "string"}, "nodeId": "pulsar_source"},
                    {"type": "field", "name": "id", "formatInfo": {"type": "int"}, "nodeId": "pulsar_source"},
                ]);
                node["format"]["escapeCharacter"] = json!("\\");
                node["format"]["nullLiteral"] = json!("\\N");
            }
            "mysqlLoad" => {
                node["url"] = json!(jdbc);
                node["username"] = json!(user);
                // The task DAG takes the password out and passes it in the environment.
                node["password"] = Value::Null;
                node["tableName"] = json!("people");
                node["primaryKey"] = json!("uid");
                node["fieldRelations"] = json!([
                    {"type": "fieldRelation", "inputField": {"type": "field", "name": "id"},
                     "outputField": {"type": "field", "name": "uid"}},
                    {"type": "fieldRelation", "inputField": {"type": "field", "name": "name"},
                     "outputField": {"type": "field", "name": "uname"}},
                ]);
            }
            other => panic!("unexpected node {other}"),
        }
    }
    doc
}

/// `pulsar2mysql run --inlong-dataflow -` with `doc` on stdin and `env` in the environment.
async fn run_dataflow(doc: &Value, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(&with(vec!["run".into()], &["--inlong-dataflow", "-"]));
    cmd.args(extra).stdin(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let text = doc.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn pulsar2mysql");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output()
    });
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("the run ends within 300 s")
        .unwrap()
        .unwrap();
    parse(out)
}

#[tokio::test]
async fn a_run_from_an_inlong_dataflow_alone() {
    let db = TestDb::new("inlong").await;
    db.exec(
        "CREATE TABLE people (uid INT PRIMARY KEY, uname VARCHAR(64) NULL, \
         note VARCHAR(16) NOT NULL DEFAULT 'inlong')",
    )
    .await;
    // The sink's own account, with a password, as an InLong MySQL data node has.
    let user = unique("p2m_il").replace('_', "");
    let user = &user[..user.len().min(32)];
    let password = format!("pw-{}", unique("secret"));
    for host in ["%", "localhost"] {
        db.exec(&format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'; \
             GRANT ALL ON `{}`.* TO '{user}'@'{host}'",
            db.name
        ))
        .await;
    }
    let topic = topic("inlong");
    let records = (0..200).map(|i| match i % 10 {
        0 => format!("\\N|{i}"),
        5 => format!("a\\|b {i}|{i}"),
        _ => format!("user-{i}|{i}"),
    });
    produce(&topic, records.map(String::into_bytes), 10).await;
    let doc = dataflow(&topic, &db, user);
    let env = [("PULSAR2MYSQL_MYSQL_PASSWORD", password.as_str())];

    let run = run_dataflow(&doc, &["--job-id", "inlong_it"], &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u("rows_written"), 200);
    assert_eq!(run.summary["table"], "people");
    assert_eq!(run.summary["topic"], json!(topic));
    assert_eq!(db.scalar("SELECT COUNT(*) FROM people").await, 200);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM people WHERE uname IS NULL")
            .await,
        20
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM people WHERE uid = 15 AND uname = 'a|b 15'")
            .await,
        1
    );
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM people WHERE uid = 7 AND uname = 'user-7' AND note = 'inlong'"
        )
        .await,
        1
    );
    // Again: exactly once, nothing to do.
    let again = run_dataflow(&doc, &["--job-id", "inlong_it"], &env).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.outcome(), "nothing_to_do");

    // An option that disagrees with the dataflow, or a node it cannot honour: exit 2 and a
    // sentence, nothing written; the password shows nowhere.
    let conflict = run_dataflow(&doc, &["--table", "sink_table"], &env).await;
    assert_eq!(conflict.code, 2, "{}", conflict.stderr);
    let error = conflict.summary["error"].as_str().unwrap();
    assert!(
        error.contains("--table 'sink_table'") && error.contains("tableName"),
        "{error}"
    );
    let mut filtered = doc.clone();
    filtered["streams"][0]["nodes"][1]["filters"] = json!([{"type": "singleValueFilter"}]);
    let refused = run_dataflow(&filtered, &[], &env).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.summary["error"]
        .as_str()
        .unwrap()
        .contains("a filter on mysqlLoad node 'mysql_sink'"));
    let wrong = run_dataflow(
        &{
            let mut d = doc.clone();
            d["streams"][0]["nodes"][1]["password"] = json!("not-the-password");
            d
        },
        &[],
        &env,
    )
    .await;
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.summary["error"]
        .as_str()
        .unwrap()
        .contains("values not shown"));
    for run in [&run, &again, &conflict, &refused, &wrong] {
        assert!(
            !run.stdout.contains(&password) && !run.stderr.contains(&password),
            "the password leaked: {}{}",
            run.stdout,
            run.stderr
        );
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM people").await, 200);
    for host in ["%", "localhost"] {
        db.exec(&format!("DROP USER '{user}'@'{host}'")).await;
    }
}
