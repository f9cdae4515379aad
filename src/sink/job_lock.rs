//! The job lock: `GET_LOCK` held on a connection of its own for the whole run, kept alive and
//! watched, so a second run of the same job stops at once and a lost lock stops the run.

use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlConnection};

use crate::error::{Error, Result};

/// Holds `GET_LOCK` for a job on a dedicated connection for as long as it lives; a second run
/// of the same job fails at once instead of interleaving with this one. The server releases
/// the lock when the connection closes, so a killed run never leaves it behind.
pub struct JobLock {
    conn: Option<PoolConnection<MySql>>,
    name: String,
    /// The server thread of `conn`, which `IS_USED_LOCK` names while the lock is ours.
    thread: i64,
}

/// The lock connection's `wait_timeout`, in seconds: many times the keep-alive's period (2 s),
/// so a live run never idles that long, yet short enough that the lock of a run whose host
/// died or was cut off (no FIN ever reaches the server) is freed in about a minute instead of
/// the server's default 8 hours.
pub const LOCK_IDLE_TIMEOUT_SECS: u32 = 60;

/// Takes the lock on `conn` after shortening its idle timeout: the lock lives exactly as long
/// as that session. `(GET_LOCK's answer, the session's thread id)`.
async fn take_on(conn: &mut MySqlConnection, name: &str) -> sqlx::Result<(Option<i64>, i64)> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET SESSION wait_timeout = {LOCK_IDLE_TIMEOUT_SECS}"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query_as("SELECT GET_LOCK(?, 0), CAST(CONNECTION_ID() AS SIGNED)")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
}

