//! Why a connect attempt failed, when retrying will not help: an untrusted certificate or a
//! refused token look, to pulsar-rs, like any other fatal connect error. Told apart here so
//! the run ends with a configuration error that names the setting to fix, instead of spending
//! its retry budget.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulsar::error::AuthenticationError;
use pulsar::{PulsarBuilder, TokioExecutor};

use crate::config::SourceConfig;
use crate::error::Error;

/// How long every connect attempt must end in the same [`ConnectRefusal`] before the run gives
/// up on it (with the default backoff: the fifth attempt).
pub(super) const REFUSAL_IS_FINAL_AFTER: Duration = Duration::from_secs(3);

/// A connect failure that retrying will not fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnectRefusal {
    /// The TCP connection opens but the TLS handshake fails: the broker's certificate is not
    /// trusted or names another host, or the port does not speak TLS.
    TlsHandshake,
    /// The broker ends the connection in answer to CONNECT: it refused the token (or, without
    /// one, requires authentication); with `pulsar://`, the port may also expect TLS.
    Credentials,
}

impl ConnectRefusal {
    /// The error a run ends with: a configuration error (exit code 2), since only other
    /// settings (token, CA file, URL) can fix it. Never contains the token.
    pub(super) fn into_error(self, cfg: &SourceConfig) -> Error {
        let url = crate::error::redact_url(&cfg.service_url);
        let tls_port_hint = if cfg.service_url.starts_with("pulsar://") {
            "; or, if that port is the broker's TLS port, use a pulsar+ssl:// URL"
        } else {
            ""
        };
        let give_token = "through --pulsar-token-file, PULSAR2MYSQL_PULSAR_TOKEN or --pulsar-token";
        Error::Config(match (self, &cfg.auth_token) {
            (ConnectRefusal::Credentials, Some(_)) => format!(
                "Pulsar at {url} refused the token (authentication failed): give a token this \
                 broker accepts (signed with its key, not expired) {give_token}{tls_port_hint}"
            ),
            (ConnectRefusal::Credentials, None) => format!(
                "Pulsar at {url} refused a connection without credentials: the broker requires \
                 authentication; give a token {give_token}{tls_port_hint}"
            ),
            (ConnectRefusal::TlsHandshake, _) => format!(
                "TLS handshake with {url} failed: the broker's certificate is not trusted ({}) \
                 or does not name the host of the URL; or the port does not speak TLS",
                match &cfg.tls_ca_file {
                    Some(f) => format!("it is not signed by a CA in --pulsar-tls-ca-file {f}"),
                    None => "for a self-signed or private CA, give the CA certificate with \
                             --pulsar-tls-ca-file"
                        .into(),
                }
            ),
        })
    }
}

/// Credentials that note whether pulsar-rs asked for them. It asks once the TCP connection and
/// the TLS handshake succeeded, right before it sends CONNECT, which is how
/// [`diagnose_connect_failure`] tells a refused handshake from a refused CONNECT. Without a
/// token it sends the method `none`, which brokers treat like no credentials at all.
struct ObservedCredentials {
    method: &'static str,
    data: Vec<u8>,
    asked: Arc<AtomicBool>,
}

// What #[async_trait] would generate (the crate is not a dependency of ours).
impl pulsar::authentication::Authentication for ObservedCredentials {
    fn auth_method_name(&self) -> String {
        self.method.into()
    }

    fn initialize<'s, 'f>(
        &'s mut self,
    ) -> Pin<Box<dyn Future<Output = Result<(), AuthenticationError>> + Send + 'f>>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(async { Ok(()) })
    }

    fn auth_data<'s, 'f>(
        &'s mut self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, AuthenticationError>> + Send + 'f>>
    where
        's: 'f,
        Self: 'f,
    {
        self.asked.store(true, Ordering::SeqCst);
        let data = self.data.clone();
        Box::pin(async move { Ok(data) })
    }
}

/// After a failed connect: is the failure one that retrying will not fix? pulsar-rs reports
/// every failure it does not retry itself (an untrusted certificate, a refused token, a
/// dropped connection) as the same "fatal error when connecting"; the cause is only in its
/// log. One more attempt, with [`ObservedCredentials`], shows how far a connection gets.
/// `None`: it went through this time, or failed in a way worth retrying (broker down, slow).
pub(super) async fn diagnose_connect_failure(
    probe: PulsarBuilder<TokioExecutor>,
    cfg: &SourceConfig,
) -> Option<ConnectRefusal> {
    let asked = Arc::new(AtomicBool::new(false));
    let (method, data) = match &cfg.auth_token {
        Some(token) => ("token", token.trim().as_bytes().to_vec()),
        None => ("none", Vec::new()),
    };
    let probe = probe.with_auth_provider(Box::new(ObservedCredentials {
        method,
        data,
        asked: asked.clone(),
    }));
    match probe.build().await {
        Err(pulsar::Error::Connection(e)) if !e.establish_retryable() => {}
        _ => return None,
    }
    if asked.load(Ordering::SeqCst) {
        return Some(ConnectRefusal::Credentials);
    }
    // It did not get as far as CONNECT: no TCP connection (worth retrying), or no TLS session.
    let tls_handshake_failed =
        cfg.service_url.starts_with("pulsar+ssl://") && tcp_connects(&cfg.service_url).await;
    tls_handshake_failed.then_some(ConnectRefusal::TlsHandshake)
}

/// The refusal attempts have ended in without a break, and since when: the same one keeps
/// its start, another one starts anew, a failure worth retrying ends the streak.
pub(super) fn refusal_streak(
    now: Option<ConnectRefusal>,
    before: Option<(ConnectRefusal, tokio::time::Instant)>,
) -> Option<(ConnectRefusal, tokio::time::Instant)> {
    match (now, before) {
        (Some(now), Some((before, since))) if now == before => Some((now, since)),
        (Some(now), _) => Some((now, tokio::time::Instant::now())),
        (None, _) => None,
    }
}

/// Whether a plain TCP connection to the URL's host and port opens within a few seconds.
async fn tcp_connects(service_url: &str) -> bool {
    let Ok(url) = url::Url::parse(service_url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port().unwrap_or(6651); // only asked about pulsar+ssl:// URLs
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((host, port))
        )
        .await,
        Ok(Ok(_))
    )
}
