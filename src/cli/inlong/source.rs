//! The `pulsarExtract` node: the topic, the Pulsar URLs and authentication, the publish-time
//! boundaries, the record's fields and its `csvFormat`, each read as the runner can honour it
//! or refused.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::json::{array, check_keys, check_no_properties, obj, opt_string, string};
use super::{DataflowError, PulsarAuth, Result};
use crate::cli::Secret;
use crate::config::{parse_ascii_char, TopicName};

/// The class name of Pulsar's token authentication, the only auth plugin mapped (to the
/// runner's token input).
pub(super) const PULSAR_TOKEN_AUTH: &str = "org.apache.pulsar.client.impl.auth.AuthenticationToken";

pub(super) struct SourceNode {
    pub(super) topic: TopicName,
    pub(super) topic_as_given: String,
    pub(super) service_url: String,
    pub(super) admin_url: Option<String>,
    pub(super) auth: Option<PulsarAuth>,
    pub(super) delimiter: u8,
    pub(super) escape: Option<u8>,
    pub(super) null_literal: Option<String>,
    pub(super) ignore_parse_errors: bool,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    /// Field names in record order.
    pub(super) fields: Vec<String>,
}

impl SourceNode {
    pub(super) fn read(node: &Map<String, Value>, at: &str) -> Result<SourceNode> {
        check_keys(
            node,
            at,
            &[
                "type",
                "id",
                "name",
                "fields",
                "properties",
                "topic",
                "adminUrl",
                "serviceUrl",
                "format",
                "scanStartupMode",
                "scanStartupSubName",
                "scanStartupSubStartOffset",
                "primaryKey",
                "clientAuthPluginClassName",
                "clientAuthParams",
                "sourceBoundaryOptions",
                "watermarkField",
            ],
        )?;
        check_no_properties(node, at)?;
        let topic_as_given = string(node, "topic", at)?.to_string();
        let topic: TopicName = topic_as_given
            .parse()
            .map_err(|e| DataflowError::Malformed(format!("{at}: {e}")))?;
        let service_url = string(node, "serviceUrl", at)?.to_string();
        let admin_url = opt_string(node, "adminUrl", at)?
            .filter(|u| !u.trim().is_empty())
            .map(str::to_string);
        if let Some(pk) = opt_string(node, "primaryKey", at)?.filter(|p| !p.trim().is_empty()) {
            return Err(DataflowError::Unsupported(format!(
                "a primary key '{pk}' on {at} (InLong's upsert-pulsar source, keyed messages)"
            )));
        }
        match opt_string(node, "scanStartupMode", at)? {
            None | Some("earliest") => {}
            Some(mode) => {
                return Err(DataflowError::Unsupported(format!(
                    "scanStartupMode '{mode}' on {at} (the runner reads the scheduled window, \
                     from the earliest message on; only 'earliest' matches that)"
                )))
            }
        }
        if let Some(sub) = opt_string(node, "scanStartupSubName", at)?.filter(|s| !s.is_empty()) {
            return Err(DataflowError::Unsupported(format!(
                "a start from subscription '{sub}' on {at} (the runner reads without a \
                 subscription of its own)"
            )));
        }
        let auth = pulsar_auth(node, at)?;
        let (from, to) = boundaries(node, at)?;
        let fields = source_fields(node, at)?;
        let format = node
            .get("format")
            .and_then(Value::as_object)
            .ok_or_else(|| DataflowError::Malformed(format!("{at} has no format")))?;
        let csv = CsvFormat::read(format, &format!("the format of {at}"))?;
        Ok(SourceNode {
            topic,
            topic_as_given,
            service_url,
            admin_url,
            auth,
            delimiter: csv.delimiter,
            escape: csv.escape,
            null_literal: csv.null_literal,
            ignore_parse_errors: csv.ignore_parse_errors,
            from,
            to,
            fields,
        })
    }
}

fn pulsar_auth(node: &Map<String, Value>, at: &str) -> Result<Option<PulsarAuth>> {
    let class = opt_string(node, "clientAuthPluginClassName", at)?.map(str::trim);
    let params = opt_string(node, "clientAuthParams", at)?.map(str::trim);
    // InLong Sort passes the auth on only when both are set; so does the runner.
    let (Some(class), Some(params)) = (
        class.filter(|c| !c.is_empty()),
        params.filter(|p| !p.is_empty()),
    ) else {
        return Ok(None);
    };
    if class != PULSAR_TOKEN_AUTH {
        return Err(DataflowError::Unsupported(format!(
            "Pulsar authentication with '{class}' on {at} (the runner speaks token \
             authentication only, {PULSAR_TOKEN_AUTH})"
        )));
    }
    // Pulsar's AuthenticationToken: "token:<jwt>", "file:<url>", else the whole string is the
    // token.
    if let Some(token) = params.strip_prefix("token:") {
        return Ok(Some(PulsarAuth::Token(Secret(token.to_string()))));
    }
    if let Some(file) = params.strip_prefix("file:") {
        let path = url::Url::parse(params)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .unwrap_or_else(|| PathBuf::from(file));
        return Ok(Some(PulsarAuth::TokenFile(path)));
    }
    Ok(Some(PulsarAuth::Token(Secret(params.to_string()))))
}

