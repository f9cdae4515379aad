//! The MySQL side of a run: write mode and strategy, TLS, and how batch sizes and write
//! streams follow the number of partitions read at once.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

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

/// `--writers`' default: one write stream, fed by every partition read (up to 64 side by
/// side), one batch at a time carrying all their checkpoints. Measured side by side against
/// two and four under `innodb_autoinc_lock_mode` 1 and 2 (benches/autoinc.sh, BENCHMARKS.md):
/// as fast within noise under 1, 1.3-1.5 x faster under 2, where parallel statements contend
/// on the same B-tree; with one connection and one batch in memory.
pub const DEFAULT_WRITE_STREAMS: usize = 1;

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
    /// The most write streams a run may use: the connection pools' size.
    pub fn max_writers(&self) -> usize {
        self.writers.unwrap_or(DEFAULT_WRITE_STREAMS).max(1)
    }

    /// How many write streams a run of `partitions` partitions uses: `--writers`, else
    /// [`DEFAULT_WRITE_STREAMS`], never more than the partitions.
    pub fn write_streams(&self, partitions: usize) -> usize {
        self.writers
            .unwrap_or(DEFAULT_WRITE_STREAMS)
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

    /// Rows per transaction when `concurrent` partitions are written at once: what was asked
    /// for, else 100,000 shared among them (at least 20,000). Bulk inserts into one table
    /// take its AUTO-INC lock per statement (`innodb_autoinc_lock_mode=1`, MariaDB's
    /// default), so concurrent partitions interleave better with shorter transactions; one
    /// partition gets the largest (see BENCHMARKS.md).
    pub fn batch_rows_for(&self, concurrent: usize) -> usize {
        self.batch_rows
            .unwrap_or_else(|| (100_000 / concurrent.max(1)).max(20_000))
    }

    /// The URL with the password replaced, for logs and the summary.
    pub fn redacted_url(&self) -> String {
        crate::error::redact_url(&self.url)
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

        // Write streams: one unless --writers says, never more than the partitions.
        assert_eq!(sink.write_streams(16), DEFAULT_WRITE_STREAMS);
        assert_eq!(sink.write_streams(2), 1);
        sink.writers = Some(4);
        assert_eq!(sink.write_streams(16), 4);
        assert_eq!(sink.write_streams(2), 2);
        sink.writers = Some(3);
        assert_eq!(sink.write_streams(1), 1);
    }
}
