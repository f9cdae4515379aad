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
    let (status, body) = get(cfg, topic, &format!("messageid/{ms}")).await?;
    match status {
        200 => parse_message_id(&body).map(Answer::Found),
        status => Ok(Answer::NotFound(
            status,
            body.trim().chars().take(200).collect(),
        )),
    }
}

/// The last entry of the partition in a ledger before `ledger` (the current one, which the
/// broker says holds nothing yet), from the topic's internal stats; `None` when no earlier
/// ledger holds an entry (the partition is really empty). An error when the admin API cannot
/// tell: the caller must not guess where the partition ends.
pub(super) async fn last_entry_before(
    cfg: &SourceConfig,
    topic: &str,
    ledger: i64,
) -> Result<Option<Position>, String> {
    let (status, body) = get(cfg, topic, "internalStats").await?;
    if status != 200 {
        let detail: String = body.trim().chars().take(200).collect();
        return Err(format!(
            "the admin API answered {status} to the internal stats of {topic}: {detail}"
        ));
    }
    last_entry_in_stats(&body, ledger)
}

/// [`last_entry_before`]'s reading of an internal-stats reply: the newest ledger before
/// `ledger` with at least one entry, and its last entry.
fn last_entry_in_stats(body: &str, ledger: i64) -> Result<Option<Position>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        let excerpt: String = body.chars().take(200).collect();
        format!("unexpected internal stats: {excerpt:?}")
    })?;
    let ledgers = v["ledgers"]
        .as_array()
        .ok_or("the internal stats list no ledgers")?;
    let mut last = None;
    for l in ledgers {
        let (Some(id), Some(entries)) = (l["ledgerId"].as_i64(), l["entries"].as_i64()) else {
            return Err(format!(
                "a ledger of the internal stats has no id or count: {l}"
            ));
        };
        if id < ledger && entries > 0 && last.is_none_or(|p: Position| id > p.ledger_id) {
            last = Some(Position::new(id, entries - 1, -1));
        }
    }
    Ok(last)
}

/// `GET <admin>/admin/v2/<topic path>/<what>`, following redirects, with the token where it
/// may go: the status and the body.
async fn get(cfg: &SourceConfig, topic: &str, what: &str) -> Result<(u16, String), String> {
    let base = cfg.admin_base_url()?;
    let path = topic.replacen("://", "/", 1);
    let mut url = url::Url::parse(&format!(
        "{}/admin/v2/{path}/{what}",
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
            301 | 302 | 303 | 307 | 308 => {
                let to = reply.location.ok_or_else(|| {
                    format!("{shown} answered {} without a Location", reply.status)
                })?;
                url = url
                    .join(&to)
                    .map_err(|e| format!("{shown} redirected to an invalid URL: {e}"))?;
            }
            status => return Ok((status, reply.body)),
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

    /// A ledger rolled over and still empty: the end is the last entry of the newest earlier
    /// ledger that holds any (an empty ledger between them is passed over).
    #[test]
    fn last_entry_before_an_empty_current_ledger() {
        let stats = r#"{"entriesAddedCounter":12,"lastConfirmedEntry":"9:-1","ledgers":[
            {"ledgerId":5,"entries":10,"size":100,"offloaded":false},
            {"ledgerId":7,"entries":0,"size":0,"offloaded":false},
            {"ledgerId":9,"entries":0,"size":0,"offloaded":false}]}"#;
        assert_eq!(
            last_entry_in_stats(stats, 9),
            Ok(Some(Position::new(5, 9, -1)))
        );
        // Pulsar 4.0.8's own reply right after an unload (ledger 5 opened, empty).
        let real = r#"{"entriesAddedCounter":0,"numberOfEntries":3,"totalSize":123,"currentLedgerEntries":0,"currentLedgerSize":0,"lastLedgerCreatedTimestamp":"2026-12-06T16:06:52.317Z","waitingCursorsCount":0,"pendingAddEntriesCount":0,"lastConfirmedEntry":"3:2","state":"LedgerOpened","ledgers":[{"ledgerId":3,"entries":3,"size":123,"offloaded":false,"underReplicated":false},{"ledgerId":5,"entries":0,"size":0,"offloaded":false,"underReplicated":false}],"cursors":{},"schemaLedgers":[{"ledgerId":4,"entries":1,"size":140,"offloaded":false,"underReplicated":false}],"compactedLedger":{"ledgerId":-1,"entries":-1,"size":-1,"offloaded":false,"underReplicated":false}}"#;
        assert_eq!(
            last_entry_in_stats(real, 5),
            Ok(Some(Position::new(3, 2, -1)))
        );
        let empty = r#"{"ledgers":[{"ledgerId":3,"entries":0}]}"#;
        assert_eq!(last_entry_in_stats(empty, 3), Ok(None));
        assert!(last_entry_in_stats("<html>", 3).is_err());
        assert!(last_entry_in_stats(r#"{"ledgers":[{"entries":1}]}"#, 3).is_err());
    }
    use crate::config::{EndBound, StartBound};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn source(admin_url: &str, allow_insecure_token: bool) -> SourceConfig {
        SourceConfig {
            service_url: "pulsar://127.0.0.1:6650".into(),
            admin_url: Some(admin_url.into()),
            admin_allow_insecure_token: allow_insecure_token,
            topic: "t".parse().unwrap(),
            partitions: None,
            from: StartBound::PublishTime(1_700_000_000_000),
            to: EndBound::Latest,
            auth_token: Some("s3cr3t".into()),
            tls_ca_file: None,
            idle_timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(1),
        }
    }

    /// Answers `replies.len()` connections in turn, each with its reply; returns the address
    /// and the request heads received.
    async fn serve(replies: Vec<String>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = tokio::spawn(async move {
            let mut heads = Vec::new();
            for reply in replies {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                heads.push(String::from_utf8_lossy(&head).into_owned());
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            }
            heads
        });
        (addr, heads)
    }

    #[tokio::test]
    async fn a_redirect_is_followed_with_the_token_only_where_it_may_go() {
        let found = r#"{"ledgerId":7,"entryId":9}"#;
        let (addr, heads) = serve(vec![
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: /owner/messageid\r\nContent-Length: 0\r\n\r\n".into(),
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{found}", found.len()),
        ])
        .await;
        let cfg = source(&format!("http://{addr}"), true);
        let answer = ask(&cfg, "persistent://public/default/t", 5).await.unwrap();
        assert_eq!(answer, Answer::Found(Position::new(7, 9, -1)));
        let heads = heads.await.unwrap();
        assert!(heads[0].starts_with("GET /admin/v2/persistent/public/default/t/messageid/5 "));
        assert!(heads[1].starts_with("GET /owner/messageid "));
        assert!(
            heads.iter().all(|h| h.contains("Bearer s3cr3t")),
            "{heads:?}"
        );

        // Not allowed over http: nothing is sent at all.
        let cfg = source(&format!("http://{addr}"), false);
        let err = ask(&cfg, "persistent://public/default/t", 5)
            .await
            .unwrap_err();
        assert!(err.contains("--pulsar-admin-allow-insecure-token"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");

        // A 404 is "no message there", with the broker's reason.
        let (addr, _) = serve(vec![
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".into(),
        ])
        .await;
        let cfg = source(&format!("http://{addr}"), true);
        assert_eq!(
            ask(&cfg, "persistent://public/default/t", 5).await.unwrap(),
            Answer::NotFound(404, "not found".into())
        );
    }

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
