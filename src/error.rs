//! Typed errors of the library and the one place that decides what is retriable
//! and which exit code a failure maps to.

use std::time::Duration;

/// Everything that can stop a run. Each variant's message is a sentence a person can act on;
/// none of them ever contains a credential (URLs are redacted before they get here).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line, configuration file or environment is wrong.
    #[error("configuration error: {0}")]
    Config(String),

    /// The Pulsar broker cannot be reached or refused an operation.
    #[error("Pulsar source unavailable: {0}")]
    Source(String),

    /// The MySQL server cannot be reached, refused a statement, or the table does not fit.
    #[error("MySQL sink unavailable: {0}")]
    Sink(String),

    /// The table's schema does not fit the mapping (missing column, type we cannot write).
    #[error("schema mismatch: {0}")]
    Schema(String),

    /// A bad record under `--on-bad-record fail`, or more bad records than allowed.
    #[error("{0}")]
    BadRecords(String),

    /// Another run of the same job holds the job lock.
    #[error(
        "another run of job '{0}' is in progress (it holds the job lock); this run did nothing"
    )]
    Locked(String),

    /// A batch's checkpoint was moved by somebody else while this run held the job: a second
    /// runner of the same job (its lock lost, or checkpoints edited by hand).
    #[error("{0}")]
    Fenced(String),

    /// SIGTERM/SIGINT arrived; work committed so far is kept and checkpointed.
    #[error(
        "interrupted: the run was stopped by a signal after committing its last complete batch"
    )]
    Interrupted,
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Documented process exit codes (see README "Exit codes"). Airflow and scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    /// Rows were written, or the range was already done (nothing to do is still a success).
    Success = 0,
    /// Wrong flags, configuration or schema: fix the invocation, retrying will not help.
    Usage = 2,
    /// Pulsar unavailable after the retry budget.
    SourceUnavailable = 3,
    /// MySQL unavailable after the retry budget.
    SinkUnavailable = 4,
    /// Bad records beyond `--max-bad-records` (or any, with `--on-bad-record fail`).
    BadRecords = 5,
    /// Another run holds the job lock.
    Locked = 6,
    /// Stopped by SIGTERM/SIGINT; a re-run continues where it stopped.
    Interrupted = 130,
}

impl Error {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Schema(_) => ExitCode::Usage,
            Error::Source(_) => ExitCode::SourceUnavailable,
            Error::Sink(_) => ExitCode::SinkUnavailable,
            Error::BadRecords(_) => ExitCode::BadRecords,
            Error::Locked(_) | Error::Fenced(_) => ExitCode::Locked,
            Error::Interrupted => ExitCode::Interrupted,
        }
    }

    /// Short machine-readable outcome used in the JSON summary.
    pub fn outcome(&self) -> &'static str {
        match self {
            Error::Config(_) => "config_error",
            Error::Schema(_) => "schema_error",
            Error::Source(_) => "source_unavailable",
            Error::Sink(_) => "sink_unavailable",
            Error::BadRecords(_) => "bad_record_limit",
            Error::Locked(_) | Error::Fenced(_) => "locked",
            Error::Interrupted => "interrupted",
        }
    }
}

/// Exponential backoff with a ceiling, bounded by a total time budget.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    deadline: tokio::time::Instant,
}

impl Backoff {
    /// A backoff that gives up once `budget` has passed since its creation.
    pub fn new(budget: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(200),
            max: Duration::from_secs(5),
            deadline: tokio::time::Instant::now() + budget,
        }
    }

    /// Sleeps before the next attempt; `false` when the budget is spent (give up).
    pub async fn wait(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return false;
        }
        let delay = self.next.min(self.deadline - now);
        tokio::time::sleep(delay).await;
        self.next = (self.next * 2).min(self.max);
        true
    }
}

/// Replaces the password in a URL (`mysql://user:secret@host`) with `***`, so a URL can be
/// logged or put into an error message.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".to_string(),
    }
}

/// Removes every occurrence of `secret` from `text`; used on driver error messages, which may
/// echo connection parameters.
pub fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_in_url() {
        let r = redact_url("mysql://root:hunter2@127.0.0.1:3306/db");
        assert!(!r.contains("hunter2"));
        assert!(r.contains("root:***@127.0.0.1"));
    }

    #[test]
    fn url_without_password_is_kept() {
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306/db"),
            "mysql://root@127.0.0.1:3306/db"
        );
    }

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            ExitCode::Success,
            ExitCode::Usage,
            ExitCode::SourceUnavailable,
            ExitCode::SinkUnavailable,
            ExitCode::BadRecords,
            ExitCode::Locked,
            ExitCode::Interrupted,
        ];
        let mut v: Vec<i32> = codes.iter().map(|c| *c as i32).collect();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), codes.len());
    }
}
