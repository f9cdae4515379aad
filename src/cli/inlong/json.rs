//! The small accessors the dataflow's walk reads JSON with: each names the place a missing or
//! mistyped value was expected, so a malformed document gets a sentence, not a panic, and an
//! unknown setting is refused rather than ignored.

use serde_json::{Map, Value};

use super::{DataflowError, Result};

pub(super) fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| DataflowError::Malformed(format!("{what} is not a JSON object")))
}

pub(super) fn array<'a>(o: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a [Value]> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(DataflowError::Malformed(format!(
            "{key} of {at} is not a list"
        ))),
    }
}

pub(super) fn string<'a>(o: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a str> {
    opt_string(o, key, at)?.ok_or_else(|| DataflowError::Malformed(format!("{at} has no {key}")))
}

pub(super) fn opt_string<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DataflowError::Malformed(format!(
            "{key} of {at} is not a string"
        ))),
    }
}

pub(super) fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// A key the mapping does not know, with a value, could change what InLong Sort does: refuse
/// it rather than ignore it.
pub(super) fn check_keys(o: &Map<String, Value>, at: &str, known: &[&str]) -> Result<()> {
    match o
        .iter()
        .find(|(k, v)| !known.contains(&k.as_str()) && non_empty(Some(v)))
    {
        Some((key, _)) => Err(DataflowError::Unsupported(format!(
            "the setting '{key}' on {at}, which the runner does not know"
        ))),
        None => Ok(()),
    }
}

/// Node properties are Flink connector options; the runner has none of them.
pub(super) fn check_no_properties(node: &Map<String, Value>, at: &str) -> Result<()> {
    match node.get("properties").and_then(Value::as_object) {
        Some(p) if !p.is_empty() => Err(DataflowError::Unsupported(format!(
            "the connector properties {:?} on {at} (Flink connector options; the runner has no \
             equivalent)",
            p.keys().collect::<Vec<_>>()
        ))),
        _ => Ok(()),
    }
}
