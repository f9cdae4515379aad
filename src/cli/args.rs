//! The options of `run`, `check` and `migrate`: flags, environment variables and `--config`
//! file keys in one struct, so the three sources can never disagree on a name.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::{Secret, SecretUrl};
use crate::config::{BadRecordPolicy, WriteMode, WriteStrategy};

/// Options of `run`, `check` and `migrate`. Every one can also come from the TOML file given
/// with `--config` (same names, `-` or `_`) or from `PULSAR2MYSQL_<NAME>`.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunArgs {
    /// TOML file with any of these options.
    #[arg(long, env = "PULSAR2MYSQL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// InLong Sort's dataflow (the `GroupInfo` JSON InLong Manager keeps for the group) to take
    /// the topic, URLs, record format, table, columns and credentials from; `-` reads stdin.
    /// Options given as well must agree with it (README, "InLong dataflow").
    #[arg(long, env = "PULSAR2MYSQL_INLONG_DATAFLOW")]
    pub inlong_dataflow: Option<String>,

    /// The stream of the dataflow this run syncs (its streamId); needed when it has several.
    #[arg(long, env = "PULSAR2MYSQL_INLONG_STREAM")]
    pub inlong_stream: Option<String>,

    /// The MySQL sink of the stream this run writes (its mysqlLoad node id); needed when the
    /// stream has several.
    #[arg(long, env = "PULSAR2MYSQL_INLONG_SINK")]
    pub inlong_sink: Option<String>,

    /// Stable name of the job (keys checkpoints and the job lock). Default: "<topic>-><table>".
    #[arg(long, env = "PULSAR2MYSQL_JOB_ID")]
    pub job_id: Option<String>,

    /// Pulsar service URL (pulsar:// or pulsar+ssl://). Default: pulsar://127.0.0.1:6650.
    #[arg(long, env = "PULSAR2MYSQL_PULSAR_URL")]
    pub pulsar_url: Option<String>,

    /// Pulsar admin REST URL, to find where a publish-time window starts. Default:
    /// https://<service host>:8443 for pulsar+ssl://, http://<service host>:8080 for pulsar://.
    #[arg(long, env = "PULSAR2MYSQL_PULSAR_ADMIN_URL")]
    pub pulsar_admin_url: Option<String>,

    /// Send the Pulsar token to an http:// admin URL, in clear text (refused without it).
    #[arg(long, env = "PULSAR2MYSQL_PULSAR_ADMIN_ALLOW_INSECURE_TOKEN")]
    #[serde(default)]
    pub pulsar_admin_allow_insecure_token: bool,

    /// Topic: name, tenant/namespace/name or persistent://tenant/namespace/name.
    #[arg(long, env = "PULSAR2MYSQL_TOPIC")]
    pub topic: Option<String>,

    /// Only these partitions of a partitioned topic, e.g. 0,2.
    #[arg(long, env = "PULSAR2MYSQL_PARTITIONS", value_delimiter = ',')]
    pub partitions: Option<Vec<u32>>,

    /// Start: earliest (default), epoch milliseconds or RFC 3339 (publish time, inclusive),
    /// or id:LEDGER:ENTRY[:BATCH] (strictly after; id:P=L:E,... per partition).
    #[arg(long, env = "PULSAR2MYSQL_FROM", allow_hyphen_values = true)]
    pub from: Option<String>,

    /// End: latest (default: what exists when the run starts), epoch milliseconds or RFC 3339
    /// (publish time, exclusive), or id:LEDGER:ENTRY[:BATCH] (inclusive).
    #[arg(long, env = "PULSAR2MYSQL_TO", allow_hyphen_values = true)]
    pub to: Option<String>,

    /// JWT for Pulsar token authentication (prefer the environment or --pulsar-token-file).
    #[arg(long, env = "PULSAR2MYSQL_PULSAR_TOKEN", hide_env_values = true)]
    pub pulsar_token: Option<Secret>,

    /// File holding the Pulsar JWT.
    #[arg(long, env = "PULSAR2MYSQL_PULSAR_TOKEN_FILE")]
    pub pulsar_token_file: Option<PathBuf>,

    /// CA certificates (PEM) to trust for pulsar+ssl://.
    #[arg(long, env = "PULSAR2MYSQL_PULSAR_TLS_CA_FILE")]
    pub pulsar_tls_ca_file: Option<String>,

    /// MySQL URL. Default: mysql://root@127.0.0.1:3306/pulsar2mysql. Give the password through
    /// PULSAR2MYSQL_MYSQL_PASSWORD or --mysql-password-file rather than in the URL.
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_URL", hide_env_values = true)]
    pub mysql_url: Option<SecretUrl>,

    /// MySQL password (prefer the environment variable or a file).
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_PASSWORD", hide_env_values = true)]
    pub mysql_password: Option<Secret>,

    /// TLS for both MySQL connections: disabled, preferred, required, verify-ca,
    /// verify-identity. Default: the URL's ssl-mode, else preferred.
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_SSL_MODE")]
    pub mysql_ssl_mode: Option<String>,

    /// CA certificates (PEM) to verify the MySQL server with. Default: the URL's ssl-ca.
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_SSL_CA")]
    pub mysql_ssl_ca: Option<String>,

    /// Client certificate (PEM) for MySQL; with --mysql-ssl-key. Default: the URL's ssl-cert.
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_SSL_CERT")]
    pub mysql_ssl_cert: Option<String>,

    /// Client key (PEM) for MySQL. Default: the URL's ssl-key.
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_SSL_KEY")]
    pub mysql_ssl_key: Option<String>,

    /// File holding the MySQL password.
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_PASSWORD_FILE")]
    pub mysql_password_file: Option<PathBuf>,

    /// Target table: table or database.table.
    #[arg(long, env = "PULSAR2MYSQL_TABLE")]
    pub table: Option<String>,

    /// Field -> column mapping in field order, e.g. id,name; '-' skips a field.
    /// Default: the table's columns in order, without trailing columns that have defaults.
    #[arg(long, env = "PULSAR2MYSQL_COLUMNS")]
    pub columns: Option<String>,

    /// Field delimiter: a character ('|'), '\t', or an ASCII code as InLong stores it ('124').
    #[arg(long, env = "PULSAR2MYSQL_DELIMITER")]
    pub delimiter: Option<String>,

    /// Escape character: makes the next character literal (e.g. '\' so that \| is data).
    #[arg(long, env = "PULSAR2MYSQL_ESCAPE")]
    pub escape: Option<String>,

    /// A field equal to this string, as written (before unescaping), becomes NULL (e.g. '\N').
    /// Default: none.
    #[arg(long, env = "PULSAR2MYSQL_NULL_LITERAL")]
    pub null_literal: Option<String>,

    /// Write mode.
    #[arg(long, value_enum, env = "PULSAR2MYSQL_MODE")]
    pub mode: Option<WriteMode>,

    /// How rows travel to MySQL. Default: auto (LOAD DATA LOCAL INFILE from memory when the
    /// mode is insert or ignore-duplicates and the server has local_infile=ON, else INSERT).
    #[arg(long, value_enum, env = "PULSAR2MYSQL_WRITE_STRATEGY")]
    pub write_strategy: Option<WriteStrategy>,

    /// What to do with a record that cannot become a row.
    #[arg(long, value_enum, env = "PULSAR2MYSQL_ON_BAD_RECORD")]
    pub on_bad_record: Option<BadRecordPolicy>,

    /// Most bad records tolerated by skip and dead-letter before the run fails. Default: 1000.
    #[arg(long, env = "PULSAR2MYSQL_MAX_BAD_RECORDS")]
    pub max_bad_records: Option<u64>,

    /// Most rows per transaction. Default: 100000 for one partition, shared among the
    /// partitions written at once (at least 20000; see BENCHMARKS.md).
    #[arg(long, env = "PULSAR2MYSQL_BATCH_ROWS")]
    pub batch_rows: Option<usize>,

    /// Most bytes per INSERT statement (capped by max_allowed_packet) or per LOAD DATA batch;
    /// an INSERT batch holds at most four statements' worth. Default: 4194304.
    #[arg(long, env = "PULSAR2MYSQL_BATCH_BYTES")]
    pub batch_bytes: Option<usize>,

    /// Write streams (one connection each) the partitions are spread over. Default: 1, fed by
    /// every partition (see README, "Partitioned topics").
    #[arg(long, env = "PULSAR2MYSQL_WRITERS")]
    pub writers: Option<usize>,

    /// Seconds without a message after which a partition whose end the broker could not name
    /// counts as read to its end. Default: 3.
    #[arg(long, env = "PULSAR2MYSQL_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,

    /// Seconds of retrying (reconnects, transient write errors) before giving up, counted from
    /// the first failure. Default: 120.
    #[arg(long, env = "PULSAR2MYSQL_RETRY_BUDGET_SECS")]
    pub retry_budget_secs: Option<u64>,

    /// Seconds MySQL may take to answer one statement (or to take the next piece of a LOAD DATA
    /// batch) before the connection counts as cut and the batch is retried. Default: 30.
    #[arg(long, env = "PULSAR2MYSQL_MYSQL_IO_TIMEOUT_SECS")]
    pub mysql_io_timeout_secs: Option<u64>,

    /// Read and convert the range but write nothing.
    #[arg(long, env = "PULSAR2MYSQL_DRY_RUN")]
    #[serde(default)]
    pub dry_run: bool,

    /// Forget this range's checkpoints and process it again from its start.
    #[arg(long, env = "PULSAR2MYSQL_REPROCESS")]
    #[serde(default)]
    pub reprocess: bool,
}
