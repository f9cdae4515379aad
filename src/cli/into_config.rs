//! Raw options into one validated [`Config`]: defaults filled in, value types parsed, secrets
//! read, and the cross-field checks run, so a run starts only with settings that hold together.

use std::path::PathBuf;
use std::time::Duration;

use super::RunArgs;
use crate::config::{
    parse_ascii_char, BadRecordPolicy, Config, Delimiter, EndBound, RecordsConfig, SinkConfig,
    SourceConfig, StartBound, TopicName, WriteMode,
};
use crate::error::{Error, Result};

impl RunArgs {
    /// The MySQL settings alone, for `migrate`: no topic or table is needed to prepare a
    /// database (the rest is validated as for `run` when given).
    pub fn into_sink_config(mut self) -> Result<crate::config::SinkConfig> {
        if self.config.is_none() && self.inlong_dataflow.is_none() {
            self.topic
                .get_or_insert_with(|| "not-needed-by-migrate".into());
            self.table
                .get_or_insert_with(|| "not_needed_by_migrate".into());
            return Ok(self.into_config()?.sink);
        }
        let mut merged = self.merge_file()?.with_inlong_dataflow()?;
        merged.config = None;
        merged.into_sink_config()
    }

    /// Validates everything into a [`Config`].
    pub fn into_config(self) -> Result<Config> {
        let args = self.merge_file()?.with_inlong_dataflow()?;
        // Each step fails with its own option's message; the order below is the order in
        // which a run with several mistakes reports them (the first one only).
        let topic = args.topic_name()?;
        let table = args
            .table
            .clone()
            .ok_or_else(|| Error::Config("--table is required".into()))?;
        let (from, to) = args.bounds()?;
        let auth_token = args.pulsar_token_value()?;
        let password = args.mysql_password_value()?;
        let records = args.records_config()?;
        let retry_budget = Duration::from_secs(args.retry_budget_secs.unwrap_or(120));
        let job_id = args
            .job_id
            .clone()
            .unwrap_or_else(|| Config::default_job_id(&topic, &table));
        let source = args.source_config(topic, from, to, auth_token, retry_budget);
        let sink = args.sink_config(table, password, retry_budget)?;
        let cfg = Config {
            job_id,
            source,
            records,
            sink,
            dry_run: args.dry_run,
            reprocess: args.reprocess,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// `--topic`, required by every command but `migrate`, in the full form checkpoints key on.
    fn topic_name(&self) -> Result<TopicName> {
        let cfg_err = Error::Config;
        self.topic
            .as_deref()
            .ok_or_else(|| cfg_err("--topic is required".into()))?
            .parse()
            .map_err(cfg_err)
    }

    /// `--from` and `--to`, defaulting to the whole topic as it is when the run starts.
    fn bounds(&self) -> Result<(StartBound, EndBound)> {
        let from: StartBound = self
            .from
            .as_deref()
            .unwrap_or("earliest")
            .parse()
            .map_err(Error::Config)?;
        let to: EndBound = self
            .to
            .as_deref()
            .unwrap_or("latest")
            .parse()
            .map_err(Error::Config)?;
        Ok((from, to))
    }

    /// How payloads split into fields and map to columns; `|` is InLong's default delimiter.
    fn records_config(&self) -> Result<RecordsConfig> {
        let delimiter = match &self.delimiter {
            Some(d) => {
                d.parse::<Delimiter>()
                    .map_err(|e| Error::Config(format!("--delimiter: {e}")))?
                    .0
            }
            None => b'|',
        };
        let escape = self
            .escape
            .as_deref()
            .map(|e| parse_ascii_char(e, "--escape"))
            .transpose()
            .map_err(Error::Config)?;
        let columns = self.columns.as_deref().map(|list| {
            list.split(',')
                .map(|c| match c.trim() {
                    "" | "-" => None,
                    c => Some(c.to_string()),
                })
                .collect::<Vec<_>>()
        });
        Ok(RecordsConfig {
            delimiter,
            escape,
            null_literal: self.null_literal.clone(),
            columns,
            on_bad_record: self.on_bad_record.unwrap_or(BadRecordPolicy::Fail),
            max_bad_records: self.max_bad_records.unwrap_or(1000),
        })
    }

    /// The Pulsar side from its already checked parts, with the defaults of a local broker.
    fn source_config(
        &self,
        topic: TopicName,
        from: StartBound,
        to: EndBound,
        auth_token: Option<String>,
        retry_budget: Duration,
    ) -> SourceConfig {
        SourceConfig {
            service_url: self
                .pulsar_url
                .clone()
                .unwrap_or_else(|| "pulsar://127.0.0.1:6650".into()),
            admin_url: self.pulsar_admin_url.clone(),
            admin_allow_insecure_token: self.pulsar_admin_allow_insecure_token,
            topic,
            partitions: self.partitions.clone(),
            from,
            to,
            auth_token,
            tls_ca_file: self.pulsar_tls_ca_file.clone(),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.unwrap_or(3).max(1)),
            retry_budget,
        }
    }

    /// The MySQL side, with the defaults of a local server; its TLS settings are checked last
    /// (they read the certificate paths).
    fn sink_config(
        &self,
        table: String,
        password: Option<String>,
        retry_budget: Duration,
    ) -> Result<SinkConfig> {
        let mysql_url = self
            .mysql_url
            .as_ref()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/pulsar2mysql".into());
        Ok(SinkConfig {
            url: mysql_url.clone(),
            password,
            table,
            mode: self.mode.unwrap_or(WriteMode::Insert),
            strategy: self.write_strategy.unwrap_or_default(),
            batch_rows: self.batch_rows,
            batch_bytes: self.batch_bytes.unwrap_or(4 << 20),
            writers: self.writers,
            retry_budget,
            io_timeout: Duration::from_secs(self.mysql_io_timeout_secs.unwrap_or(30).max(1)),
            tls: mysql_tls(self, &mysql_url)?,
        })
    }
}

/// The MySQL TLS settings: the flags, else the URL's own parameters (sqlx's names).
fn mysql_tls(args: &RunArgs, url: &str) -> Result<crate::config::MysqlTls> {
    let mut tls = crate::config::MysqlTls::default();
    if let Ok(url) = url::Url::parse(url) {
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "ssl-mode" | "sslmode" => {
                    tls.mode = v
                        .parse()
                        .map_err(|e| Error::Config(format!("--mysql-url ssl-mode: {e}")))?
                }
                "ssl-ca" => tls.ca = Some(PathBuf::from(v.as_ref())),
                "ssl-cert" => tls.cert = Some(PathBuf::from(v.as_ref())),
                "ssl-key" => tls.key = Some(PathBuf::from(v.as_ref())),
                _ => {}
            }
        }
    }
    // An empty value (a scheduler templating an unset setting) counts as not given.
    if let Some(mode) = args.mysql_ssl_mode.as_deref().filter(|m| !m.is_empty()) {
        tls.mode = mode
            .parse()
            .map_err(|e| Error::Config(format!("--mysql-ssl-mode: {e}")))?;
    }
    let given = |p: &Option<String>| p.as_deref().filter(|p| !p.is_empty()).map(PathBuf::from);
    tls.ca = given(&args.mysql_ssl_ca).or(tls.ca);
    tls.cert = given(&args.mysql_ssl_cert).or(tls.cert);
    tls.key = given(&args.mysql_ssl_key).or(tls.key);
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(Error::Config(
            "a MySQL client certificate needs both --mysql-ssl-cert and --mysql-ssl-key".into(),
        ));
    }
    for (what, path) in [
        ("--mysql-ssl-ca", &tls.ca),
        ("--mysql-ssl-cert", &tls.cert),
        ("--mysql-ssl-key", &tls.key),
    ] {
        if let Some(path) = path {
            if !path.is_file() {
                return Err(Error::Config(format!(
                    "{what} {}: no such file",
                    path.display()
                )));
            }
        }
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_topic_is_a_clear_error() {
        let err = RunArgs {
            table: Some("t".into()),
            ..Default::default()
        }
        .into_config()
        .unwrap_err();
        assert!(err.to_string().contains("--topic is required"), "{err}");
    }
    fn window_args(pulsar_url: &str) -> RunArgs {
        RunArgs {
            topic: Some("t".into()),
            table: Some("t".into()),
            pulsar_url: Some(pulsar_url.into()),
            from: Some("1700000000000".into()),
            ..Default::default()
        }
    }
    #[test]
    fn the_admin_url_follows_the_service_url_scheme() {
        let admin = |args: RunArgs| args.into_config().unwrap().source.admin_base_url().unwrap();
        assert_eq!(
            admin(window_args("pulsar+ssl://broker.example:6651")).as_str(),
            "https://broker.example:8443/"
        );
        assert_eq!(
            admin(window_args("pulsar://10.0.0.7:6650")).as_str(),
            "http://10.0.0.7:8080/"
        );
        let mut args = window_args("pulsar+ssl://b:6651");
        args.pulsar_admin_url = Some("https://admin.example/pulsar".into());
        assert_eq!(admin(args).as_str(), "https://admin.example/pulsar");
        for bad in ["ftp://x", "not a url", "http://"] {
            let mut args = window_args("pulsar://b:6650");
            args.pulsar_admin_url = Some(bad.into());
            let err = args.into_config().unwrap_err();
            assert!(
                err.to_string().contains("--pulsar-admin-url"),
                "{bad}: {err}"
            );
        }
    }
    #[test]
    fn a_token_is_not_sent_to_a_plain_http_admin_url_unless_allowed() {
        const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl";
        let with_token = |url: &str| RunArgs {
            pulsar_token: Some(TOKEN.parse().unwrap()),
            ..window_args(url)
        };
        // pulsar:// derives an http admin URL; so does an explicit http:// one.
        let mut explicit = with_token("pulsar+ssl://b:6651");
        explicit.pulsar_admin_url = Some("http://b:8080".into());
        for args in [with_token("pulsar://b:6650"), explicit] {
            let err = args.clone().into_config().unwrap_err();
            assert_eq!(err.exit_code() as i32, 2);
            let text = err.to_string();
            assert!(
                text.contains("--pulsar-admin-allow-insecure-token") && text.contains("https://"),
                "{text}"
            );
            assert!(
                !text.contains(TOKEN) && !text.contains("c2VjcmV0"),
                "{text}"
            );
            let allowed = RunArgs {
                pulsar_admin_allow_insecure_token: true,
                ..args
            };
            assert!(allowed.into_config().is_ok());
        }
        // https (the pulsar+ssl:// default), no token, or no publish-time window: nothing to refuse.
        assert!(with_token("pulsar+ssl://b:6651").into_config().is_ok());
        assert!(window_args("pulsar://b:6650").into_config().is_ok());
        let no_window = RunArgs {
            from: None,
            ..with_token("pulsar://b:6650")
        };
        assert!(no_window.into_config().is_ok());
    }

    #[test]
    fn a_range_key_too_long_for_its_column_is_stored_as_a_hash() {
        let cfg = |from: String| {
            RunArgs {
                topic: Some("t".into()),
                table: Some("t".into()),
                from: Some(from),
                ..Default::default()
            }
            .into_config()
            .unwrap()
        };
        assert_eq!(cfg("id:12:5".into()).range_key(), "from=id:12:5;to=latest");
        // Message-id bounds for 64 partitions: over 700 characters as given.
        let many: Vec<String> = (0..64).map(|p| format!("{p}=123456:{p}")).collect();
        let long = cfg(format!("id:{}", many.join(",")));
        let key = long.range_key();
        assert!(
            key.starts_with("sha256:") && key.len() <= crate::config::RANGE_KEY_MAX,
            "{key}"
        );
        assert_eq!(key, long.range_key(), "the same range gives the same key");
        let other: Vec<String> = (0..64).map(|p| format!("{p}=123456:{}", p + 1)).collect();
        assert_ne!(key, cfg(format!("id:{}", other.join(","))).range_key());
    }
}
