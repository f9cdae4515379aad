//! The mapping, with the dataflow a real InLong Manager recorded (tests/data/inlong-manager)
//! and variants of it. Here are the helpers every area's tests share; the tests are in
//! `tests/`, one file per area.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::*;
use crate::config::Config;

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
    thread_local! {
        /// The test's documents: each test runs on a thread of its own, and the directory
        /// goes when the thread ends.
        static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
    }
    DIR.with(|dir| {
        let path = dir
            .path()
            .join(format!("{}.json", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, doc.to_string()).unwrap();
        path.display().to_string()
    })
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

mod manager;
mod mapping;
mod options;
mod refusals;
mod selection;
