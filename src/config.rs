//! One validated [`Config`] built from the command line, `PULSAR2MYSQL_*` environment variables
//! and an optional TOML file, plus the small value types (delimiter, bounds, topic) that are
//! checked while arguments are parsed so bad input fails before any I/O.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::source::Position;

/// The field separator of a record: one ASCII byte. Written as the character itself (`|`, `,`),
/// an escape (`\t`), or as InLong stores it: the decimal ASCII code (`"124"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(pub u8);

impl FromStr for Delimiter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        parse_ascii_char(s, "delimiter").map(Delimiter)
    }
}

/// Parses one ASCII character given literally, as `\t`, or as a decimal code of 2-3 digits.
pub fn parse_ascii_char(s: &str, what: &str) -> std::result::Result<u8, String> {
    match s {
        "\\t" | "tab" => return Ok(b'\t'),
        "\\0" => return Ok(0),
        _ => {}
    }
    if s.len() == 1 && s.is_ascii() {
        return Ok(s.as_bytes()[0]);
    }
    if (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u16>() {
            Ok(code) if code < 128 => Ok(code as u8),
            _ => Err(format!(
                "{what} '{s}' is not an ASCII code (0-127); give a single character like '|' or a code like '124'"
            )),
        };
    }
    Err(format!(
        "{what} '{s}' must be a single ASCII character (e.g. '|'), '\\t', or a decimal ASCII code (e.g. '124')"
    ))
}

/// A topic in full form. Short forms are expanded the way Pulsar does:
/// `test` -> `persistent://public/default/test`, `t/ns/x` -> `persistent://t/ns/x`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicName(pub String);

impl FromStr for TopicName {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("topic is empty".into());
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            if scheme != "persistent" && scheme != "non-persistent" {
                return Err(format!(
                    "topic '{s}': the domain must be persistent:// or non-persistent://"
                ));
            }
            if rest.split('/').count() != 3 || rest.split('/').any(str::is_empty) {
                return Err(format!(
                    "topic '{s}': expected {scheme}://tenant/namespace/topic"
                ));
            }
            return Ok(TopicName(s.to_string()));
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [t] if !t.is_empty() => Ok(TopicName(format!("persistent://public/default/{t}"))),
            [tenant, ns, t] if parts.iter().all(|p| !p.is_empty()) => {
                Ok(TopicName(format!("persistent://{tenant}/{ns}/{t}")))
            }
            _ => Err(format!(
                "topic '{s}': use 'name', 'tenant/namespace/name' or 'persistent://tenant/namespace/name'"
            )),
        }
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where reading starts in each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartBound {
    /// The first retained message.
    Earliest,
    /// The first message published at or after this instant (epoch ms), inclusive.
    PublishTime(i64),
    /// Strictly after the given message id (per partition index; `None` key = every partition).
    AfterId(Vec<(Option<u32>, Position)>),
}

/// Where reading stops in each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndBound {
    /// The last message that exists when the run starts (taken once per partition).
    Latest,
    /// Before the first message published at or after this instant (epoch ms), exclusive.
    PublishTime(i64),
    /// At the given message id, inclusive (per partition index; `None` key = every partition).
    AtId(Vec<(Option<u32>, Position)>),
}

/// Smallest integer accepted as epoch milliseconds: anything below 1e11 (1973-03-03 in ms)
/// can only be epoch seconds in practice, which the InLong chain is known to mix up.
const MIN_EPOCH_MS: i64 = 100_000_000_000;

fn parse_instant(s: &str, flag: &str) -> std::result::Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        if n != 0 && n.abs() < MIN_EPOCH_MS {
            return Err(format!(
                "{flag} {s} looks like epoch seconds; pulsar2mysql takes epoch milliseconds \
                 (use {}) or an RFC 3339 timestamp",
                n.saturating_mul(1000)
            ));
        }
        return Ok(n);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|_| {
            format!(
                "{flag} '{s}' is not a bound: use epoch milliseconds, an RFC 3339 timestamp \
                 (2024-05-01T10:00:00Z), or {}",
                if flag == "--from" {
                    "'earliest' or 'id:LEDGER:ENTRY'"
                } else {
                    "'latest' or 'id:LEDGER:ENTRY'"
                }
            )
        })
}

