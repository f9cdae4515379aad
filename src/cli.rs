//! The command line: raw arguments (flags, `PULSAR2MYSQL_*` environment variables, an optional
//! TOML file) turned into one validated [`Config`]. Flags win over the environment, which wins
//! over the file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::config::{
    parse_ascii_char, BadRecordPolicy, Config, Delimiter, EndBound, RecordsConfig, SinkConfig,
    SourceConfig, StartBound, TopicName, WriteMode, WriteStrategy,
};
use crate::error::{Error, Result};

/// `--version`: the package version and the commit it was built from (see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("P2M_GIT_COMMIT"),
    ")"
);

/// Moves a bounded range of a Pulsar topic into a MySQL table, exactly once.
#[derive(Debug, Parser)]
#[command(name = "pulsar2mysql", version = VERSION, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PULSAR2MYSQL_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log level filter (RUST_LOG syntax, e.g. `info` or `pulsar2mysql=debug`); RUST_LOG wins.
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "PULSAR2MYSQL_LOG_LEVEL"
    )]
    pub log_level: String,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read the range and write it to the table (or only read and parse, with --dry-run).
    Run(RunCommand),
    /// Check configuration, connectivity, the table against the mapping, and privileges.
    Check(RunArgs),
    /// Create the project's own tables (checkpoints, dead letters); `run` does it too.
    Migrate(RunArgs),
}

/// `run`: the job's options plus where its metrics go.
#[derive(Debug, Clone, Args)]
pub struct RunCommand {
    #[command(flatten)]
    pub args: RunArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where a run's Prometheus metrics go (any combination; none by default). Flags or
/// `PULSAR2MYSQL_*` environment variables, not the `--config` file. A failure of any of them
/// is a warning and never changes the exit code.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Serve `GET /metrics` on this address (e.g. 127.0.0.1:9898) while the run lasts.
    #[arg(long, env = "PULSAR2MYSQL_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Push the metrics to this Prometheus Pushgateway (http://host:9091) when the run ends,
    /// grouped by job=pulsar2mysql and job_id.
    #[arg(long, env = "PULSAR2MYSQL_PUSHGATEWAY_URL", hide_env_values = true)]
    pub pushgateway_url: Option<String>,

    /// Write the metrics to this file (atomically) when the run ends, for node_exporter's
    /// textfile collector (name it *.prom, in the collector's directory).
    #[arg(long, env = "PULSAR2MYSQL_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Seconds between progress reports: a rewritten line when stderr is a terminal (default
    /// 1), an info log line otherwise (default 10); 0 turns them off.
    #[arg(long, env = "PULSAR2MYSQL_PROGRESS_SECS")]
    pub progress_secs: Option<u64>,
}

/// Options of `run`, `check` and `migrate`. Every one can also come from the TOML file given
/// with `--config` (same names, `-` or `_`) or from `PULSAR2MYSQL_<NAME>`.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunArgs {
    /// TOML file with any of these options.
    #[arg(long, env = "PULSAR2MYSQL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

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

    /// Write streams (one connection each) the partitions are spread over. Default: 4.
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

/// A secret option's value: shown as `***` by `Debug`, so no log line or panic message that
/// formats the options can leak it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// A URL that may carry a password: `Debug` shows it redacted.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(pub String);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::error::redact_url(&self.0))
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(SecretUrl(s.to_string()))
    }
}

/// The MySQL TLS settings: the flags, else the URL's own parameters (sqlx's names).
fn mysql_tls(args: &RunArgs, url: &str) -> Result<crate::config::MysqlTls> {
    let mut tls = crate::config::MysqlTls::default();
    if let Ok(url) = url::Url::parse(url) {
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "ssl-mode" | "sslmode" => {
                    tls.mode = v
                        .parse()
                        .map_err(|e| Error::Config(format!("--mysql-url ssl-mode: {e}")))?
                }
                "ssl-ca" => tls.ca = Some(PathBuf::from(v.as_ref())),
                "ssl-cert" => tls.cert = Some(PathBuf::from(v.as_ref())),
                "ssl-key" => tls.key = Some(PathBuf::from(v.as_ref())),
                _ => {}
            }
        }
    }
    // An empty value (a scheduler templating an unset setting) counts as not given.
    if let Some(mode) = args.mysql_ssl_mode.as_deref().filter(|m| !m.is_empty()) {
        tls.mode = mode
            .parse()
            .map_err(|e| Error::Config(format!("--mysql-ssl-mode: {e}")))?;
    }
    let given = |p: &Option<String>| p.as_deref().filter(|p| !p.is_empty()).map(PathBuf::from);
    tls.ca = given(&args.mysql_ssl_ca).or(tls.ca);
    tls.cert = given(&args.mysql_ssl_cert).or(tls.cert);
    tls.key = given(&args.mysql_ssl_key).or(tls.key);
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(Error::Config(
            "a MySQL client certificate needs both --mysql-ssl-cert and --mysql-ssl-key".into(),
        ));
    }
    for (what, path) in [
        ("--mysql-ssl-ca", &tls.ca),
        ("--mysql-ssl-cert", &tls.cert),
        ("--mysql-ssl-key", &tls.key),
    ] {
        if let Some(path) = path {
            if !path.is_file() {
                return Err(Error::Config(format!(
                    "{what} {}: no such file",
                    path.display()
                )));
            }
        }
    }
    Ok(tls)
}

