//! The `mysqlLoad` node: which one of the stream's MySQL sinks this run writes, the source
//! field each of its columns is filled from, and the server, database, table and TLS setting
//! its JDBC URL names.

use serde_json::{Map, Value};

use super::json::{array, obj, opt_string, string};
use super::{DataflowError, MysqlTarget, Result};

pub(super) fn select_sink<'a>(
    loads: &[&'a Map<String, Value>],
    wanted: Option<&str>,
    at: &str,
) -> Result<&'a Map<String, Value>> {
    let id = |n: &Map<String, Value>| {
        n.get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let ids = || {
        loads
            .iter()
            .map(|n| format!("'{}'", id(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (wanted.filter(|w| !w.is_empty()), loads) {
        (_, []) => Err(DataflowError::Unsupported(format!(
            "{at} without a mysqlLoad node (the runner writes MySQL only)"
        ))),
        (None, [one]) => Ok(one),
        (None, _) => Err(DataflowError::Ambiguous(format!(
            "{at} of the InLong dataflow has {} MySQL sinks ({}); say which one this run \
             writes with --inlong-sink (PULSAR2MYSQL_INLONG_SINK)",
            loads.len(),
            ids()
        ))),
        (Some(w), _) => loads.iter().find(|n| id(n) == w).copied().ok_or_else(|| {
            DataflowError::Ambiguous(format!(
                "--inlong-sink '{w}' is not a mysqlLoad node of {at}, whose MySQL sinks are {}",
                ids()
            ))
        }),
    }
}

/// Source field -> sink column, in source field order; a field no relation reads is skipped.
pub(super) fn map_columns(
    fields: &[String],
    load: &Map<String, Value>,
    at: &str,
    extract_id: &str,
) -> Result<Vec<Option<String>>> {
    let mut columns: Vec<Option<String>> = vec![None; fields.len()];
    let relations = array(load, "fieldRelations", at)?;
    for r in relations {
        let r = obj(r, &format!("a field relation of {at}"))?;
        match r.get("type").and_then(Value::as_str) {
            Some("fieldRelation") | None => {}
            Some(other) => {
                return Err(DataflowError::Unsupported(format!(
                    "a field relation of type '{other}' on {at} (only field -> column)"
                )))
            }
        }
        let output = r
            .get("outputField")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                DataflowError::Malformed(format!("a field relation of {at} has no outputField"))
            })?;
        let column = string(output, "name", &format!("an outputField of {at}"))?;
        let input = r
            .get("inputField")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                DataflowError::Malformed(format!(
                    "the field relation to column '{column}' on {at} has no inputField"
                ))
            })?;
        let kind = input.get("type").and_then(Value::as_str).unwrap_or("field");
        let name = input.get("name").and_then(Value::as_str);
        let node = input.get("nodeId").and_then(Value::as_str);
        let source = match (kind, name) {
            ("field", Some(name)) if node.is_none_or(|n| n == extract_id) => name,
            _ => {
                return Err(DataflowError::Unsupported(format!(
                    "column '{column}' of {at} filled from a {kind} (only a field of the \
                     record, unchanged, can be mapped: no constant, function or metadata)"
                )))
            }
        };
        let Some(index) = fields.iter().position(|f| f == source) else {
            return Err(DataflowError::Unsupported(format!(
                "column '{column}' of {at} filled from '{source}', which is not a field of \
                 the source"
            )));
        };
        if column.is_empty() || column == "-" || column.contains(',') {
            return Err(DataflowError::Unsupported(format!(
                "the column name '{column}' on {at} (the runner's column list cannot name it)"
            )));
        }
        if let Some(previous) = &columns[index] {
            return Err(DataflowError::Unsupported(format!(
                "the field '{source}' written to two columns, '{previous}' and '{column}', on \
                 {at}"
            )));
        }
        if columns.iter().flatten().any(|c| c == column) {
            return Err(DataflowError::Unsupported(format!(
                "two fields written to the column '{column}' on {at}"
            )));
        }
        columns[index] = Some(column.to_string());
    }
    if columns.iter().all(Option::is_none) {
        return Err(DataflowError::Malformed(format!(
            "{at} has no field relation: no field goes to any column"
        )));
    }
    Ok(columns)
}