fn parse_ids(s: &str, flag: &str) -> std::result::Result<Vec<(Option<u32>, Position)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (partition, id) =
            match part.split_once('=') {
                Some((p, id)) => (
                    Some(p.trim().parse::<u32>().map_err(|_| {
                        format!("{flag}: '{p}' in '{part}' is not a partition index")
                    })?),
                    id,
                ),
                None => (None, part),
            };
        let pos = id
            .trim()
            .parse::<Position>()
            .map_err(|e| format!("{flag}: {e}"))?;
        out.push((partition, pos));
    }
    if out.len() > 1 && out.iter().any(|(p, _)| p.is_none()) {
        return Err(format!(
            "{flag}: with several ids, prefix each with its partition: id:0=L:E,1=L:E"
        ));
    }
    Ok(out)
}

impl FromStr for StartBound {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "earliest" | "" => Ok(StartBound::Earliest),
            s if s.starts_with("id:") => parse_ids(&s[3..], "--from").map(StartBound::AfterId),
            s => parse_instant(s, "--from").map(StartBound::PublishTime),
        }
    }
}

impl FromStr for EndBound {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "latest" | "" => Ok(EndBound::Latest),
            s if s.starts_with("id:") => parse_ids(&s[3..], "--to").map(EndBound::AtId),
            s => parse_instant(s, "--to").map(EndBound::PublishTime),
        }
    }
}

fn fmt_ids(ids: &[(Option<u32>, Position)]) -> String {
    ids.iter()
        .map(|(p, pos)| match p {
            Some(p) => format!("{p}={pos}"),
            None => pos.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for StartBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartBound::Earliest => f.write_str("earliest"),
            StartBound::PublishTime(ms) => write!(f, "{ms}"),
            StartBound::AfterId(ids) => write!(f, "id:{}", fmt_ids(ids)),
        }
    }
}

impl fmt::Display for EndBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndBound::Latest => f.write_str("latest"),
            EndBound::PublishTime(ms) => write!(f, "{ms}"),
            EndBound::AtId(ids) => write!(f, "id:{}", fmt_ids(ids)),
        }
    }
}

/// The id bound that applies to one partition, if any.
pub fn id_for_partition(
    ids: &[(Option<u32>, Position)],
    partition: Option<u32>,
) -> Option<Position> {
    ids.iter()
        .find(|(p, _)| p.is_none() || *p == partition)
        .map(|(_, pos)| *pos)
}

/// How rows are written when a key already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Plain INSERT: a duplicate key fails the run.
    Insert,
    /// INSERT ... ON DUPLICATE KEY UPDATE: the record replaces the existing row's mapped columns.
    Upsert,
    /// Existing keys are kept and counted as duplicates; conversion errors still fail.
    IgnoreDuplicates,
}

/// How rows travel to the server. Both commit rows, dead letters and the checkpoint in one
/// transaction; they differ only in speed and in which write modes they support.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum WriteStrategy {
    /// LOAD DATA when the mode and the server allow it, multi-row INSERT otherwise.
    #[default]
    Auto,
    /// Multi-row INSERT statements (every mode, any server).
    Insert,
    /// LOAD DATA LOCAL INFILE streamed from memory: the fastest path (see BENCHMARKS.md);
    /// modes insert and ignore-duplicates; needs `local_infile=ON` on the server.
    LoadData,
}

/// What to do with a record that cannot become a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadRecordPolicy {
    /// Stop the run at the first bad record (nothing of its batch is committed).
    Fail,
    /// Count it, report it, and go on.
    Skip,
    /// Store it in the dead-letter table in the same transaction as the good rows.
    DeadLetter,
}

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