/// The publish-time window the Manager fills in when it submits an offline job.
fn boundaries(node: &Map<String, Value>, at: &str) -> Result<(Option<String>, Option<String>)> {
    let Some(options) = node.get("sourceBoundaryOptions").filter(|v| !v.is_null()) else {
        return Ok((None, None));
    };
    let options = options.as_object().ok_or_else(|| {
        DataflowError::Malformed(format!("sourceBoundaryOptions of {at} is not an object"))
    })?;
    let (mut from, mut to) = (None, None);
    for (key, value) in options {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(DataflowError::Malformed(format!(
                    "sourceBoundaryOptions '{key}' of {at} is neither a string nor a number"
                )))
            }
        };
        match key.as_str() {
            "source.start.publish-time" => from = Some(text),
            "source.stop.at-publish-time" => to = Some(text),
            other => {
                return Err(DataflowError::Unsupported(format!(
                    "the source boundary '{other}' on {at} (only publish-time boundaries are \
                     supported)"
                )))
            }
        }
    }
    Ok((from, to))
}

fn source_fields(node: &Map<String, Value>, at: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for f in array(node, "fields", at)? {
        let f = obj(f, &format!("a field of {at}"))?;
        let name = string(f, "name", &format!("a field of {at}"))?;
        match f.get("type").and_then(Value::as_str) {
            Some("field") | None => {}
            Some(other) => {
                return Err(DataflowError::Unsupported(format!(
                    "the {other} '{name}' of {at} (only fields of the record itself are \
                     supported, no metadata field)"
                )))
            }
        }
        if names.iter().any(|n| n == name) {
            return Err(DataflowError::Malformed(format!(
                "{at} has two fields named '{name}'"
            )));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(DataflowError::Malformed(format!("{at} has no fields")));
    }
    Ok(names)
}

struct CsvFormat {
    delimiter: u8,
    escape: Option<u8>,
    null_literal: Option<String>,
    ignore_parse_errors: bool,
}

impl CsvFormat {
    fn read(format: &Map<String, Value>, at: &str) -> Result<CsvFormat> {
        match format.get("type").and_then(Value::as_str) {
            Some("csvFormat") => {}
            Some(other) => {
                return Err(DataflowError::Unsupported(format!(
                    "the record format '{other}' ({at}); the runner reads delimited text \
                     (csvFormat) only"
                )))
            }
            None => return Err(DataflowError::Malformed(format!("{at} has no type"))),
        }
        check_keys(
            format,
            at,
            &[
                "type",
                "fieldDelimiter",
                "disableQuoteCharacter",
                "quoteCharacter",
                "allowComments",
                "ignoreParseErrors",
                "arrayElementDelimiter",
                "escapeCharacter",
                "nullLiteral",
            ],
        )?;
        let flag = |key: &str| format.get(key).and_then(Value::as_bool);
        // Flink's CSV format quotes with '"' unless told not to; the runner never unquotes.
        if flag("disableQuoteCharacter") != Some(true) {
            return Err(DataflowError::Unsupported(format!(
                "quoted CSV fields ({at} has disableQuoteCharacter other than true; the runner \
                 splits on the delimiter and never unquotes)"
            )));
        }
        if flag("allowComments") == Some(true) {
            return Err(DataflowError::Unsupported(format!(
                "comment lines in CSV ({at} has allowComments true)"
            )));
        }
        let char_of = |key: &str| -> Result<Option<u8>> {
            match opt_string(format, key, at)? {
                None | Some("") => Ok(None),
                Some(s) => parse_ascii_char(s, &format!("{key} of {at}"))
                    .map(Some)
                    .map_err(DataflowError::Unsupported),
            }
        };
        let delimiter = char_of("fieldDelimiter")?
            .ok_or_else(|| DataflowError::Malformed(format!("{at} has no fieldDelimiter")))?;
        Ok(CsvFormat {
            delimiter,
            escape: char_of("escapeCharacter")?,
            null_literal: opt_string(format, "nullLiteral", at)?.map(str::to_string),
            ignore_parse_errors: flag("ignoreParseErrors") == Some(true),
        })
    }
}
