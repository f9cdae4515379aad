//! Where and as whom both MySQL drivers connect (sqlx for control and INSERT, `mysql_async`
//! for LOAD DATA LOCAL): `--mysql-url` parsed once, by sqlx's parser (the one its connections
//! use), the password from `--mysql-password` or the URL, and the run's one TLS policy. Both
//! drivers' options are built from this one target, so they cannot disagree on the host, the
//! user, the database or TLS.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::ConnectOptions;

use crate::config::{MysqlTls, SinkConfig, SslMode};
use crate::error::{scrub, Error, Result};

/// How long getting a MySQL connection may take, from either pool (sqlx's, and the LOAD DATA
/// path's `mysql_async` one); past it the attempt counts as a retriable failure.
pub(super) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Session settings every connection gets: strict mode so the server refuses instead of
/// truncating, explicit 0 kept in AUTO_INCREMENT columns, UTC for TIMESTAMP values,
/// backslash escapes on (the literal writer relies on them), and every warning of a statement
/// kept (up to the ceiling, `skipped::MAX_WARNINGS`) so that each row the server
/// skipped can be told a duplicate or not.
pub(super) const SESSION_INIT: &str =
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,\
NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', time_zone = '+00:00', \
max_error_count = 65535";

/// One MySQL server, user and database, with the run's TLS policy.
#[derive(Clone)]
pub(crate) struct MysqlTarget {
    /// The URL as sqlx parsed it, with the password, the TLS policy and the session settings.
    sqlx: MySqlConnectOptions,
    /// The password (sqlx keeps its copy to itself).
    password: Option<String>,
    tls: MysqlTls,
}

