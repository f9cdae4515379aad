//! The `--config` TOML file: the lowest-priority source of options, below flags and the
//! environment (which clap already merged).

use serde::Deserialize;

use super::RunArgs;
use crate::error::{Error, Result};

impl RunArgs {
    /// Fills options not given as flags or environment from the `--config` file.
    pub fn merge_file(self) -> Result<RunArgs> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("cannot read --config {}: {e}", path.display())))?;
        let file = parse_file(&text)
            .map_err(|e| Error::Config(format!("--config {}: {e}", path.display())))?;
        macro_rules! pick {
            ($($f:ident),*) => { RunArgs { $($f: self.$f.or(file.$f),)* config: self.config, dry_run: self.dry_run || file.dry_run, reprocess: self.reprocess || file.reprocess, pulsar_admin_allow_insecure_token: self.pulsar_admin_allow_insecure_token || file.pulsar_admin_allow_insecure_token } };
        }
        Ok(pick!(
            inlong_dataflow,
            inlong_stream,
            inlong_sink,
            job_id,
            pulsar_url,
            pulsar_admin_url,
            topic,
            partitions,
            from,
            to,
            pulsar_token,
            pulsar_token_file,
            pulsar_tls_ca_file,
            mysql_url,
            mysql_password,
            mysql_ssl_mode,
            mysql_ssl_ca,
            mysql_ssl_cert,
            mysql_ssl_key,
            mysql_password_file,
            table,
            columns,
            delimiter,
            escape,
            null_literal,
            mode,
            write_strategy,
            on_bad_record,
            max_bad_records,
            batch_rows,
            batch_bytes,
            writers,
            idle_timeout_secs,
            retry_budget_secs,
            mysql_io_timeout_secs
        ))
    }
}

/// Parses the TOML file; keys may be written snake_case or kebab-case.
fn parse_file(text: &str) -> std::result::Result<RunArgs, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let table: toml::Table = table
        .into_iter()
        .map(|(k, v)| (k.replace('_', "-"), v))
        .collect();
    RunArgs::deserialize(table).map_err(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_in_either_case_and_values_untouched() {
        let args =
            parse_file("topic = \"my_topic\"\nbatch_rows = 5\nmysql-url = \"mysql://a@b/c_d\"\n")
                .unwrap();
        assert_eq!(args.topic.as_deref(), Some("my_topic"));
        assert_eq!(args.batch_rows, Some(5));
        assert_eq!(args.mysql_url.unwrap().0, "mysql://a@b/c_d");
        assert!(parse_file("nope = 1").is_err());
    }
    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "topic = \"from_file\"\ntable = \"t\"\nwriters = 2\n").unwrap();
        let args = RunArgs {
            config: Some(path),
            topic: Some("from_flag".into()),
            ..Default::default()
        };
        let cfg = args.into_config().unwrap();
        assert_eq!(cfg.source.topic.0, "persistent://public/default/from_flag");
        assert_eq!(cfg.sink.writers, Some(2));
        assert_eq!(cfg.sink.table, "t");
    }
}
