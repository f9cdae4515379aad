//! The Pulsar side of a run: the topic in the full form the broker and the checkpoints need,
//! and where the admin API lives (it gets the token, so its scheme matters).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::{EndBound, StartBound};

/// A topic in full form. Short forms are expanded the way Pulsar does:
/// `test` -> `persistent://public/default/test`, `t/ns/x` -> `persistent://t/ns/x`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicName(pub String);

impl FromStr for TopicName {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("topic is empty".into());
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            if scheme != "persistent" && scheme != "non-persistent" {
                return Err(format!(
                    "topic '{s}': the domain must be persistent:// or non-persistent://"
                ));
            }
            if rest.split('/').count() != 3 || rest.split('/').any(str::is_empty) {
                return Err(format!(
                    "topic '{s}': expected {scheme}://tenant/namespace/topic"
                ));
            }
            return Ok(TopicName(s.to_string()));
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [t] if !t.is_empty() => Ok(TopicName(format!("persistent://public/default/{t}"))),
            [tenant, ns, t] if parts.iter().all(|p| !p.is_empty()) => {
                Ok(TopicName(format!("persistent://{tenant}/{ns}/{t}")))
            }
            _ => Err(format!(
                "topic '{s}': use 'name', 'tenant/namespace/name' or 'persistent://tenant/namespace/name'"
            )),
        }
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Pulsar side.
#[derive(Clone)]
pub struct SourceConfig {
    pub service_url: String,
    /// Admin REST API, used to find where a publish-time window starts without scanning the
    /// partition from its beginning. `None`: derived from the service URL, see
    /// [`SourceConfig::admin_base_url`].
    pub admin_url: Option<String>,
    /// Send the token to an `http://` admin URL (in clear text). Without it, a token and a
    /// publish-time `from` with a plain-http admin URL are a configuration error.
    pub admin_allow_insecure_token: bool,
    pub topic: TopicName,
    /// Restrict the run to these partition indexes (partitioned topics only).
    pub partitions: Option<Vec<u32>>,
    pub from: StartBound,
    pub to: EndBound,
    /// JWT for token authentication; never logged.
    pub auth_token: Option<String>,
    /// PEM bundle of CA certificates to trust for `pulsar+ssl://`.
    pub tls_ca_file: Option<String>,
    /// When the end bound is `(ledger, -1)` the broker cannot tell where the data ends; stop after
    /// this long without a message.
    pub idle_timeout: Duration,
    /// Total time allowed for reconnecting to the broker before the run fails.
    pub retry_budget: Duration,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("service_url", &crate::error::redact_url(&self.service_url))
            .field(
                "admin_url",
                &self.admin_url.as_deref().map(crate::error::redact_url),
            )
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("from", &self.from)
            .field("to", &self.to)
            .field(
                "admin_allow_insecure_token",
                &self.admin_allow_insecure_token,
            )
            .field("auth_token", &self.auth_token.as_ref().map(|_| "***"))
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

impl SourceConfig {
    /// The admin REST API's base URL: `--pulsar-admin-url`, or the service URL's host with
    /// the broker's default web ports: `https://<host>:8443` for `pulsar+ssl://`,
    /// `http://<host>:8080` for `pulsar://`.
    pub fn admin_base_url(&self) -> std::result::Result<url::Url, String> {
        let raw = match &self.admin_url {
            Some(u) => u.clone(),
            None => {
                let cannot = |why: &str| {
                    format!(
                        "cannot derive the Pulsar admin URL from --pulsar-url {} ({why}); give \
                         --pulsar-admin-url",
                        crate::error::redact_url(&self.service_url)
                    )
                };
                let service =
                    url::Url::parse(&self.service_url).map_err(|e| cannot(&e.to_string()))?;
                let host = service.host_str().ok_or_else(|| cannot("no host"))?;
                match service.scheme() {
                    "pulsar+ssl" => format!("https://{host}:8443"),
                    _ => format!("http://{host}:8080"),
                }
            }
        };
        let bad = |why: &str| {
            format!(
                "--pulsar-admin-url {}: {why}",
                crate::error::redact_url(&raw)
            )
        };
        let url = url::Url::parse(&raw).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must start with http:// or https://"));
        }
        if url.host_str().is_none() {
            return Err(bad("the URL has no host"));
        }
        Ok(url)
    }

    /// Whether the token may be sent to `url`: over https, or over http when the user allowed
    /// it explicitly.
    pub fn token_may_go_to(&self, url: &url::Url) -> bool {
        url.scheme() == "https" || self.admin_allow_insecure_token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_short_and_full_forms() {
        let t = |s: &str| s.parse::<TopicName>().unwrap().0;
        assert_eq!(t("test"), "persistent://public/default/test");
        assert_eq!(t("public/default/test"), "persistent://public/default/test");
        assert_eq!(t("persistent://a/b/c"), "persistent://a/b/c");
        assert!("a/b".parse::<TopicName>().is_err());
        assert!("http://a/b/c".parse::<TopicName>().is_err());
    }
}