/// `GET_LOCK` names are limited to 64 characters: a readable prefix plus a hash of the job id.
pub fn lock_name(job_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(job_id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("pulsar2mysql:{hex}")
}

impl JobLock {
    /// Takes the lock or fails with [`Error::Locked`].
    pub async fn acquire(mut conn: PoolConnection<MySql>, job_id: &str) -> Result<JobLock> {
        let name = lock_name(job_id);
        let (got, thread) = take_on(&mut conn, &name)
            .await
            .map_err(|e| Error::Sink(format!("cannot take the job lock: {e}")))?;
        match got {
            Some(1) => Ok(JobLock {
                conn: Some(conn),
                name,
                thread,
            }),
            _ => Err(Error::Locked(job_id.to_string())),
        }
    }

    /// The connection holding the lock, for the run's other setup queries (saves opening a
    /// second one). Never for a transaction: the lock must outlive any rollback.
    pub fn connection(&mut self) -> &mut MySqlConnection {
        self.conn.as_mut().expect("held until released")
    }

    /// Keeps the lock's connection alive for the rest of the run: every `every`, it asks the
    /// server (within `limit`) whether this connection still holds the lock. The activity keeps
    /// `wait_timeout` and idle proxies from closing it. Only evidence counts as a loss: the
    /// server saying the lock is not this connection's, or the connection failing (`KILL`, a
    /// server restart). A connection that merely stops answering (a silent partition) is kept
    /// open, since closing it would release the lock, and the question goes through `pool`
    /// instead. A lost lock is taken again on a new connection when nobody else holds it
    /// (within `budget`); when another run does, or the server stays away, `lost` is cancelled
    /// and the keeper ends with the error, so the run stops instead of going on unprotected.
    pub fn keep_alive(
        mut self,
        pool: sqlx::MySqlPool,
        every: std::time::Duration,
        limit: std::time::Duration,
        budget: std::time::Duration,
        lost: tokio_util::sync::CancellationToken,
    ) -> LockKeeper {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut answering = true;
            loop {
                tokio::select! {
                    _ = &mut stopped => {
                        if answering {
                            self.release(limit).await;
                        }
                        return None;
                    }
                    () = tokio::time::sleep(every) => {}
                }
                let why = if answering {
                    match self.ask_own_connection(limit).await {
                        Ok(Some(true)) => continue,
                        Ok(Some(false)) => "the server says another connection holds it".into(),
                        Ok(None) => {
                            answering = false; // kept open; asked through the pool from now on
                            continue;
                        }
                        Err(e) => format!("its connection failed: {e}"),
                    }
                } else {
                    match self.ask_pool(&pool, limit).await {
                        // Still ours, or no answer yet (the batches' own deadlines and fences
                        // decide then).
                        Some(true) | None => continue,
                        Some(false) => "its connection stopped answering and the server no \
                                        longer holds it for this run"
                            .into(),
                    }
                };
                match self.retake(&pool, limit, budget).await {
                    Ok(()) => {
                        tracing::warn!(cause = %why, "the job lock was lost and is held again");
                        answering = true;
                    }
                    Err(e) => {
                        lost.cancel();
                        return Some(e(format!(
                            "the job lock was lost in the middle of the run ({why})"
                        )));
                    }
                }
            }
        });
        LockKeeper { stop, task }
    }

    /// Whether this connection still holds the lock; `None` when it did not answer in time.
    async fn ask_own_connection(
        &mut self,
        limit: std::time::Duration,
    ) -> std::result::Result<Option<bool>, sqlx::Error> {
        let name = self.name.clone();
        let held = tokio::time::timeout(
            limit,
            sqlx::query_scalar::<_, Option<i64>>("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
                .bind(name)
                .fetch_one(self.connection()),
        )
        .await;
        match held {
            Ok(Ok(held)) => Ok(Some(held == Some(1))),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Whether the server still names this lock's connection as its holder, asked on another
    /// connection; `None` when there is no answer.
    async fn ask_pool(&self, pool: &sqlx::MySqlPool, limit: std::time::Duration) -> Option<bool> {
        let holder = tokio::time::timeout(limit, async {
            let mut conn = pool.acquire().await?;
            sqlx::query_scalar::<_, Option<i64>>("SELECT IS_USED_LOCK(?)")
                .bind(&self.name)
                .fetch_one(&mut *conn)
                .await
        })
        .await;
        match holder {
            Ok(Ok(holder)) => Some(holder == Some(self.thread)),
            _ => None,
        }
    }

    /// Takes the lock again on a new connection; the error (a function of what happened
    /// before) says why it could not.
    async fn retake(
        &mut self,
        pool: &sqlx::MySqlPool,
        limit: std::time::Duration,
        budget: std::time::Duration,
    ) -> std::result::Result<(), fn(String) -> Error> {
        let mut backoff = crate::error::Backoff::new(budget);
        loop {
            let attempt = tokio::time::timeout(limit, async {
                let mut conn = pool.acquire().await?;
                let got = take_on(&mut conn, &self.name).await?;
                Ok::<_, sqlx::Error>((conn, got))
            })
            .await;
            match attempt {
                Ok(Ok((conn, (Some(1), thread)))) => {
                    if let Some(old) = self.conn.replace(conn) {
                        drop(old.detach());
                    }
                    self.thread = thread;
                    return Ok(());
                }
                Ok(Ok(_)) => {
                    return Err(|why| {
                        Error::Fenced(format!(
                            "{why}, and another run of the same job holds it now; this run \
                             stopped reading, its batches in flight committed through their \
                             fences, and a re-run continues where it stopped"
                        ))
                    })
                }
                _ if backoff.wait().await => continue,
                _ => {
                    return Err(|why| {
                        Error::Sink(format!(
                            "{why}, and it could not be taken again within the retry budget; \
                             reading stopped so that no second run could write beside this \
                             one, and a re-run continues where it stopped"
                        ))
                    })
                }
            }
        }
    }

    /// Releases the lock explicitly, waiting at most `limit` for the server; a connection that
    /// does not answer is closed instead, which releases the lock on the server just as well.
    pub async fn release(mut self, limit: std::time::Duration) {
        if let Some(mut conn) = self.conn.take() {
            let released = tokio::time::timeout(
                limit,
                sqlx::query("SELECT RELEASE_LOCK(?)")
                    .bind(&self.name)
                    .execute(&mut *conn),
            )
            .await;
            if !matches!(released, Ok(Ok(_))) {
                drop(conn.detach());
            }
        }
    }
}

/// A job lock kept alive in the background (see [`JobLock::keep_alive`]).
pub struct LockKeeper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Option<Error>>,
}

impl LockKeeper {
    /// Releases the lock; returns the error that ended the run's hold on it, if one did.
    pub async fn release(self) -> Option<Error> {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap_or_else(|e| Some(Error::Sink(format!("the job lock's keeper stopped: {e}"))))
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Never return a connection holding the lock to the pool.
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_mysql_limit() {
        let n = lock_name(&"x".repeat(500));
        assert!(n.len() <= 64, "{n}");
        assert_ne!(lock_name("a"), lock_name("b"));
    }
}
