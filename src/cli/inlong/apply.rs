//! Applying a parsed InLong dataflow to the run's options: the dataflow is the group's one
//! source of truth, options may fill what it leaves out or repeat it, and a value given in
//! both places that disagrees is an error naming both.

use super::*;

/// An option counts as given when it is set and not empty (a scheduler templating an unset
/// setting renders an empty variable).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

fn conflict(option: &str, given: &str, place: &str, value: &str) -> DataflowError {
    DataflowError::Conflict {
        option: option.into(),
        given: format!("'{given}'"),
        place: place.into(),
        value: format!("'{value}'"),
    }
}

/// Fills `slot` from the dataflow, or checks that what it holds agrees.
fn fill(
    slot: &mut Option<String>,
    option: &str,
    place: &str,
    value: &str,
    same: impl Fn(&str, &str) -> bool,
) -> Result<()> {
    match given(slot) {
        Some(g) if !same(g, value) => Err(conflict(option, g, place, value)),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value.to_string());
            Ok(())
        }
    }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

impl RunArgs {
    /// Applies `--inlong-dataflow`, if given, to the options: the dataflow fills what they
    /// leave out and must agree with what they state. Runs after the `--config` file is merged,
    /// so a disagreement is found whichever source gave the option.
    pub(in crate::cli) fn with_inlong_dataflow(mut self) -> crate::error::Result<RunArgs> {
        let Some(path) = self.inlong_dataflow.take().filter(|p| !p.is_empty()) else {
            return Ok(self);
        };
        let text = read_dataflow(&path)?;
        let flow = parse_dataflow(
            &text,
            &path,
            given(&self.inlong_stream),
            given(&self.inlong_sink),
        )?;
        self.apply(&flow)?;
        Ok(self)
    }

