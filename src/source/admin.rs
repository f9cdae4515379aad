//! The Pulsar admin REST API, asked one thing: which message of a partition was published at
//! or after a time (`GET /admin/v2/<topic>/messageid/<ms>`), so a publish-time window starts
//! there instead of at the partition's beginning.
//!
//! The token goes along as `Authorization: Bearer`, over https (trusting the broker's CA,
//! `--pulsar-tls-ca-file`), or over http only when the user allowed it; the configuration
//! refuses a token with an http admin URL at start ([`crate::config::Config::validate`]), and
//! a redirect to plain http is not followed with it. Any failure here only costs time: the
//! reader then scans the partition from its beginning and skips what lies before the window.

use super::Position;
use crate::config::SourceConfig;
use crate::error::redact_url;
use crate::http;

/// Redirects followed (a broker that does not own the topic answers 307 to its owner).
const MAX_REDIRECTS: usize = 3;

/// What the admin API said.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// The first message published at or after the time.
    Found(Position),
    /// No such message (or another refusal): the status and the start of the body.
    NotFound(u16, String),
}

/// The admin API's answer to "which message was published at or after `ms`", or `None`
/// (with the reason logged) when it cannot tell: the reader then scans from the start.
pub(super) async fn message_id_at(cfg: &SourceConfig, topic: &str, ms: i64) -> Option<Position> {
    match ask(cfg, topic, ms).await {
        Ok(Answer::Found(position)) => {
            tracing::debug!(%topic, ms, %position, "window start found by the admin API");
            Some(position)
        }
        Ok(Answer::NotFound(status, detail)) => {
            tracing::info!(%topic, ms, status, %detail, "the admin API names no message at the window start; reading the partition from its beginning");
            None
        }
        Err(error) => {
            tracing::warn!(%topic, ms, %error, "cannot ask the admin API where the window starts; reading the partition from its beginning");
            None
        }
    }
}

async fn ask(cfg: &SourceConfig, topic: &str, ms: i64) -> Result<Answer, String> {
    let base = cfg.admin_base_url()?;
    let path = topic.replacen("://", "/", 1);
    let mut url = url::Url::parse(&format!(
        "{}/admin/v2/{path}/messageid/{ms}",
        base.as_str().trim_end_matches('/')
    ))
    .map_err(|e| format!("cannot build the admin URL for {topic}: {e}"))?;
    let pem = match &cfg.tls_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| format!("cannot read --pulsar-tls-ca-file {path}: {e}"))?,
        ),
        None => None,
    };
    let client = http::Client::new(pem.as_deref())?;
    for _ in 0..=MAX_REDIRECTS {
        let shown = redact_url(url.as_str());
        let mut headers = Vec::new();
        if let Some(token) = &cfg.auth_token {
            if !cfg.token_may_go_to(&url) {
                return Err(format!(
                    "the admin API sent us to {shown}, plain http; the token is not sent there \
                     without --pulsar-admin-allow-insecure-token"
                ));
            }
            headers.push(("Authorization", format!("Bearer {}", token.trim())));
        }
        let reply = client
            .request("GET", &url, &headers, "")
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        match reply.status {
            200 => return parse_message_id(&reply.body).map(Answer::Found),
            301 | 302 | 303 | 307 | 308 => {
                let to = reply.location.ok_or_else(|| {
                    format!("{shown} answered {} without a Location", reply.status)
                })?;
                url = url
                    .join(&to)
                    .map_err(|e| format!("{shown} redirected to an invalid URL: {e}"))?;
            }
            status => {
                let detail = reply.body.trim().chars().take(200).collect();
                return Ok(Answer::NotFound(status, detail));
            }
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// `{"ledgerId":1,"entryId":2,...}` as the admin API writes a message id.
fn parse_message_id(body: &str) -> Result<Position, String> {
    let unexpected = || {
        let excerpt: String = body.chars().take(200).collect();
        format!("unexpected reply to a message id request: {excerpt:?}")
    };
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| unexpected())?;
    match (v["ledgerId"].as_i64(), v["entryId"].as_i64()) {
        (Some(ledger), Some(entry)) => Ok(Position::new(ledger, entry, -1)),
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_read_and_anything_else_is_an_error() {
        assert_eq!(
            parse_message_id(r#"{"ledgerId":12,"entryId":3,"partitionIndex":-1}"#),
            Ok(Position::new(12, 3, -1))
        );
        for body in [
            "",
            "null",
            "{}",
            r#"{"ledgerId":"12","entryId":3}"#,
            "<html>",
        ] {
            assert!(parse_message_id(body).is_err(), "{body}");
        }
    }
}
