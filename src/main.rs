//! The `pulsar2mysql` binary: parses arguments, sets up logging and signal handling, calls the
//! library, prints the JSON summary as the last line of stdout and exits with its code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use pulsar2mysql::cli::{Cli, Command, LogFormat};
use pulsar2mysql::{pipeline, Error};

fn init_logging(cli: &Cli) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// SIGTERM (Airflow's task timeout) and SIGINT both stop reading; the run then commits or
/// rolls back its batch in flight and reports `interrupted`.
fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::warn!("signal received: finishing the batch in flight, then stopping");
        token.cancel();
    });
}

fn print_last_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("pulsar2mysql: {e}");
    print_last_line(
        &serde_json::json!({"outcome": e.outcome(), "exit_code": e.exit_code() as i32, "error": e.to_string()})
            .to_string(),
    );
    ExitCode::from(e.exit_code() as u8)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match cli.command {
        Command::Run(args) => {
            let cfg = match args.into_config() {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let token = CancellationToken::new();
            on_signal(token.clone());
            let stats = std::sync::Arc::new(pulsar2mysql::report::Stats::default());
            let summary = pipeline::run(&cfg, stats, token).await;
            if let Some(err) = &summary.error {
                eprintln!("pulsar2mysql: {err}");
            }
            print_last_line(&summary.to_json_line());
            ExitCode::from(summary.exit_code as u8)
        }
        Command::Check(args) => {
            let cfg = match args.into_config() {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            match pulsar2mysql::check::check(&cfg).await {
                Ok(report) => {
                    print_last_line(&serde_json::to_string(&report).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Migrate(args) => {
            let cfg = match args.into_config() {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            match pulsar2mysql::sink::MysqlSink::connect(&cfg.sink, false).await {
                Ok(_) => {
                    print_last_line(r#"{"outcome":"migrated"}"#);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
    }
}
