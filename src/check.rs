//! `pulsar2mysql check`: everything a run needs, verified without writing a row, so a scheduler
//! can fail fast on a wrong password, a missing table or a mapping that does not fit.

use serde::Serialize;

use crate::config::{WriteMode, WriteStrategy};
use crate::error::{Error, Result};
use crate::sink::quote_ident;
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
    let first_column = quote_ident(&sink.table_columns()[0].name);
    probe_privileges(
        &mut conn,
        &sink.table().quoted(),
        &first_column,
        cfg.sink.mode,
        cfg.reprocess,
    )
    .await?;
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

/// The statements a run makes, each made harmless (`WHERE 1 = 0`) and rolled back: the server
/// checks privileges before it looks at a single row, so a missing one is refused here, by the
/// privilege's name and the table's, whatever way it was granted (user, role, schema, table).
async fn probe_privileges(
    conn: &mut sqlx::MySqlConnection,
    table: &str,
    column: &str,
    mode: WriteMode,
    reprocess: bool,
) -> Result<()> {
    let mut probes = vec![(
        "SELECT, INSERT",
        table.to_string(),
        format!("INSERT INTO {table} SELECT * FROM {table} WHERE 1 = 0"),
    )];
    if mode == WriteMode::Upsert {
        probes.push((
            "UPDATE",
            table.to_string(),
            format!("UPDATE {table} SET {column} = {column} WHERE 1 = 0"),
        ));
    }
    for own in ["p2m_checkpoint", "p2m_dead_letter", "p2m_window_end"] {
        probes.push((
            "SELECT, INSERT",
            own.into(),
            format!("INSERT INTO {own} SELECT * FROM {own} WHERE 1 = 0"),
        ));
        probes.push((
            "UPDATE",
            own.into(),
            format!("UPDATE {own} SET job_id = job_id WHERE 1 = 0"),
        ));
    }
    if reprocess {
        // --reprocess forgets the range's checkpoints first.
        probes.push((
            "DELETE",
            "p2m_checkpoint".into(),
            "DELETE FROM p2m_checkpoint WHERE 1 = 0".into(),
        ));
    }
    sqlx::raw_sql("START TRANSACTION")
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::Sink(format!("cannot start a transaction: {e}")))?;
    let mut missing = None;
    for (privilege, on, sql) in &probes {
        // Our own statements over names quoted by `TableName::quoted` or our constants.
        let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *conn)
            .await
            .err()
            .filter(is_access_denied);
        if let Some(e) = refused {
            missing = Some(format!(
                "the MySQL user lacks {privilege} on {on}, which a run needs ({e}); grant it as \
                 README's \"Least privilege\" shows"
            ));
            break;
        }
    }
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    match missing {
        Some(why) => Err(Error::Sink(why)),
        None => Ok(()),
    }
}

/// Whether the server refused for want of a privilege (table, column, database, or a global
/// one), not for anything else a probe may meet (a generated column, say).
fn is_access_denied(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|d| matches!(d.number(), 1142 | 1143 | 1044 | 1227))
}
