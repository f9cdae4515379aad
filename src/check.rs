//! `pulsar2mysql check`: everything a run needs, verified without writing a row, so a scheduler
//! can fail fast on a wrong password, a missing table or a mapping that does not fit.

use serde::Serialize;

use crate::config::WriteStrategy;
use crate::error::{Error, Result};
use crate::sink::MysqlSink;
use crate::source::PulsarSource;
use crate::Config;

/// What `check` found, printed as JSON.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub outcome: &'static str,
    pub topic: String,
    pub partitions: usize,
    pub table: String,
    /// The columns fields map to, in field order.
    pub mapped_columns: Vec<String>,
    /// How a run would write: `load-data` or `insert` (`auto` resolved against the server).
    pub write_strategy: WriteStrategy,
}

/// Connects to both sides, checks the table against the mapping and the user's privileges.
pub async fn check(cfg: &Config) -> Result<CheckReport> {
    let sink = MysqlSink::connect(&cfg.sink, true).await?;
    let converter = crate::pipeline::converter_for(&sink, &cfg.records)?;
    let mut conn = sink.acquire().await?;
    let grants: Vec<String> = sqlx::query_scalar("SHOW GRANTS FOR CURRENT_USER()")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::Sink(format!("cannot read the user's grants: {e}")))?;
    let can = |privilege: &str| {
        grants.iter().any(|g| {
            let g = g.to_ascii_uppercase();
            g.contains("ALL PRIVILEGES") || g.contains(privilege)
        })
    };
    if !can("INSERT") {
        return Err(Error::Sink(format!(
            "the MySQL user may not INSERT into {}; grant INSERT (and CREATE for the checkpoint table)",
            sink.table()
        )));
    }
    // The LOAD DATA path has its own connections (another driver): open one, so a server that
    // refuses it (TLS required, a user limited to the socket...) fails here, not in the run.
    sink.probe_load_data().await?;
    let source = PulsarSource::connect(&cfg.source).await?;
    let partitions = source.partitions().await?;
    Ok(CheckReport {
        outcome: "ok",
        topic: cfg.source.topic.0.clone(),
        partitions: partitions.len(),
        table: sink.table().to_string(),
        mapped_columns: converter.mapped_columns(),
        write_strategy: sink.write_strategy(),
    })
}