/// The Pulsar side.
#[derive(Clone)]
pub struct SourceConfig {
    pub service_url: String,
    /// Admin REST API, used to find where a publish-time window starts without scanning the
    /// partition from its beginning. `None`: derived from the service URL, see
    /// [`SourceConfig::admin_base_url`].
    pub admin_url: Option<String>,
    /// Send the token to an `http://` admin URL (in clear text). Without it, a token and a
    /// publish-time `from` with a plain-http admin URL are a configuration error.
    pub admin_allow_insecure_token: bool,
    pub topic: TopicName,
    /// Restrict the run to these partition indexes (partitioned topics only).
    pub partitions: Option<Vec<u32>>,
    pub from: StartBound,
    pub to: EndBound,
    /// JWT for token authentication; never logged.
    pub auth_token: Option<String>,
    /// PEM bundle of CA certificates to trust for `pulsar+ssl://`.
    pub tls_ca_file: Option<String>,
    /// When the end bound is `(ledger, -1)` the broker cannot tell where the data ends; stop after
    /// this long without a message.
    pub idle_timeout: Duration,
    /// Total time allowed for reconnecting to the broker before the run fails.
    pub retry_budget: Duration,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("service_url", &crate::error::redact_url(&self.service_url))
            .field(
                "admin_url",
                &self.admin_url.as_deref().map(crate::error::redact_url),
            )
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("from", &self.from)
            .field("to", &self.to)
            .field(
                "admin_allow_insecure_token",
                &self.admin_allow_insecure_token,
            )
            .field("auth_token", &self.auth_token.as_ref().map(|_| "***"))
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

impl SourceConfig {
    /// The admin REST API's base URL: `--pulsar-admin-url`, or the service URL's host with
    /// the broker's default web ports: `https://<host>:8443` for `pulsar+ssl://`,
    /// `http://<host>:8080` for `pulsar://`.
    pub fn admin_base_url(&self) -> std::result::Result<url::Url, String> {
        let raw = match &self.admin_url {
            Some(u) => u.clone(),
            None => {
                let cannot = |why: &str| {
                    format!(
                        "cannot derive the Pulsar admin URL from --pulsar-url {} ({why}); give \
                         --pulsar-admin-url",
                        crate::error::redact_url(&self.service_url)
                    )
                };
                let service =
                    url::Url::parse(&self.service_url).map_err(|e| cannot(&e.to_string()))?;
                let host = service.host_str().ok_or_else(|| cannot("no host"))?;
                match service.scheme() {
                    "pulsar+ssl" => format!("https://{host}:8443"),
                    _ => format!("http://{host}:8080"),
                }
            }
        };
        let bad = |why: &str| {
            format!(
                "--pulsar-admin-url {}: {why}",
                crate::error::redact_url(&raw)
            )
        };
        let url = url::Url::parse(&raw).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must start with http:// or https://"));
        }
        if url.host_str().is_none() {
            return Err(bad("the URL has no host"));
        }
        Ok(url)
    }

    /// Whether the token may be sent to `url`: over https, or over http when the user allowed
    /// it explicitly.
    pub fn token_may_go_to(&self, url: &url::Url) -> bool {
        url.scheme() == "https" || self.admin_allow_insecure_token
    }
}

/// How payload bytes become fields.
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    pub delimiter: u8,
    pub escape: Option<u8>,
    /// A field equal to this string becomes SQL NULL.
    pub null_literal: Option<String>,
    /// Explicit field -> column mapping; `None` maps fields to the table's columns in order.
    /// An entry of `None` skips that field.
    pub columns: Option<Vec<Option<String>>>,
    pub on_bad_record: BadRecordPolicy,
    /// Most bad records tolerated before the run fails (skip and dead-letter policies).
    pub max_bad_records: u64,
}

/// How the MySQL connections use TLS, the same for both drivers (sqlx's modes and meanings).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disabled,
    /// TLS when the server offers it, certificate not checked; plain otherwise.
    #[default]
    Preferred,
    /// TLS or nothing; the certificate is not checked.
    Required,
    /// TLS with a certificate signed by the CA (`--mysql-ssl-ca`, else the system's roots).
    VerifyCa,
    /// As verify-ca, and the certificate must name the host of the URL.
    VerifyIdentity,
}

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "disabled" => Ok(SslMode::Disabled),
            "preferred" => Ok(SslMode::Preferred),
            "required" => Ok(SslMode::Required),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-identity" => Ok(SslMode::VerifyIdentity),
            other => Err(format!(
                "unknown ssl mode '{other}' (disabled, preferred, required, verify-ca, \
                 verify-identity)"
            )),
        }
    }
}

/// TLS settings of the MySQL connections: the mode, the CA to trust, a client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlTls {
    pub mode: SslMode,
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// Longest range key stored as it is (`p2m_checkpoint.range_key` is a VARCHAR(191)).
const RANGE_KEY_MAX: usize = 191;

/// Write streams when partitions are written in parallel: `--writers`' default where the
/// server does not make parallel LOAD DATA streams take turns.
pub const PARALLEL_WRITE_STREAMS: usize = 4;

