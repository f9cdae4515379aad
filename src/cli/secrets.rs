//! Secrets among the options (the Pulsar token, the MySQL password and URL): kept out of
//! `Debug` output, read from files, and flagged when given where other users can read them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};

/// A secret option's value: shown as `***` by `Debug`, so no log line or panic message that
/// formats the options can leak it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// A URL that may carry a password: `Debug` shows it redacted.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(pub String);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::error::redact_url(&self.0))
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(SecretUrl(s.to_string()))
    }
}

/// The secret flags given on the command line itself, where every user of the machine can read
/// them (`ps`, `/proc/PID/cmdline`): the secret flags, and the URL flags whose value carries a
/// password (`mysql://user:password@...`). The caller warns about each, with the advice.
pub fn secrets_on_command_line(
    args: impl IntoIterator<Item = String>,
) -> Vec<(&'static str, &'static str)> {
    const SECRETS: [(&str, &str); 4] = [
        (
            "--mysql-password",
            "give it through PULSAR2MYSQL_MYSQL_PASSWORD or --mysql-password-file instead",
        ),
        (
            "--pulsar-token",
            "give it through PULSAR2MYSQL_PULSAR_TOKEN or --pulsar-token-file instead",
        ),
        (
            "--mysql-url",
            "carries a password: leave it out of the URL and give it through \
             PULSAR2MYSQL_MYSQL_PASSWORD or --mysql-password-file instead",
        ),
        (
            "--pushgateway-url",
            "carries a password: give the URL through PULSAR2MYSQL_PUSHGATEWAY_URL instead",
        ),
    ];
    let args: Vec<String> = args.into_iter().collect();
    let mut found = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        for (flag, advice) in SECRETS {
            let value = if arg == flag {
                args.get(i + 1).map(String::as_str)
            } else {
                arg.strip_prefix(flag)
                    .and_then(|rest| rest.strip_prefix('='))
            };
            let Some(value) = value else { continue };
            let secret = if flag.ends_with("-url") {
                url_has_password(value)
            } else {
                true
            };
            if secret && !found.iter().any(|(f, _)| *f == flag) {
                found.push((flag, advice));
            }
        }
    }
    found
}

/// Whether a URL's user part has a password (`scheme://user:password@host`).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(user, _)| user.contains(':'))
}

pub(super) fn read_secret_file(path: &PathBuf, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| Error::Config(format!("cannot read {what} file {}: {e}", path.display())))
}

/// A secret given inline or in a file. An empty inline value (a scheduler templating an unset
/// secret) counts as not given, so the `*-file` option, if any, still applies.
fn inline_or_file(
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
    file_flag: &str,
) -> Result<Option<String>> {
    Ok(match (inline, file) {
        (Some(s), _) if !s.0.is_empty() => Some(s.0.clone()),
        (_, Some(f)) => Some(read_secret_file(f, file_flag)?),
        _ => None,
    })
}

impl super::RunArgs {
    /// The Pulsar JWT: `--pulsar-token`, else the content of `--pulsar-token-file`.
    pub(super) fn pulsar_token_value(&self) -> Result<Option<String>> {
        inline_or_file(
            &self.pulsar_token,
            &self.pulsar_token_file,
            "--pulsar-token-file",
        )
    }

    /// The MySQL password: `--mysql-password`, else the content of `--mysql-password-file`.
    pub(super) fn mysql_password_value(&self) -> Result<Option<String>> {
        inline_or_file(
            &self.mysql_password,
            &self.mysql_password_file,
            "--mysql-password-file",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RunArgs;

    #[test]
    fn secret_flags_on_the_command_line_are_found() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let flags = |a: &[&str]| -> Vec<&str> {
            secrets_on_command_line(argv(a))
                .into_iter()
                .map(|(flag, _)| flag)
                .collect()
        };
        assert_eq!(
            flags(&["run", "--mysql-password", "x", "--pulsar-token=y"]),
            ["--mysql-password", "--pulsar-token"]
        );
        assert!(flags(&["run", "--mysql-password-file", "f"]).is_empty());
        // A password inside a URL is as visible as one given alone.
        assert_eq!(
            flags(&[
                "run",
                "--mysql-url",
                "mysql://u:pw@h/db",
                "--pushgateway-url=http://a:b@gw:9091"
            ]),
            ["--mysql-url", "--pushgateway-url"]
        );
        assert!(flags(&[
            "run",
            "--mysql-url",
            "mysql://u@h/db",
            "--pushgateway-url=http://gw:9091/x:y@z"
        ])
        .is_empty());
    }
    #[test]
    fn debug_output_never_shows_a_secret() {
        let args = RunArgs {
            mysql_url: Some("mysql://u:url-secret@h/db".parse().unwrap()),
            mysql_password: Some("pw-secret".parse().unwrap()),
            pulsar_token: Some("token-secret".parse().unwrap()),
            ..Default::default()
        };
        let shown = format!("{args:?}");
        for secret in ["url-secret", "pw-secret", "token-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("mysql://u:***@h/db"), "{shown}");
    }
    #[test]
    fn an_empty_variable_does_not_hide_its_file_option() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-file\n").unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "jwt-from-file\n").unwrap();
        let cfg = RunArgs {
            topic: Some("t".into()),
            table: Some("t".into()),
            mysql_password: Some("".parse().unwrap()),
            mysql_password_file: Some(pw),
            pulsar_token: Some("".parse().unwrap()),
            pulsar_token_file: Some(token),
            ..Default::default()
        }
        .into_config()
        .unwrap();
        assert_eq!(cfg.sink.password.as_deref(), Some("from-file"));
        assert_eq!(cfg.source.auth_token.as_deref(), Some("jwt-from-file"));
    }
}
