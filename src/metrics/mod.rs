//! Prometheus metrics of one run, and the three ways out: an HTTP `/metrics` endpoint served
//! while the run lasts ([`serve`]), a push to a Pushgateway at the end ([`push`]), and a
//! textfile for node_exporter's textfile collector ([`write_textfile`]). All three carry the
//! same text, rendered by [`render`] (the `prometheus` crate's registry and text encoder over
//! the run's live counters, see `exposition.rs`).
//!
//! None of these ever changes a run's outcome or exit code: a failure is a warning.

mod exposition;
mod push;
mod serve;
mod textfile;

use std::time::{Instant, SystemTime};

use crate::config::Config;

pub use exposition::render;
pub use push::{parse_pushgateway_url, push, push_path};
pub use serve::serve;
pub use textfile::{last_success_in, write_textfile};
// The progress reporter lives in `crate::progress`; re-exported so that callers of the
// metrics helpers keep one path.
pub use crate::progress::{clear_progress_line, progress};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Pushgateway `job` label of every push.
pub const PUSH_JOB: &str = "pulsar2mysql";

/// What identifies a run in its metrics: the labels on every series, and when it started.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub job_id: String,
    pub topic: String,
    pub table: String,
    pub started: SystemTime,
    clock: Instant,
}

impl RunMeta {
    /// The labels of a configured run, starting now.
    pub fn new(cfg: &Config) -> RunMeta {
        RunMeta {
            job_id: cfg.job_id.clone(),
            topic: cfg.source.topic.0.clone(),
            table: cfg.sink.table.clone(),
            started: SystemTime::now(),
            clock: Instant::now(),
        }
    }

    /// The run's labels as the exposition writes them (`job_id`, `topic`, `table`, in this
    /// order), to find the run's own series in a textfile.
    fn labels(&self) -> String {
        format!(
            "job_id=\"{}\",topic=\"{}\",table=\"{}\"",
            escape_label(&self.job_id),
            escape_label(&self.topic),
            escape_label(&self.table)
        )
    }
}

/// Escapes a label value as the text format does: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A run's identity for tests: labels that need escaping, a fixed start.
#[cfg(test)]
fn test_meta() -> RunMeta {
    RunMeta {
        job_id: "a\"b\\c".into(),
        topic: "persistent://public/default/t".into(),
        table: "sink_table".into(),
        started: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        clock: Instant::now(),
    }
}