/// The secret flags given on the command line itself, where every user of the machine can read
/// them (`ps`, `/proc/PID/cmdline`); the caller warns about each.
pub fn secrets_on_command_line(args: impl IntoIterator<Item = String>) -> Vec<&'static str> {
    let mut found = Vec::new();
    for arg in args {
        for flag in ["--mysql-password", "--pulsar-token"] {
            let given = arg == flag
                || arg
                    .strip_prefix(flag)
                    .is_some_and(|rest| rest.starts_with('='));
            if given && !found.contains(&flag) {
                found.push(flag);
            }
        }
    }
    found
}

fn read_secret_file(path: &PathBuf, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| Error::Config(format!("cannot read {what} file {}: {e}", path.display())))
}

impl RunArgs {
    /// Fills options not given as flags or environment from the `--config` file.
    pub fn merge_file(self) -> Result<RunArgs> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("cannot read --config {}: {e}", path.display())))?;
        let file = parse_file(&text)
            .map_err(|e| Error::Config(format!("--config {}: {e}", path.display())))?;
        macro_rules! pick {
            ($($f:ident),*) => { RunArgs { $($f: self.$f.or(file.$f),)* config: self.config, dry_run: self.dry_run || file.dry_run, reprocess: self.reprocess || file.reprocess, pulsar_admin_allow_insecure_token: self.pulsar_admin_allow_insecure_token || file.pulsar_admin_allow_insecure_token } };
        }
        Ok(pick!(
            job_id,
            pulsar_url,
            pulsar_admin_url,
            topic,
            partitions,
            from,
            to,
            pulsar_token,
            pulsar_token_file,
            pulsar_tls_ca_file,
            mysql_url,
            mysql_password,
            mysql_ssl_mode,
            mysql_ssl_ca,
            mysql_ssl_cert,
            mysql_ssl_key,
            mysql_password_file,
            table,
            columns,
            delimiter,
            escape,
            null_literal,
            mode,
            write_strategy,
            on_bad_record,
            max_bad_records,
            batch_rows,
            batch_bytes,
            writers,
            idle_timeout_secs,
            retry_budget_secs,
            mysql_io_timeout_secs
        ))
    }

    /// The MySQL settings alone, for `migrate`: no topic or table is needed to prepare a
    /// database (the rest is validated as for `run` when given).
    pub fn into_sink_config(mut self) -> Result<crate::config::SinkConfig> {
        if self.config.is_none() {
            self.topic
                .get_or_insert_with(|| "not-needed-by-migrate".into());
            self.table
                .get_or_insert_with(|| "not_needed_by_migrate".into());
            return Ok(self.into_config()?.sink);
        }
        let mut merged = self.merge_file()?;
        merged.config = None;
        merged.into_sink_config()
    }

    /// Validates everything into a [`Config`].
    pub fn into_config(self) -> Result<Config> {
        let args = self.merge_file()?;
        let cfg_err = Error::Config;
        let topic: TopicName = args
            .topic
            .as_deref()
            .ok_or_else(|| cfg_err("--topic is required".into()))?
            .parse()
            .map_err(cfg_err)?;
        let table = args
            .table
            .clone()
            .ok_or_else(|| Error::Config("--table is required".into()))?;
        let from: StartBound = args
            .from
            .as_deref()
            .unwrap_or("earliest")
            .parse()
            .map_err(Error::Config)?;
        let to: EndBound = args
            .to
            .as_deref()
            .unwrap_or("latest")
            .parse()
            .map_err(Error::Config)?;
        // An empty variable (a scheduler templating an unset secret) counts as not given: the
        // `*-file` option, if any, still applies.
        let auth_token = match (&args.pulsar_token, &args.pulsar_token_file) {
            (Some(t), _) if !t.0.is_empty() => Some(t.0.clone()),
            (_, Some(f)) => Some(read_secret_file(f, "--pulsar-token-file")?),
            _ => None,
        };
        let password = match (&args.mysql_password, &args.mysql_password_file) {
            (Some(p), _) if !p.0.is_empty() => Some(p.0.clone()),
            (_, Some(f)) => Some(read_secret_file(f, "--mysql-password-file")?),
            _ => None,
        };
        let mysql_url = args
            .mysql_url
            .as_ref()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/pulsar2mysql".into());
        let delimiter = match &args.delimiter {
            Some(d) => {
                d.parse::<Delimiter>()
                    .map_err(|e| Error::Config(format!("--delimiter: {e}")))?
                    .0
            }
            None => b'|',
        };
        let escape = args
            .escape
            .as_deref()
            .map(|e| parse_ascii_char(e, "--escape"))
            .transpose()
            .map_err(Error::Config)?;
        let columns = args.columns.as_deref().map(|list| {
            list.split(',')
                .map(|c| match c.trim() {
                    "" | "-" => None,
                    c => Some(c.to_string()),
                })
                .collect::<Vec<_>>()
        });
        let retry_budget = Duration::from_secs(args.retry_budget_secs.unwrap_or(120));
        let job_id = args
            .job_id
            .clone()
            .unwrap_or_else(|| Config::default_job_id(&topic, &table));
        let cfg = Config {
            job_id,
            source: SourceConfig {
                service_url: args
                    .pulsar_url
                    .clone()
                    .unwrap_or_else(|| "pulsar://127.0.0.1:6650".into()),
                admin_url: args.pulsar_admin_url.clone(),
                admin_allow_insecure_token: args.pulsar_admin_allow_insecure_token,
                topic,
                partitions: args.partitions.clone(),
                from,
                to,
                auth_token,
                tls_ca_file: args.pulsar_tls_ca_file.clone(),
                idle_timeout: Duration::from_secs(args.idle_timeout_secs.unwrap_or(3).max(1)),
                retry_budget,
            },
            records: RecordsConfig {
                delimiter,
                escape,
                null_literal: args.null_literal.clone(),
                columns,
                on_bad_record: args.on_bad_record.unwrap_or(BadRecordPolicy::Fail),
                max_bad_records: args.max_bad_records.unwrap_or(1000),
            },
            sink: SinkConfig {
                url: mysql_url.clone(),
                password,
                table,
                mode: args.mode.unwrap_or(WriteMode::Insert),
                strategy: args.write_strategy.unwrap_or_default(),
                batch_rows: args.batch_rows,
                batch_bytes: args.batch_bytes.unwrap_or(4 << 20),
                writers: args.writers,
                retry_budget,
                io_timeout: Duration::from_secs(args.mysql_io_timeout_secs.unwrap_or(30).max(1)),
                tls: mysql_tls(&args, &mysql_url)?,
            },
            dry_run: args.dry_run,
            reprocess: args.reprocess,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Parses the TOML file; keys may be written snake_case or kebab-case.
fn parse_file(text: &str) -> std::result::Result<RunArgs, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let table: toml::Table = table
        .into_iter()
        .map(|(k, v)| (k.replace('_', "-"), v))
        .collect();
    RunArgs::deserialize(table).map_err(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_the_package_version_and_a_commit() {
        use clap::CommandFactory;
        let text = Cli::command().render_version();
        let want = format!("pulsar2mysql {} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(text.starts_with(&want), "{text}");
        assert!(!env!("P2M_GIT_COMMIT").is_empty());
    }

    #[test]
    fn file_keys_in_either_case_and_values_untouched() {
        let args =
            parse_file("topic = \"my_topic\"\nbatch_rows = 5\nmysql-url = \"mysql://a@b/c_d\"\n")
                .unwrap();
        assert_eq!(args.topic.as_deref(), Some("my_topic"));
        assert_eq!(args.batch_rows, Some(5));
        assert_eq!(args.mysql_url.unwrap().0, "mysql://a@b/c_d");
        assert!(parse_file("nope = 1").is_err());
    }

    #[test]
    fn flags_win_over_file() {
        let dir = std::env::temp_dir().join(format!("p2m-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "topic = \"from_file\"\ntable = \"t\"\nwriters = 2\n").unwrap();
        let args = RunArgs {
            config: Some(path),
            topic: Some("from_flag".into()),
            ..Default::default()
        };
        let cfg = args.into_config().unwrap();
        assert_eq!(cfg.source.topic.0, "persistent://public/default/from_flag");
        assert_eq!(cfg.sink.writers, Some(2));
        assert_eq!(cfg.sink.table, "t");
    }

    #[test]
    fn missing_topic_is_a_clear_error() {
        let err = RunArgs {
            table: Some("t".into()),
            ..Default::default()
        }
        .into_config()
        .unwrap_err();
        assert!(err.to_string().contains("--topic is required"), "{err}");
    }

    fn window_args(pulsar_url: &str) -> RunArgs {
        RunArgs {
            topic: Some("t".into()),
            table: Some("t".into()),
            pulsar_url: Some(pulsar_url.into()),
            from: Some("1700000000000".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_admin_url_follows_the_service_url_scheme() {
        let admin = |args: RunArgs| args.into_config().unwrap().source.admin_base_url().unwrap();
        assert_eq!(
            admin(window_args("pulsar+ssl://broker.example:6651")).as_str(),
            "https://broker.example:8443/"
        );
        assert_eq!(
            admin(window_args("pulsar://10.0.0.7:6650")).as_str(),
            "http://10.0.0.7:8080/"
        );
        let mut args = window_args("pulsar+ssl://b:6651");
        args.pulsar_admin_url = Some("https://admin.example/pulsar".into());
        assert_eq!(admin(args).as_str(), "https://admin.example/pulsar");
        for bad in ["ftp://x", "not a url", "http://"] {
            let mut args = window_args("pulsar://b:6650");
            args.pulsar_admin_url = Some(bad.into());
            let err = args.into_config().unwrap_err();
            assert!(
                err.to_string().contains("--pulsar-admin-url"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_token_is_not_sent_to_a_plain_http_admin_url_unless_allowed() {
        const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl";
        let with_token = |url: &str| RunArgs {
            pulsar_token: Some(TOKEN.parse().unwrap()),
            ..window_args(url)
        };
        // pulsar:// derives an http admin URL; so does an explicit http:// one.
        let mut explicit = with_token("pulsar+ssl://b:6651");
        explicit.pulsar_admin_url = Some("http://b:8080".into());
        for args in [with_token("pulsar://b:6650"), explicit] {
            let err = args.clone().into_config().unwrap_err();
            assert_eq!(err.exit_code() as i32, 2);
            let text = err.to_string();
            assert!(
                text.contains("--pulsar-admin-allow-insecure-token") && text.contains("https://"),
                "{text}"
            );
            assert!(
                !text.contains(TOKEN) && !text.contains("c2VjcmV0"),
                "{text}"
            );
            let allowed = RunArgs {
                pulsar_admin_allow_insecure_token: true,
                ..args
            };
            assert!(allowed.into_config().is_ok());
        }
        // https (the pulsar+ssl:// default), no token, or no publish-time window: nothing to refuse.
        assert!(with_token("pulsar+ssl://b:6651").into_config().is_ok());
        assert!(window_args("pulsar://b:6650").into_config().is_ok());
        let no_window = RunArgs {
            from: None,
            ..with_token("pulsar://b:6650")
        };
        assert!(no_window.into_config().is_ok());
    }

    #[test]
    fn secret_flags_on_the_command_line_are_found() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            secrets_on_command_line(argv(&["run", "--mysql-password", "x", "--pulsar-token=y"])),
            ["--mysql-password", "--pulsar-token"]
        );
        assert!(secrets_on_command_line(argv(&["run", "--mysql-password-file", "f"])).is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let args = RunArgs {
            mysql_url: Some("mysql://u:url-secret@h/db".parse().unwrap()),
            mysql_password: Some("pw-secret".parse().unwrap()),
            pulsar_token: Some("token-secret".parse().unwrap()),
            ..Default::default()
        };
        let shown = format!("{args:?}");
        for secret in ["url-secret", "pw-secret", "token-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("mysql://u:***@h/db"), "{shown}");
    }

    #[test]
    fn an_empty_variable_does_not_hide_its_file_option() {
        let dir = std::env::temp_dir().join(format!("p2m-cli-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "from-file\n").unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "jwt-from-file\n").unwrap();
        let cfg = RunArgs {
            topic: Some("t".into()),
            table: Some("t".into()),
            mysql_password: Some("".parse().unwrap()),
            mysql_password_file: Some(pw),
            pulsar_token: Some("".parse().unwrap()),
            pulsar_token_file: Some(token),
            ..Default::default()
        }
        .into_config()
        .unwrap();
        assert_eq!(cfg.sink.password.as_deref(), Some("from-file"));
        assert_eq!(cfg.source.auth_token.as_deref(), Some("jwt-from-file"));
    }
}
