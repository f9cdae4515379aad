//! InLong Sort's *dataflow* (the `GroupInfo` JSON InLong Manager hands its Flink job) as the
//! runner's own options, so a group defined once in InLong's dashboard syncs with nothing
//! written by hand and no second source of truth to drift.
//!
//! Only what the runner can honour exactly is mapped: one `pulsarExtract` node with a
//! `csvFormat`, one `mysqlLoad` node, a `baseRelation` between them and plain field-to-column
//! relations. Anything else (another node type, a transform, a filter, another format, a
//! relation that is not field -> column, ...) is refused with a sentence naming it, never
//! guessed. A value also given as an option must agree with the dataflow: a disagreement is
//! an error naming both places, never a silent winner.
//!
//! This file walks the document (the stream, its nodes and relations); the `pulsarExtract`
//! node is read in `source.rs`, the `mysqlLoad` node in `sink.rs`, both with the JSON
//! accessors of `json.rs`, and `apply.rs` merges the result into the run's options.

use std::io::Read;
use std::path::PathBuf;

use serde_json::{Map, Value};

use self::json::{array, check_keys, check_no_properties, non_empty, obj, opt_string, string};
use self::sink::{map_columns, mysql_target, select_sink};
use self::source::SourceNode;
use super::{RunArgs, Secret, SecretUrl};
use crate::config::{parse_ascii_char, BadRecordPolicy, TopicName, WriteMode};

/// Why a dataflow cannot drive a run. Every message is a sentence a person can act on, and
/// none carries a secret (passwords and tokens are compared, never shown).
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    /// The document could not be read.
    #[error("cannot read the InLong dataflow {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The document is not JSON.
    #[error("the InLong dataflow {path} is not JSON ({message}); give InLong Sort's GroupInfo document (the `dataflow` entry of the stream's extList)")]
    NotJson { path: String, message: String },
    /// The document is JSON but not a dataflow the runner understands.
    #[error("the InLong dataflow is malformed: {0}")]
    Malformed(String),
    /// Something the runner cannot do exactly as InLong Sort would.
    #[error("the InLong dataflow asks for {0}, which pulsar2mysql cannot honour exactly; it refuses rather than guess")]
    Unsupported(String),
    /// Several streams or sinks and nothing says which one this run is.
    #[error("{0}")]
    Ambiguous(String),
    /// An option and the dataflow give different values.
    #[error("{option} {given} disagrees with the InLong dataflow's {place} {value}; give it in one place only (or the same value in both)")]
    Conflict {
        option: String,
        given: String,
        place: String,
        value: String,
    },
    /// An option and the dataflow give different secrets (neither is shown).
    #[error("{option} disagrees with the InLong dataflow's {place} (values not shown); give it in one place only (or the same value in both)")]
    SecretConflict { option: String, place: String },
}

impl From<DataflowError> for crate::error::Error {
    fn from(e: DataflowError) -> Self {
        crate::error::Error::Config(e.to_string())
    }
}

type Result<T, E = DataflowError> = std::result::Result<T, E>;

/// Where the MySQL sink is, from the `mysqlLoad` node's JDBC URL and username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// The JDBC URL's TLS setting (`sslMode` / `useSSL`) in the runner's words.
    pub ssl_mode: Option<String>,
}

impl MysqlTarget {
    /// The runner's MySQL URL (no password: that travels as a secret input).
    pub fn url(&self) -> String {
        let user: String = url::form_urlencoded::byte_serialize(self.user.as_bytes()).collect();
        format!(
            "mysql://{user}@{}:{}/{}",
            self.host, self.port, self.database
        )
    }
}

/// How the run authenticates to Pulsar, from `clientAuthPluginClassName` / `clientAuthParams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PulsarAuth {
    Token(Secret),
    TokenFile(PathBuf),
}

