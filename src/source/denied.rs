//! A broker with authorization on that refuses this client's role what a run needs (to look
//! up, subscribe to or read the topic): told apart from a transient failure, so that the run
//! ends at once with a configuration error naming the role and the permission to grant,
//! instead of retrying until its budget is spent.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::Error;

/// Whether a client error is the broker refusing the role a permission.
pub(super) fn is_denied(error: &str) -> bool {
    error.contains("AuthorizationError") || error.contains("is not authorized")
}

/// The role the broker sees: a token's subject (its `sub` claim, not a secret), or the
/// broker's anonymous role when no token is given.
pub(super) fn role_of(token: Option<&str>) -> String {
    let Some(token) = token else {
        return "the anonymous role (no token given)".into();
    };
    let subject = token
        .trim()
        .split('.')
        .nth(1)
        .and_then(|claims| URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|claims| claims["sub"].as_str().map(str::to_string));
    match subject {
        Some(role) => format!("role {role}"),
        None => "the token's role".into(),
    }
}

/// The error a denied run ends with: exit 2, the role, the topic, and the grant that fixes it.
pub(super) fn denied(role: &str, topic: &str, doing: &str, error: &str) -> Error {
    let namespace = namespace_of(topic).unwrap_or("<tenant>/<namespace>");
    let grant_role = role.strip_prefix("role ").unwrap_or("<role>").to_string();
    Error::Config(format!(
        "the Pulsar broker does not let {role} {doing} {topic} ({error}): a run needs the \
         consume permission on namespace {namespace} (or on the topic), e.g. `pulsar-admin \
         namespaces grant-permission {namespace} --role {grant_role} --actions consume`; a retry \
         cannot help"
    ))
}

/// `tenant/namespace` of a full topic name (`persistent://tenant/namespace/name`).
pub(super) fn namespace_of(topic: &str) -> Option<&str> {
    let path = topic.split_once("://")?.1;
    let (namespace, _name) = path.rsplit_once('/')?;
    namespace.contains('/').then_some(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_of_full_topic_names() {
        assert_eq!(
            namespace_of("persistent://public/default/t"),
            Some("public/default")
        );
        assert_eq!(
            namespace_of("non-persistent://a/b/c-partition-3"),
            Some("a/b")
        );
        assert_eq!(namespace_of("t"), None);
    }

    #[test]
    fn the_role_is_the_tokens_subject() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"p2m-consumer"}"#);
        assert_eq!(
            role_of(Some(&format!("h.{claims}.sig"))),
            "role p2m-consumer"
        );
        assert_eq!(role_of(Some("garbage")), "the token's role");
        assert!(role_of(None).contains("anonymous"));
        let e = denied(
            "role r",
            "persistent://public/lp/t",
            "subscribe to",
            "AuthorizationError",
        )
        .to_string();
        assert!(
            e.contains("--role r --actions consume") && e.contains("public/lp"),
            "{e}"
        );
    }
}
