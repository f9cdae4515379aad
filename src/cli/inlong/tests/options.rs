//! The dataflow applied to options: agreeing options are fine, disagreeing ones name both
//! places, and secrets are compared, never shown.

use serde_json::{json, Value};

use super::*;
use crate::cli::inlong::source::PULSAR_TOKEN_AUTH;
use crate::error::ExitCode;

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