/// The JDBC URL's settings that neither change the rows written nor have a runner equivalent
/// to set: accepted and left to the runner's defaults.
const JDBC_HARMLESS: &[&str] = &[
    "useUnicode",
    "characterEncoding",
    "rewriteBatchedStatements",
    "allowPublicKeyRetrieval",
    "autoReconnect",
    "connectTimeout",
    "socketTimeout",
    "useServerPrepStmts",
    "cachePrepStmts",
];

pub(super) fn mysql_target(load: &Map<String, Value>, at: &str) -> Result<(MysqlTarget, String)> {
    let jdbc = string(load, "url", at)?;
    let user = opt_string(load, "username", at)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| DataflowError::Malformed(format!("{at} has no username")))?;
    let table = string(load, "tableName", at)?;
    let rest = jdbc
        .strip_prefix("jdbc:mysql://")
        .or_else(|| jdbc.strip_prefix("jdbc:mariadb://"))
        .ok_or_else(|| {
            DataflowError::Unsupported(format!(
                "the JDBC URL '{}' of {at} (only jdbc:mysql://host[:port]/database, one server)",
                shown_jdbc(jdbc)
            ))
        })?;
    let unsupported = |why: &str| {
        DataflowError::Unsupported(format!(
            "the JDBC URL '{}' of {at} ({why})",
            shown_jdbc(jdbc)
        ))
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains(',') || authority.contains('(') {
        return Err(unsupported("several servers; the runner writes to one"));
    }
    if authority.contains('@') {
        return Err(unsupported(
            "credentials in the URL; InLong gives them as username and password",
        ));
    }
    let parsed = url::Url::parse(&format!("mysql://{rest}"))
        .map_err(|e| unsupported(&format!("not a URL: {e}")))?;
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| unsupported("no host"))?
        .to_string();
    let port = parsed.port().unwrap_or(3306);
    let mut database = parsed.path().trim_matches('/').to_string();
    let mut table = table.to_string();
    if database.is_empty() {
        match table.split_once('.') {
            Some((db, t)) => (database, table) = (db.to_string(), t.to_string()),
            None => return Err(unsupported("no database, and the table names none")),
        }
    }
    let mut ssl_mode = None;
    let mut verify = None;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslMode" => ssl_mode = Some(value.to_lowercase().replace('_', "-")),
            "useSSL" | "requireSSL" if ssl_mode.is_none() => {
                ssl_mode = Some(
                    if value == "true" {
                        "required"
                    } else {
                        "disabled"
                    }
                    .into(),
                )
            }
            "useSSL" | "requireSSL" => {}
            "verifyServerCertificate" => verify = Some(value == "true"),
            k if JDBC_HARMLESS.contains(&k) => {
                if k == "characterEncoding"
                    && !["utf8", "utf-8", "utf8mb4"].contains(&value.to_lowercase().as_str())
                {
                    return Err(unsupported(&format!(
                        "characterEncoding={value}; the runner writes UTF-8"
                    )));
                }
            }
            other => {
                return Err(unsupported(&format!(
                    "the setting '{other}', which the runner has no equivalent for"
                )))
            }
        }
    }
    if verify == Some(true) && ssl_mode.as_deref() == Some("required") {
        ssl_mode = Some("verify-ca".into());
    }
    Ok((
        MysqlTarget {
            host,
            port,
            user: user.to_string(),
            database,
            ssl_mode,
        },
        table,
    ))
}

/// A JDBC URL for a message: a password in it, if any, replaced by `***`.
fn shown_jdbc(jdbc: &str) -> String {
    match jdbc.split_once(':') {
        Some(("jdbc", rest)) => format!("jdbc:{}", crate::error::redact_url(rest)),
        _ => crate::error::redact_url(jdbc),
    }
}