    fn apply(&mut self, flow: &DataflowOptions) -> Result<()> {
        let src = "pulsarExtract node";
        let snk = format!("mysqlLoad node '{}'", flow.sink_id);
        match given(&self.topic) {
            Some(g) if g.parse::<TopicName>().ok().as_ref() != Some(&flow.topic) => {
                return Err(conflict(
                    "--topic",
                    g,
                    &format!("{src} topic"),
                    &flow.topic_as_given,
                ))
            }
            Some(_) => {}
            None => self.topic = Some(flow.topic_as_given.clone()),
        }
        fill(
            &mut self.pulsar_url,
            "--pulsar-url",
            &format!("{src} serviceUrl"),
            &flow.pulsar_url,
            same_url,
        )?;
        if let Some(admin) = &flow.pulsar_admin_url {
            fill(
                &mut self.pulsar_admin_url,
                "--pulsar-admin-url",
                &format!("{src} adminUrl"),
                admin,
                same_url,
            )?;
        }
        let same_char = |what: &'static str| {
            move |a: &str, b: &str| {
                parse_ascii_char(a, what).ok().is_some()
                    && parse_ascii_char(a, what).ok() == parse_ascii_char(b, what).ok()
            }
        };
        let shown = |b: u8| (b as char).to_string();
        fill(
            &mut self.delimiter,
            "--delimiter",
            "csvFormat fieldDelimiter",
            &shown(flow.delimiter),
            same_char("--delimiter"),
        )?;
        if let Some(escape) = flow.escape {
            fill(
                &mut self.escape,
                "--escape",
                "csvFormat escapeCharacter",
                &shown(escape),
                same_char("--escape"),
            )?;
        }
        if let Some(null) = &flow.null_literal {
            match self.null_literal.as_deref() {
                Some(g) if g != null => {
                    return Err(conflict("--null-literal", g, "csvFormat nullLiteral", null))
                }
                _ => self.null_literal = Some(null.clone()),
            }
        }
        if let Some(from) = &flow.from {
            fill(
                &mut self.from,
                "--from",
                &format!("{src} source.start.publish-time"),
                from,
                |a, b| a.trim() == b.trim(),
            )?;
        }
        if let Some(to) = &flow.to {
            fill(
                &mut self.to,
                "--to",
                &format!("{src} source.stop.at-publish-time"),
                to,
                |a, b| a.trim() == b.trim(),
            )?;
        }
        self.apply_pulsar_auth(flow)?;
        if flow.ignore_parse_errors {
            match self.on_bad_record {
                Some(BadRecordPolicy::Fail) => {
                    return Err(conflict(
                        "--on-bad-record",
                        "fail",
                        "csvFormat ignoreParseErrors",
                        "true",
                    ))
                }
                Some(_) => {}
                // Flink skips every record that does not parse, without a limit.
                None => {
                    self.on_bad_record = Some(BadRecordPolicy::Skip);
                    self.max_bad_records.get_or_insert(u64::MAX);
                }
            }
        }
        let mode = |m: WriteMode| match m {
            WriteMode::Insert => "insert",
            WriteMode::Upsert => "upsert",
            WriteMode::IgnoreDuplicates => "ignore-duplicates",
        };
        match self.mode {
            Some(m) if m != flow.mode => {
                return Err(conflict(
                    "--mode",
                    mode(m),
                    &format!(
                        "{snk} primaryKey (InLong Sort {} with {})",
                        mode(flow.mode),
                        if flow.mode == WriteMode::Upsert {
                            "a primary key"
                        } else {
                            "none"
                        }
                    ),
                    mode(flow.mode),
                ))
            }
            _ => self.mode = Some(flow.mode),
        }
        self.apply_table(flow, &snk)?;
        let columns = flow.columns_option();
        match given(&self.columns) {
            Some(g) if normalized_columns(g) != normalized_columns(&columns) => {
                return Err(conflict(
                    "--columns",
                    g,
                    &format!("{snk} fieldRelations (in source field order)"),
                    &columns,
                ))
            }
            Some(_) => {}
            None => self.columns = Some(columns),
        }
        self.apply_mysql(flow, &snk)
    }

    fn apply_pulsar_auth(&mut self, flow: &DataflowOptions) -> Result<()> {
        let place = "pulsarExtract node clientAuthParams".to_string();
        let secret_conflict = |option: &str| DataflowError::SecretConflict {
            option: option.into(),
            place: place.clone(),
        };
        let inline = self.pulsar_token.as_ref().filter(|t| !t.0.is_empty());
        match &flow.pulsar_auth {
            None => Ok(()),
            Some(PulsarAuth::Token(token)) => {
                match (inline, &self.pulsar_token_file) {
                    (Some(t), _) if t != token => {
                        return Err(secret_conflict("the Pulsar token (--pulsar-token)"))
                    }
                    (Some(_), _) => {}
                    (None, Some(file)) => {
                        let from_file =
                            super::super::secrets::read_secret_file(file, "--pulsar-token-file")
                                .map_err(|e| DataflowError::Malformed(e.to_string()))?;
                        if from_file != token.0 {
                            return Err(secret_conflict("the Pulsar token (--pulsar-token-file)"));
                        }
                    }
                    (None, None) => self.pulsar_token = Some(token.clone()),
                }
                Ok(())
            }
            Some(PulsarAuth::TokenFile(path)) => {
                if inline.is_some() {
                    return Err(secret_conflict("the Pulsar token (--pulsar-token)"));
                }
                match &self.pulsar_token_file {
                    Some(file) if file != path => Err(conflict(
                        "--pulsar-token-file",
                        &file.display().to_string(),
                        "pulsarExtract node clientAuthParams file",
                        &path.display().to_string(),
                    )),
                    _ => {
                        self.pulsar_token_file = Some(path.clone());
                        Ok(())
                    }
                }
            }
        }
    }

    fn apply_table(&mut self, flow: &DataflowOptions, snk: &str) -> Result<()> {
        let qualified = format!("{}.{}", flow.mysql.database, flow.table);
        match given(&self.table) {
            Some(g) if g != flow.table && g != qualified => Err(conflict(
                "--table",
                g,
                &format!("{snk} tableName (in database '{}')", flow.mysql.database),
                &flow.table,
            )),
            Some(_) => Ok(()),
            None => {
                self.table = Some(flow.table.clone());
                Ok(())
            }
        }
    }

    fn apply_mysql(&mut self, flow: &DataflowOptions, snk: &str) -> Result<()> {
        let want = &flow.mysql;
        let place_url = format!("{snk} url and username");
        let mut url_password = None;
        match self
            .mysql_url
            .as_ref()
            .map(|u| u.0.as_str())
            .filter(|u| !u.trim().is_empty())
        {
            Some(g) => {
                let shown = crate::error::redact_url(g);
                let parsed = url::Url::parse(g).ok();
                let agrees = parsed.as_ref().is_some_and(|u| {
                    u.host_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&want.host))
                        && u.port().unwrap_or(3306) == want.port
                        && percent_decoded(u.username()) == want.user
                        && u.path().trim_matches('/') == want.database
                });
                if !agrees {
                    return Err(conflict("--mysql-url", &shown, &place_url, &want.url()));
                }
                url_password = parsed
                    .as_ref()
                    .and_then(|u| u.password().map(percent_decoded));
                let url_mode = parsed.as_ref().and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "ssl-mode" || k == "sslmode")
                        .map(|(_, v)| v.to_lowercase())
                });
                if let (Some(a), Some(b)) = (url_mode, &want.ssl_mode) {
                    if &a != b {
                        return Err(conflict(
                            "--mysql-url ssl-mode",
                            &a,
                            &format!("{snk} url's TLS setting"),
                            b,
                        ));
                    }
                }
            }
            None => self.mysql_url = Some(SecretUrl(want.url())),
        }
        if let Some(mode) = &want.ssl_mode {
            fill(
                &mut self.mysql_ssl_mode,
                "--mysql-ssl-mode",
                &format!("{snk} url's TLS setting"),
                mode,
                |a, b| a.eq_ignore_ascii_case(b) || a.replace('_', "-").eq_ignore_ascii_case(b),
            )?;
        }
        let Some(password) = &flow.mysql_password else {
            return Ok(());
        };
        let place = format!("{snk} password");
        let secret_conflict = |option: &str| DataflowError::SecretConflict {
            option: option.into(),
            place: place.clone(),
        };
        if url_password.as_ref().is_some_and(|p| p != &password.0) {
            return Err(secret_conflict("the password in --mysql-url"));
        }
        let inline = self.mysql_password.as_ref().filter(|p| !p.0.is_empty());
        match (inline, &self.mysql_password_file) {
            (Some(p), _) if p != password => Err(secret_conflict(
                "the MySQL password (--mysql-password, PULSAR2MYSQL_MYSQL_PASSWORD)",
            )),
            (Some(_), _) => Ok(()),
            (None, Some(file)) => {
                let from_file =
                    super::super::secrets::read_secret_file(file, "--mysql-password-file")
                        .map_err(|e| DataflowError::Malformed(e.to_string()))?;
                if from_file != password.0 {
                    return Err(secret_conflict(
                        "the MySQL password (--mysql-password-file)",
                    ));
                }
                Ok(())
            }
            (None, None) => {
                self.mysql_password = Some(password.clone());
                Ok(())
            }
        }
    }
}

fn percent_decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A column list as the runner reads it, trailing skipped fields included (they count).
fn normalized_columns(list: &str) -> Vec<Option<String>> {
    list.split(',')
        .map(|c| match c.trim() {
            "" | "-" => None,
            c => Some(c.to_string()),
        })
        .collect()
}

// --- JSON helpers ---------------------------------------------------------------------------
