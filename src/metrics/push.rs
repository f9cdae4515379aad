//! The push to a Pushgateway at the end of a run: the job's group
//! (`job=pulsar2mysql`, `job_id@base64`), replaced by a success (PUT) and updated by a failure
//! (POST, which keeps an earlier run's last success timestamp). Its own small client over
//! [`crate::http`]: basic auth from the URL, http or https.

use base64::Engine as _;

use super::{CONTENT_TYPE, PUSH_JOB};

/// The Pushgateway path of a job's group: `/metrics/job/pulsar2mysql/job_id@base64/<id>`
/// (base64url, so any job id, slashes included, is one path segment).
pub fn push_path(job_id: &str) -> String {
    format!(
        "/metrics/job/{PUSH_JOB}/job_id@base64/{}",
        base64::engine::general_purpose::URL_SAFE.encode(job_id.as_bytes())
    )
}

/// Checks a Pushgateway URL (http or https); the error never repeats the URL's password.
pub fn parse_pushgateway_url(raw: &str) -> crate::Result<url::Url> {
    let bad = |why: &str| {
        crate::Error::Config(format!(
            "--pushgateway-url {}: {why}",
            crate::error::redact_url(raw)
        ))
    };
    let u = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if u.host_str().is_none() {
        return Err(bad("the URL has no host"));
    }
    Ok(u)
}

/// Pushes `body` to the Pushgateway at `base` (http, or https trusting the public web roots) as the job's group. `replace`: PUT
/// (the group becomes exactly `body`), otherwise POST (only metrics of the same names are
/// replaced, so a failed run keeps the last success timestamp of an earlier one).
pub async fn push(base: &url::Url, job_id: &str, body: &str, replace: bool) -> Result<(), String> {
    let mut url = base.clone();
    url.set_path(&format!(
        "{}{}",
        base.path().trim_end_matches('/'),
        push_path(job_id)
    ));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut headers = vec![("Content-Type", CONTENT_TYPE.to_string())];
    if !base.username().is_empty() {
        let user = percent_decode(base.username());
        let pass = percent_decode(base.password().unwrap_or(""));
        headers.push((
            "Authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            ),
        ));
    }
    let method = if replace { "PUT" } else { "POST" };
    let reply = crate::http::Client::new(None)?
        .request(method, &url, &headers, body)
        .await?;
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        let detail: String = reply.body.trim().chars().take(300).collect();
        Err(format!("answered {}: {detail}", reply.status))
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_path_is_one_segment() {
        let p = push_path("persistent://public/default/t->sink_table");
        assert!(p.starts_with("/metrics/job/pulsar2mysql/job_id@base64/"));
        assert_eq!(p.matches('/').count(), 5, "{p}");
    }

    #[test]
    fn basic_auth_parts_are_decoded() {
        assert_eq!(percent_decode("p%40ss+w"), "p@ss+w");
    }

    #[test]
    fn pushgateway_url_must_be_http_and_never_shows_its_password() {
        assert!(parse_pushgateway_url("https://gw:9091").is_ok());
        let err = parse_pushgateway_url("ftp://u:secret@gw")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