/// The run options one stream and sink of a dataflow stand for.
#[derive(Debug, Clone)]
pub struct DataflowOptions {
    pub stream_id: String,
    pub sink_id: String,
    pub topic: TopicName,
    /// As the node wrote it (e.g. `public/default/t`), for messages.
    pub topic_as_given: String,
    pub pulsar_url: String,
    pub pulsar_admin_url: Option<String>,
    pub pulsar_auth: Option<PulsarAuth>,
    pub delimiter: u8,
    pub escape: Option<u8>,
    pub null_literal: Option<String>,
    /// Flink skips records that do not parse when `ignoreParseErrors` is set.
    pub ignore_parse_errors: bool,
    /// `source.start.publish-time` / `source.stop.at-publish-time`, when the Manager filled
    /// the boundaries in.
    pub from: Option<String>,
    pub to: Option<String>,
    pub mysql: MysqlTarget,
    pub mysql_password: Option<Secret>,
    pub table: String,
    /// One entry per source field, in source field order; `None` skips the field.
    pub columns: Vec<Option<String>>,
    /// InLong Sort's JDBC sink upserts when the sink declares a primary key, else inserts.
    pub mode: WriteMode,
}

impl DataflowOptions {
    /// `--columns` as the runner reads it: `id,name`, `-` for a skipped field.
    pub fn columns_option(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.as_deref().unwrap_or("-"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Reads a dataflow document from a file, or from stdin for `-`.
pub fn read_dataflow(path: &str) -> Result<String> {
    let read = if path == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|source| DataflowError::Read {
        path: shown_path(path),
        source,
    })
}

fn shown_path(path: &str) -> String {
    if path == "-" {
        "from stdin".into()
    } else {
        path.to_string()
    }
}

/// Maps one stream/sink pair of a dataflow to the runner's options. `stream` and `sink` select
/// by `streamId` and by the `mysqlLoad` node's `id`; they are needed only when the document has
/// several streams, or the stream several MySQL sinks.
pub fn parse_dataflow(
    text: &str,
    path: &str,
    stream: Option<&str>,
    sink: Option<&str>,
) -> Result<DataflowOptions> {
    let doc: Value = serde_json::from_str(text).map_err(|e| DataflowError::NotJson {
        path: shown_path(path),
        message: e.to_string(),
    })?;
    let group = obj(&doc, "the document")?;
    if !group.contains_key("streams") {
        return Err(DataflowError::Malformed(
            "the document has no `streams`: give InLong Sort's GroupInfo, which is the \
             `keyValue` of the `dataflow` entry in a stream's extList of the Manager's \
             stream/listAll answer (not the answer itself)"
                .into(),
        ));
    }
    let streams = array(group, "streams", "the document")?;
    let stream = select_stream(streams, stream)?;
    let stream_id = string(stream, "streamId", "a stream")?.to_string();
    let at = format!("stream '{stream_id}'");
    let nodes = array(stream, "nodes", &at)?;
    let mut extracts = Vec::new();
    let mut loads = Vec::new();
    for node in nodes {
        let node = obj(node, &format!("a node of {at}"))?;
        let id = string(node, "id", &format!("a node of {at}"))?;
        match node.get("type").and_then(Value::as_str) {
            Some("pulsarExtract") => extracts.push(node),
            Some("mysqlLoad") => loads.push(node),
            Some(other) => {
                return Err(DataflowError::Unsupported(format!(
                    "a node of type '{other}' (node '{id}' of {at}); only one pulsarExtract \
                     node feeding mysqlLoad nodes is supported (no transform)"
                )))
            }
            None => {
                return Err(DataflowError::Malformed(format!(
                    "node '{id}' of {at} has no type"
                )))
            }
        }
    }
    let extract = match extracts.as_slice() {
        [one] => *one,
        [] => {
            return Err(DataflowError::Unsupported(format!(
                "{at} without a pulsarExtract node (the runner reads Pulsar only)"
            )))
        }
        _ => {
            return Err(DataflowError::Unsupported(format!(
                "{} pulsarExtract nodes in {at} (the runner reads one topic per run)",
                extracts.len()
            )))
        }
    };
    let load = select_sink(&loads, sink, &at)?;
    let extract_id = string(extract, "id", &at)?;
    let sink_id = string(load, "id", &at)?.to_string();
    check_relations(stream, &at, extract_id, &sink_id)?;

    let source = SourceNode::read(extract, &format!("pulsarExtract node '{extract_id}'"))?;
    let load_at = format!("mysqlLoad node '{sink_id}'");
    check_keys(
        load,
        &load_at,
        &[
            "type",
            "id",
            "name",
            "fields",
            "fieldRelations",
            "filters",
            "filterStrategy",
            "properties",
            "url",
            "username",
            "password",
            "tableName",
            "primaryKey",
            "sinkParallelism",
        ],
    )?;
    if non_empty(load.get("filters")) {
        return Err(DataflowError::Unsupported(format!(
            "a filter on {load_at} (the runner writes every record of the range)"
        )));
    }
    check_no_properties(load, &load_at)?;
    let columns = map_columns(&source.fields, load, &load_at, extract_id)?;
    let (mysql, table) = mysql_target(load, &load_at)?;
    let mysql_password = opt_string(load, "password", &load_at)?
        .filter(|p| !p.is_empty())
        .map(|p| Secret(p.to_string()));
    let mode = match opt_string(load, "primaryKey", &load_at)? {
        Some(pk) if !pk.trim().is_empty() => WriteMode::Upsert,
        _ => WriteMode::Insert,
    };
    Ok(DataflowOptions {
        stream_id,
        sink_id,
        topic: source.topic,
        topic_as_given: source.topic_as_given,
        pulsar_url: source.service_url,
        pulsar_admin_url: source.admin_url,
        pulsar_auth: source.auth,
        delimiter: source.delimiter,
        escape: source.escape,
        null_literal: source.null_literal,
        ignore_parse_errors: source.ignore_parse_errors,
        from: source.from,
        to: source.to,
        mysql,
        mysql_password,
        table,
        columns,
        mode,
    })
}

// --- selecting the stream ----------------------------------------------------------------------

fn select_stream<'a>(streams: &'a [Value], wanted: Option<&str>) -> Result<&'a Map<String, Value>> {
    let mut all = Vec::new();
    for s in streams {
        let s = obj(s, "a stream")?;
        all.push((string(s, "streamId", "a stream")?, s));
    }
    let ids = || {
        all.iter()
            .map(|(id, _)| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (wanted.filter(|w| !w.is_empty()), all.as_slice()) {
        (_, []) => Err(DataflowError::Malformed(
            "the document has no stream".into(),
        )),
        (None, [(_, one)]) => Ok(one),
        (None, _) => Err(DataflowError::Ambiguous(format!(
            "the InLong dataflow holds {} streams ({}); say which one this run syncs with \
             --inlong-stream (PULSAR2MYSQL_INLONG_STREAM)",
            all.len(),
            ids()
        ))),
        (Some(w), _) => all
            .iter()
            .find(|(id, _)| *id == w)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                DataflowError::Ambiguous(format!(
                    "--inlong-stream '{w}' is not in the InLong dataflow, whose streams are {}",
                    ids()
                ))
            }),
    }
}

