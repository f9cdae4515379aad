//! The project's own tables (`sql/migrations/`), created when missing: by `pulsar2mysql
//! migrate`, and by a run before it reads its checkpoints.

use crate::error::{Error, Result};
use sqlx::MySqlConnection;

/// The migrations the binary applies at start-up (idempotent `CREATE TABLE IF NOT EXISTS`).
pub const MIGRATIONS: &[(&str, &str, &str)] = &[
    (
        "001_checkpoint",
        "p2m_checkpoint",
        include_str!("../../sql/migrations/001_checkpoint.sql"),
    ),
    (
        "002_dead_letter",
        "p2m_dead_letter",
        include_str!("../../sql/migrations/002_dead_letter.sql"),
    ),
    (
        "003_window_end",
        "p2m_window_end",
        include_str!("../../sql/migrations/003_window_end.sql"),
    ),
];

/// Creates the project's own tables if they are missing. Looks first: `CREATE TABLE IF NOT
/// EXISTS` on an existing table still costs a few milliseconds of DDL on every run, and needs
/// the CREATE privilege that a user of existing tables may not have.
pub async fn migrate(conn: &mut MySqlConnection) -> Result<()> {
    let names: Vec<String> = MIGRATIONS.iter().map(|m| format!("'{}'", m.1)).collect();
    // The names are our own constants.
    let present: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({})",
        names.join(", ")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::Sink(format!("cannot list the project's tables: {e}")))?;
    for (name, table, sql) in MIGRATIONS {
        if present.iter().any(|t| t == table) {
            continue;
        }
        // Our own DDL, compiled into the binary.
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                Error::Sink(format!(
                "cannot create the project's table (migration {name}): {e}; the user needs the \
                 CREATE privilege on this database"
            ))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_migration_creates_the_table_it_is_checked_by() {
        for (name, table, sql) in MIGRATIONS {
            assert!(
                sql.contains(&format!("CREATE TABLE IF NOT EXISTS {table} (")),
                "{name} does not create {table}"
            );
        }
    }
}
