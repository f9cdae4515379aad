//! The command line: raw arguments (flags, `PULSAR2MYSQL_*` environment variables, an optional
//! TOML file, an optional InLong dataflow) turned into one validated [`Config`]. Flags win over
//! the environment, which wins over the file; an InLong dataflow fills what they leave out and
//! must agree with what they give.
//!
//! Split by what a reader comes for: the options themselves (`args.rs`, whose doc comments are
//! the `--help` text), the `--config` file (`file.rs`), InLong's dataflow (`inlong.rs`),
//! secrets (`secrets.rs`), and the
//! conversion into a [`Config`](crate::config::Config) (`into_config.rs`). Every public name
//! stays at `crate::cli::*`.

mod args;
mod file;
mod inlong;
mod into_config;
mod secrets;

pub use args::RunArgs;
pub use inlong::{parse_dataflow, DataflowError, DataflowOptions, MysqlTarget, PulsarAuth};
pub use secrets::{secrets_on_command_line, Secret, SecretUrl};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
}