/// Every relation must be a plain `baseRelation` (a join or a union changes the data), and one
/// of them must lead from the source to the chosen sink.
fn check_relations(stream: &Map<String, Value>, at: &str, extract: &str, sink: &str) -> Result<()> {
    let relations = array(stream, "relations", at)?;
    let mut found = false;
    for r in relations {
        let r = obj(r, &format!("a relation of {at}"))?;
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "baseRelation" {
            return Err(DataflowError::Unsupported(format!(
                "a relation of type '{kind}' in {at} (only baseRelation, one source to its \
                 sinks, is supported: no join or union)"
            )));
        }
        let names = |key: &str| -> Result<Vec<&str>> {
            array(r, key, &format!("a relation of {at}"))?
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| {
                        DataflowError::Malformed(format!(
                            "a relation of {at} has a non-string in {key}"
                        ))
                    })
                })
                .collect()
        };
        let (inputs, outputs) = (names("inputs")?, names("outputs")?);
        if inputs.len() != 1 || (inputs[0] != extract) {
            return Err(DataflowError::Unsupported(format!(
                "a relation from {inputs:?} in {at} (only relations from the one \
                 pulsarExtract node '{extract}' are supported)"
            )));
        }
        found |= outputs.contains(&sink);
    }
    if !found {
        return Err(DataflowError::Malformed(format!(
            "no relation in {at} leads from '{extract}' to the sink '{sink}'"
        )));
    }
    Ok(())
}

mod apply;
mod json;
mod sink;
mod source;

#[cfg(test)]
mod tests;