/// The MySQL side.
#[derive(Clone)]
pub struct SinkConfig {
    /// Connection URL; the password may come separately (`password`).
    pub url: String,
    pub password: Option<String>,
    pub table: String,
    pub mode: WriteMode,
    /// INSERT statements or LOAD DATA (resolved against the server at connect time).
    pub strategy: WriteStrategy,
    /// Most rows per transaction; `None` picks [`SinkConfig::batch_rows_for`]'s default.
    pub batch_rows: Option<usize>,
    /// Most bytes of SQL per INSERT statement (also capped by the server's max_allowed_packet).
    pub batch_bytes: usize,
    /// Write streams, one connection each (partitions are spread over them); `None` lets the
    /// server's AUTO-INC lock mode choose ([`SinkConfig::write_streams`]).
    pub writers: Option<usize>,
    /// Total time allowed for retrying a batch before the run fails.
    pub retry_budget: Duration,
    /// Longest wait for one answer from MySQL: a silent network partition is noticed after it.
    pub io_timeout: Duration,
    /// TLS for every MySQL connection, whichever driver opens it.
    pub tls: MysqlTls,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("url", &crate::error::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("table", &self.table)
            .field("mode", &self.mode)
            .field("strategy", &self.strategy)
            .field("batch_rows", &self.batch_rows)
            .field("batch_bytes", &self.batch_bytes)
            .field("writers", &self.writers)
            .field("tls", &self.tls)
            .finish()
    }
}

impl SinkConfig {
    /// Rows per transaction when `concurrent` partitions are written at once: what was asked
    /// for, else 100,000 shared among them (at least 20,000). Bulk inserts into one table
    /// take its AUTO-INC lock per statement (`innodb_autoinc_lock_mode=1`, MariaDB's
    /// default), so concurrent partitions interleave better with shorter transactions; one
    /// partition gets the largest (see BENCHMARKS.md).
    /// The most write streams a run may use: the connection pools' size.
    pub fn max_writers(&self) -> usize {
        self.writers.unwrap_or(PARALLEL_WRITE_STREAMS).max(1)
    }

    /// How many write streams a run of `partitions` partitions uses: `--writers`, else
    /// [`PARALLEL_WRITE_STREAMS`], never more than the partitions. One stream fed by every
    /// partition was measured against four under both `innodb_autoinc_lock_mode` 1 and 2
    /// (benches/autoinc.sh, BENCHMARKS.md): four were as fast or faster under both, once the
    /// first batches no longer deadlocked ([`crate::sink::checkpoint::reserve`]).
    pub fn write_streams(&self, partitions: usize) -> usize {
        self.writers
            .unwrap_or(PARALLEL_WRITE_STREAMS)
            .min(partitions)
            .max(1)
    }

    /// Most bytes of a LOAD DATA batch while `readers` partitions fill a batch each: all of
    /// `--batch-bytes` up to four readers, then four times it shared among them (at least
    /// 1 MiB each), so memory does not grow with the partitions read at once.
    pub fn batch_bytes_for(&self, readers: usize) -> usize {
        if readers <= 4 {
            self.batch_bytes
        } else {
            (self.batch_bytes * 4 / readers).max(self.batch_bytes.min(1 << 20))
        }
    }

    pub fn batch_rows_for(&self, concurrent: usize) -> usize {
        self.batch_rows
            .unwrap_or_else(|| (100_000 / concurrent.max(1)).max(20_000))
    }

