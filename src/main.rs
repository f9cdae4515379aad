//! The `pulsar2mysql` binary: parses arguments, sets up logging and signal handling, calls the
//! library, prints the JSON summary as the last line of stdout and exits with its code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use pulsar2mysql::cli::{Cli, Command, LogFormat, RunCommand};
use pulsar2mysql::report::{Stats, Summary};
use pulsar2mysql::{metrics, pipeline, Error};

/// Stderr for log lines: clears the terminal progress line (if shown) before each one.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        metrics::clear_progress_line(&mut err);
        err.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut err = std::io::stderr().lock();
        metrics::clear_progress_line(&mut err);
        err.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn init_logging(cli: &Cli) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // pulsar-rs logs whole protocol frames at trace level, the CONNECT frame with its auth
    // token included: never let them through, whatever level was asked for. It also logs
    // every subscription as a warning ("Retry #0 -> connecting consumer"), which reads like
    // a fault; its real retries and failures are logged as errors, which stay.
    let no_frames = tracing_subscriber::filter::filter_fn(|m| {
        let frame =
            *m.level() == tracing::Level::TRACE && m.target().starts_with("pulsar::connection");
        let subscribing = *m.level() == tracing::Level::WARN && m.target() == "pulsar::retry_op";
        !(frame || subscribing)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter);
    match cli.log_format {
        LogFormat::Json => builder.json().finish().with(no_frames).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(no_frames)
            .init(),
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

/// `run`: the pipeline inside a `run{job_id=..}` span (so every log line names the job), with
/// the metrics endpoint and progress reporting alongside it, then the metrics outputs of its end.
async fn run(cmd: RunCommand, log_format: LogFormat) -> ExitCode {
    let RunCommand { args, output } = cmd;
    let pushgateway = match output
        .pushgateway_url
        .as_deref()
        .map(metrics::parse_pushgateway_url)
        .transpose()
    {
        Ok(u) => u,
        Err(e) => return fail(&e),
    };
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let token = CancellationToken::new();
    on_signal(token.clone());
    let stats = Arc::new(Stats::default());
    let meta = metrics::RunMeta::new(&cfg);
    let span = tracing::info_span!("run", job_id = %cfg.job_id);
    let done = CancellationToken::new();
    let mut helpers = Vec::new();

    if let Some(addr) = output.metrics_addr {
        let (s, m) = (stats.clone(), meta.clone());
        let render_now: Arc<dyn Fn() -> String + Send + Sync> =
            Arc::new(move || metrics::render(&s, &m, None, None));
        match metrics::serve(addr, render_now, done.clone()).await {
            Ok((local, task)) => {
                tracing::info!(parent: &span, "metrics at http://{local}/metrics while the run lasts");
                helpers.push(task);
            }
            Err(e) => tracing::warn!(
                parent: &span, error = %e,
                "cannot serve metrics on {addr}; the run goes on without the endpoint"
            ),
        }
    }
    // A rewritten progress line only for a person watching a terminal; a log line otherwise.
    let terminal = std::io::stderr().is_terminal() && log_format == LogFormat::Text;
    let every = output
        .progress_secs
        .unwrap_or(if terminal { 1 } else { 10 });
    if every > 0 {
        helpers.push(tokio::spawn(
            metrics::progress(
                stats.clone(),
                std::time::Duration::from_secs(every),
                terminal,
                cfg.dry_run,
                done.clone(),
            )
            .instrument(span.clone()),
        ));
    }

    let summary = pipeline::run(&cfg, stats.clone(), token)
        .instrument(span.clone())
        .await;
    done.cancel();
    for task in helpers {
        let _ = task.await;
    }
    write_metrics(&output, pushgateway.as_ref(), &stats, &meta, &summary)
        .instrument(span)
        .await;

    if let Some(err) = &summary.error {
        eprintln!("pulsar2mysql: {err}");
    }
    print_last_line(&summary.to_json_line());
    ExitCode::from(summary.exit_code as u8)
}

/// The end-of-run metrics outputs: the textfile, then the Pushgateway. Failures are warnings.
async fn write_metrics(
    output: &pulsar2mysql::cli::OutputArgs,
    pushgateway: Option<&url::Url>,
    stats: &Stats,
    meta: &metrics::RunMeta,
    summary: &Summary,
) {
    if let Some(path) = &output.metrics_file {
        let previous = metrics::last_success_in(path, meta);
        let body = metrics::render(stats, meta, Some(summary), previous);
        match metrics::write_textfile(path, &body) {
            Ok(()) => tracing::info!(path = %path.display(), "metrics file written"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the metrics file")
            }
        }
    }
    if let Some(url) = pushgateway {
        let body = metrics::render(stats, meta, Some(summary), None);
        // PUT replaces the job's group; after a failure POST keeps the last success timestamp.
        let replace = summary.exit_code == 0;
        let shown = pulsar2mysql::error::redact_url(url.as_str());
        match metrics::push(url, &meta.job_id, &body, replace).await {
            Ok(()) => tracing::info!(pushgateway = %shown, "metrics pushed"),
            Err(e) => {
                tracing::warn!(pushgateway = %shown, error = %e, "cannot push metrics; the exit code is unchanged")
            }
        }
    }
}

fn main() -> ExitCode {
    one_malloc_arena();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async_main()),
        Err(e) => {
            eprintln!("pulsar2mysql: cannot start its threads: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc's malloc gives each thread that allocates an arena of its own and keeps what was
/// freed there for that thread: the readers' tasks move between tokio's workers, and a run
/// over 64 partitions held 71.6 MiB of RSS for about 16 MiB of live heap (the 64 MiB bound of
/// BENCHMARKS.md). With one arena the same run peaks at 52.3 MiB, its CPU unchanged within
/// the noise. Called before any thread starts; a `MALLOC_ARENA_MAX` set by the user wins.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

async fn async_main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    for (flag, advice) in pulsar2mysql::cli::secrets_on_command_line(std::env::args()) {
        tracing::warn!(
            "{flag} on the command line can be read by every user of this machine (ps, \
             /proc); {advice}"
        );
    }
    match cli.command {
        Command::Run(cmd) => run(cmd, cli.log_format).await,
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
            let sink = match args.into_sink_config() {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            match pulsar2mysql::sink::migrate(&sink).await {
                Ok(()) => {
                    print_last_line(r#"{"outcome":"migrated"}"#);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
    }
}