impl MysqlTarget {
    /// Parses `--mysql-url` (and takes `--mysql-password`, which wins over the URL's).
    pub(crate) fn parse(cfg: &SinkConfig) -> Result<MysqlTarget> {
        let secret = cfg.password.as_deref();
        let not_a_url = |e: &dyn std::fmt::Display| {
            Error::Config(format!(
                "--mysql-url '{}' is not a MySQL URL: {}",
                cfg.redacted_url(),
                scrub(&e.to_string(), secret)
            ))
        };
        let url = url::Url::parse(&cfg.url).map_err(|e| not_a_url(&e))?;
        let mut sqlx = MySqlConnectOptions::from_str(&cfg.url).map_err(|e| not_a_url(&e))?;
        // Decoded as sqlx decodes it: %XX only ('+' stays '+').
        let from_url = url.password().map(|p| {
            url::form_urlencoded::parse(format!("x={}", p.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        });
        let password = cfg.password.clone().or(from_url);
        if let Some(pw) = &cfg.password {
            sqlx = sqlx.password(pw);
        }
        sqlx = with_tls(sqlx, &cfg.tls)
            .charset("utf8mb4")
            .pipes_as_concat(false)
            .timezone(Some("+00:00".to_string()))
            // sqlx logs every statement, and slow ones whole at WARN: batches are megabytes of
            // row values. Logs never carry rows; slowness shows in the batch metrics.
            .disable_statement_logging();
        Ok(MysqlTarget {
            sqlx,
            password,
            tls: cfg.tls.clone(),
        })
    }

    /// sqlx's options for the control pool.
    pub(crate) fn sqlx_options(&self) -> MySqlConnectOptions {
        self.sqlx.clone()
    }

    /// `mysql_async`'s options for the LOAD DATA pool (at most `connections`), with the same
    /// host, port or socket, user, password, database and TLS as sqlx's, and `session_init`
    /// run on every connection. `tls_offered` (the control connection got TLS) decides
    /// `preferred`.
    pub(crate) fn mysql_async_opts(
        &self,
        session_init: &str,
        tls_offered: bool,
        connections: usize,
    ) -> mysql_async::Opts {
        let user = self.sqlx.get_username();
        let builder = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.sqlx.get_host())
            .tcp_port(self.sqlx.get_port())
            .socket(
                self.sqlx
                    .get_socket()
                    .map(|s| s.to_string_lossy().into_owned()),
            )
            .user((!user.is_empty()).then(|| user.to_string()))
            .pass(self.password.clone())
            .db_name(self.sqlx.get_database().map(str::to_string))
            // Connect where the URL says. By default the driver asks a server reached over TCP
            // for its @@socket and reconnects through that path on this machine: past any
            // proxy, and to whatever local server listens there.
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .init(vec![
                "SET NAMES utf8mb4".to_string(),
                session_init.to_string(),
            ])
            .pool_opts(
                mysql_async::PoolOpts::default()
                    .with_constraints(
                        mysql_async::PoolConstraints::new(0, connections.max(1))
                            .expect("0 <= connections"),
                    )
                    // Keep idle connections for the next batch. Without a TTL the pool keeps
                    // only `min` (0) idle ones, so every batch would connect anew.
                    .with_inactive_connection_ttl(Duration::from_secs(60))
                    .with_reset_connection(false),
            );
        builder.ssl_opts(ssl_opts(&self.tls, tls_offered)).into()
    }
}

/// sqlx's connect options with the run's TLS settings (they win over the URL's).
fn with_tls(options: MySqlConnectOptions, tls: &MysqlTls) -> MySqlConnectOptions {
    use sqlx::mysql::MySqlSslMode as M;
    let mut options = options.ssl_mode(match tls.mode {
        SslMode::Disabled => M::Disabled,
        SslMode::Preferred => M::Preferred,
        SslMode::Required => M::Required,
        SslMode::VerifyCa => M::VerifyCa,
        SslMode::VerifyIdentity => M::VerifyIdentity,
    });
    if let Some(ca) = &tls.ca {
        options = options.ssl_ca(ca);
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    options
}

/// The TLS of the LOAD DATA connection, by the same policy as sqlx's.
fn ssl_opts(tls: &MysqlTls, tls_offered: bool) -> Option<mysql_async::SslOpts> {
    let unchecked = || {
        mysql_async::SslOpts::default()
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true)
    };
    let mut ssl = match tls.mode {
        SslMode::Disabled => return None,
        SslMode::Preferred if !tls_offered => return None,
        SslMode::Preferred | SslMode::Required => unchecked(),
        SslMode::VerifyCa => {
            mysql_async::SslOpts::default().with_danger_skip_domain_validation(true)
        }
        SslMode::VerifyIdentity => mysql_async::SslOpts::default(),
    };
    if let Some(ca) = &tls.ca {
        if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyIdentity) {
            ssl = ssl.with_root_certs(vec![ca.clone().into()]);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        ssl = ssl.with_client_identity(Some(mysql_async::ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    Some(ssl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SslMode, WriteMode};

    #[test]
    fn sqlx_url_parameters_map_to_mysql_async() {
        let cfg = |url: &str| SinkConfig {
            url: url.into(),
            password: None,
            table: "t".into(),
            mode: WriteMode::Insert,
            strategy: Default::default(),
            batch_rows: Some(1),
            batch_bytes: 1,
            writers: Some(2),
            retry_budget: std::time::Duration::from_secs(1),
            io_timeout: std::time::Duration::from_secs(1),
            tls: Default::default(),
        };
        let opts = |url: &str, tls_offered| {
            MysqlTarget::parse(&cfg(url))
                .unwrap()
                .mysql_async_opts("", tls_offered, 2)
        };
        let o = opts("mysql://u%40x:p%2Fw@db.example:3307/my%20db", false);
        assert_eq!(o.ip_or_hostname(), "db.example");
        assert_eq!(o.tcp_port(), 3307);
        assert_eq!(o.user(), Some("u@x"));
        assert_eq!(o.pass(), Some("p/w"));
        assert_eq!(o.db_name(), Some("my db"));
        assert!(o.ssl_opts().is_none());
        assert!(
            !o.prefer_socket(),
            "a TCP URL must never switch to the server's Unix socket"
        );
        assert_eq!(o.socket(), None);
        let o = opts("mysql://u@localhost/db?socket=%2Frun%2Fm.sock", false);
        assert_eq!(o.socket(), Some("/run/m.sock"));
        // One policy with sqlx: preferred takes TLS when the control connection got it.
        assert!(opts("mysql://u@h/db", true).ssl_opts().is_some());
        // A password given apart wins over the URL's; a '+' in the URL's is a '+', as sqlx
        // reads it.
        let apart = SinkConfig {
            password: Some("s3cret".into()),
            ..cfg("mysql://u:x@h/db")
        };
        let apart = MysqlTarget::parse(&apart).unwrap();
        assert_eq!(apart.mysql_async_opts("", false, 1).pass(), Some("s3cret"));
        assert_eq!(opts("mysql://u:a+b@h/db", false).pass(), Some("a+b"));
        // Not a URL: a configuration error that names the option, without the password.
        let Err(bad) = MysqlTarget::parse(&cfg("mysql://u:pw@h:notaport/db")) else {
            panic!("a port that is not a number was taken");
        };
        assert!(bad.to_string().contains("--mysql-url"), "{bad}");
        assert!(!bad.to_string().contains("pw@"), "{bad}");
        let tls = |mode| MysqlTls {
            mode,
            ..Default::default()
        };
        assert!(ssl_opts(&tls(SslMode::Required), false).is_some());
        assert!(ssl_opts(&tls(SslMode::Disabled), true).is_none());
        let verify = ssl_opts(&tls(SslMode::VerifyIdentity), false).unwrap();
        assert!(!verify.accept_invalid_certs() && !verify.skip_domain_validation());
        let ca_only = ssl_opts(&tls(SslMode::VerifyCa), false).unwrap();
        assert!(!ca_only.accept_invalid_certs() && ca_only.skip_domain_validation());
    }
}