    /// The URL with the password replaced, for logs and the summary.
    pub fn redacted_url(&self) -> String {
        crate::error::redact_url(&self.url)
    }
}

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
        if self.job_id.is_empty() || self.job_id.len() > 191 {
            return Err(Error::Config(
                "--job-id must be 1 to 191 characters long".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_rows_are_shared_among_concurrent_partitions_unless_given() {
        let mut sink = SinkConfig {
            url: "mysql://root@localhost/db".into(),
            password: None,
            table: "t".into(),
            mode: WriteMode::Insert,
            strategy: WriteStrategy::Auto,
            batch_rows: None,
            batch_bytes: 1 << 22,
            writers: None,
            retry_budget: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            tls: Default::default(),
        };
        assert_eq!(sink.batch_rows_for(1), 100_000);
        assert_eq!(sink.batch_rows_for(4), 25_000);
        assert_eq!(sink.batch_rows_for(16), 20_000);
        assert_eq!(sink.batch_bytes_for(4), 4 << 20);
        assert_eq!(sink.batch_bytes_for(8), 2 << 20);
        assert_eq!(sink.batch_bytes_for(16), 1 << 20);
        assert_eq!(sink.batch_bytes_for(64), 1 << 20);
        sink.batch_rows = Some(7);
        assert_eq!(sink.batch_rows_for(4), 7);

        // Write streams: four, never more than the partitions, or --writers.
        assert_eq!(sink.write_streams(16), PARALLEL_WRITE_STREAMS);
        assert_eq!(sink.write_streams(2), 2);
        sink.writers = Some(1);
        assert_eq!(sink.write_streams(16), 1);
        sink.writers = Some(3);
        assert_eq!(sink.write_streams(1), 1);
    }

    #[test]
    fn delimiter_forms() {
        assert_eq!("|".parse::<Delimiter>().unwrap().0, b'|');
        assert_eq!("124".parse::<Delimiter>().unwrap().0, b'|');
        assert_eq!("\\t".parse::<Delimiter>().unwrap().0, b'\t');
        assert_eq!("44".parse::<Delimiter>().unwrap().0, b',');
        assert!("||".parse::<Delimiter>().is_err());
        assert!("300".parse::<Delimiter>().is_err());
        assert!("é".parse::<Delimiter>().is_err());
    }

    #[test]
    fn topic_short_and_full_forms() {
        let t = |s: &str| s.parse::<TopicName>().unwrap().0;
        assert_eq!(t("test"), "persistent://public/default/test");
        assert_eq!(t("public/default/test"), "persistent://public/default/test");
        assert_eq!(t("persistent://a/b/c"), "persistent://a/b/c");
        assert!("a/b".parse::<TopicName>().is_err());
        assert!("http://a/b/c".parse::<TopicName>().is_err());
    }

    #[test]
    fn epoch_seconds_are_refused_with_a_hint() {
        let err = "1732500000".parse::<StartBound>().unwrap_err();
        assert!(err.contains("epoch seconds"), "{err}");
        assert!(err.contains("1732500000000"), "{err}");
        assert_eq!(
            "1732500000000".parse::<StartBound>().unwrap(),
            StartBound::PublishTime(1_732_500_000_000)
        );
    }

    #[test]
    fn rfc3339_bounds() {
        assert_eq!(
            "2024-11-25T00:00:00Z".parse::<EndBound>().unwrap(),
            EndBound::PublishTime(1_732_492_800_000)
        );
        assert_eq!(
            "2024-11-25T08:00:00+08:00".parse::<EndBound>().unwrap(),
            EndBound::PublishTime(1_732_492_800_000)
        );
        assert!("yesterday".parse::<EndBound>().is_err());
    }

    #[test]
    fn a_range_key_too_long_for_its_column_is_stored_as_a_hash() {
        let cfg = |from: String| {
            crate::cli::RunArgs {
                topic: Some("t".into()),
                table: Some("t".into()),
                from: Some(from),
                ..Default::default()
            }
            .into_config()
            .unwrap()
        };
        assert_eq!(cfg("id:12:5".into()).range_key(), "from=id:12:5;to=latest");
        // Message-id bounds for 64 partitions: over 700 characters as given.
        let many: Vec<String> = (0..64).map(|p| format!("{p}=123456:{p}")).collect();
        let long = cfg(format!("id:{}", many.join(",")));
        let key = long.range_key();
        assert!(
            key.starts_with("sha256:") && key.len() <= RANGE_KEY_MAX,
            "{key}"
        );
        assert_eq!(key, long.range_key(), "the same range gives the same key");
        let other: Vec<String> = (0..64).map(|p| format!("{p}=123456:{}", p + 1)).collect();
        assert_ne!(key, cfg(format!("id:{}", other.join(","))).range_key());
    }

    #[test]
    fn id_bounds() {
        let b = "id:12:5".parse::<StartBound>().unwrap();
        assert_eq!(
            b,
            StartBound::AfterId(vec![(None, Position::new(12, 5, -1))])
        );
        let b = "id:0=12:5:3,2=14:0".parse::<EndBound>().unwrap();
        let EndBound::AtId(ids) = b else { panic!() };
        assert_eq!(
            id_for_partition(&ids, Some(2)),
            Some(Position::new(14, 0, -1))
        );
        assert_eq!(id_for_partition(&ids, Some(1)), None);
        assert!("id:12".parse::<EndBound>().is_err());
    }
}
