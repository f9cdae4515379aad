//! One validated [`Config`] built from the command line, `PULSAR2MYSQL_*` environment variables
//! and an optional TOML file, plus the small value types (delimiter, bounds, topic) that are
//! checked while arguments are parsed so bad input fails before any I/O.
//!
//! Each side of a run has its own file, so a setting is found next to the others it interacts
//! with: the range bounds (`range.rs`), the Pulsar source (`pulsar.rs`), the records
//! (`records.rs`), the MySQL sink (`mysql.rs`). Here: the whole [`Config`] and the checks that
//! need more than one side. Every public name stays at `crate::config::*`.

mod mysql;
mod pulsar;
mod range;
mod records;

pub use mysql::{MysqlTls, SinkConfig, SslMode, WriteMode, WriteStrategy, DEFAULT_WRITE_STREAMS};
pub use pulsar::{SourceConfig, TopicName};
pub use range::{id_for_partition, EndBound, StartBound};
pub use records::{parse_ascii_char, BadRecordPolicy, Delimiter, RecordsConfig};

use crate::error::{Error, Result};

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Stable name of this job: keys the checkpoints and the job lock.
    pub job_id: String,
    pub source: SourceConfig,
    pub records: RecordsConfig,
    pub sink: SinkConfig,
    /// Read and parse, write nothing (no checkpoint either).
    pub dry_run: bool,
    /// Forget this range's checkpoints and read it again from its start.
    pub reprocess: bool,
}

/// Longest range key stored as it is (`p2m_checkpoint.range_key` is a VARCHAR(191)).
pub(crate) const RANGE_KEY_MAX: usize = 191;

impl Config {
    /// The default job id: stable for a topic and table, so re-runs find their checkpoints.
    pub fn default_job_id(topic: &TopicName, table: &str) -> String {
        format!("{}->{}", topic.0, table)
    }

    /// Identifies a range as given (not as resolved), so a re-run of the same window finds its
    /// checkpoints, while a different window starts fresh. A key longer than the checkpoint
    /// table's column (message-id bounds for many partitions) is stored as its SHA-256.
    pub fn range_key(&self) -> String {
        use sha2::Digest;
        let key = format!("from={};to={}", self.source.from, self.source.to);
        if key.len() <= RANGE_KEY_MAX {
            return key;
        }
        let digest = sha2::Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Cross-field checks that a single flag's parser cannot do.
    pub fn validate(&self) -> Result<()> {
        if let (StartBound::PublishTime(a), EndBound::PublishTime(b)) =
            (&self.source.from, &self.source.to)
        {
            if a >= b {
                return Err(Error::Config(format!(
                    "the window is empty or reversed: --from {a} must be before --to {b}"
                )));
            }
        }
        if self.sink.batch_rows == Some(0) || self.sink.writers == Some(0) {
            return Err(Error::Config(
                "--batch-rows and --writers must be at least 1".into(),
            ));
        }
        if self.sink.strategy == WriteStrategy::LoadData && self.sink.mode == WriteMode::Upsert {
            return Err(Error::Config(
                "--write-strategy load-data cannot upsert (LOAD DATA can only skip or replace \
                 whole rows); use --write-strategy insert or auto with --mode upsert"
                    .into(),
            ));
        }
        if self.records.escape == Some(self.records.delimiter) {
            return Err(Error::Config(
                "--escape and --delimiter must be different characters".into(),
            ));
        }
        if let StartBound::PublishTime(_) = self.source.from {
            // The admin API finds where the window starts; it gets the token, if any.
            let admin = self.source.admin_base_url().map_err(Error::Config)?;
            if self.source.auth_token.is_some() && !self.source.token_may_go_to(&admin) {
                return Err(Error::Config(format!(
                    "--from <time> asks the Pulsar admin API at {} where the window starts, and \
                     that URL is plain http: the Pulsar token would travel in clear text. Give an \
                     https admin URL (--pulsar-admin-url https://<host>:8443, the default for a \
                     pulsar+ssl:// --pulsar-url), or allow sending the token over http with \
                     --pulsar-admin-allow-insecure-token (PULSAR2MYSQL_PULSAR_ADMIN_ALLOW_INSECURE_TOKEN)",
                    crate::error::redact_url(admin.as_str())
                )));
            }
        }
        if let Some(partitions) = &self.source.partitions {
            let mut seen = std::collections::BTreeSet::new();
            if let Some(twice) = partitions.iter().find(|p| !seen.insert(**p)) {
                return Err(Error::Config(format!(
                    "--partitions names partition {twice} twice; each partition may be read \
                     by one reader only (two would write every record twice)"
                )));
            }
        }
        if self.job_id.is_empty() || self.job_id.len() > 191 {
            return Err(Error::Config(
                "--job-id must be 1 to 191 characters long".into(),
            ));
        }
        Ok(())
    }
}
