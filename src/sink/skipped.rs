//! What the server skipped, judged from its warnings. LOAD DATA LOCAL and `INSERT IGNORE`
//! turn every refusal into a warning and go on: a duplicate key, but also a missing parent
//! row, a failed CHECK constraint or a value no partition takes. Only duplicate keys are what
//! `--mode ignore-duplicates` asks to skip; anything else would lose a record without a word.

/// Server codes of a duplicate key: `ER_DUP_ENTRY` and `ER_DUP_ENTRY_WITH_KEY_NAME`.
const DUPLICATE_KEY: [u32; 2] = [1062, 1586];

/// The most warnings a server keeps per statement (`max_error_count`'s ceiling, which the
/// session sets). Batches that may skip rows hold no more rows than this, so that the warning
/// of every skipped row can be read.
pub(crate) const MAX_WARNINGS: u64 = 65_535;

/// One row of `SHOW WARNINGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Warning {
    pub code: u32,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Checks that every one of `skipped` rows was skipped as a duplicate key: `total` is
/// `@@warning_count`, `shown` what `SHOW WARNINGS` listed. Returns the number of duplicates,
/// or what else happened, as a clause (the caller says what it does about it).
pub(crate) fn only_duplicates(skipped: u64, total: u64, shown: &[Warning]) -> Result<u64, String> {
    if let Some(w) = shown.iter().find(|w| !DUPLICATE_KEY.contains(&w.code)) {
        return Err(format!(
            "the server refused or changed a row for another reason than a duplicate key \
             ({w}){}",
            refusal_hint(w.code)
        ));
    }
    if total > shown.len() as u64 {
        return Err(format!(
            "the server reported {total} warnings but listed only {}, so it cannot be told that \
             every skipped row was a duplicate",
            shown.len()
        ));
    }
    let duplicates = shown.len() as u64;
    if duplicates != skipped {
        return Err(format!(
            "{skipped} rows were not stored but the server named {duplicates} duplicate keys"
        ));
    }
    Ok(duplicates)
}

/// What a refusal code means for the person reading the error.
fn refusal_hint(code: u32) -> &'static str {
    match code {
        1452 => " - a foreign key's parent row is missing",
        3819 | 4025 => " - a CHECK constraint failed",
        1526 => " - no partition of the table takes the value",
        1369 => " - the view's CHECK OPTION refused the row",
        1048 => " - a NOT NULL column got NULL",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(code: u32) -> Warning {
        Warning {
            code,
            message: format!("message {code}"),
        }
    }

    #[test]
    fn duplicates_alone_pass() {
        assert_eq!(only_duplicates(0, 0, &[]), Ok(0));
        assert_eq!(only_duplicates(2, 2, &[w(1062), w(1586)]), Ok(2));
    }

    #[test]
    fn any_other_refusal_fails_the_batch_and_names_its_code() {
        for code in [1452, 3819, 4025, 1526, 1369, 1265] {
            let err = only_duplicates(2, 2, &[w(1062), w(code)]).unwrap_err();
            assert!(err.contains(&code.to_string()), "{err}");
        }
        assert!(only_duplicates(1, 1, &[w(1452)])
            .unwrap_err()
            .contains("foreign key"));
    }

    #[test]
    fn warnings_not_listed_or_not_matching_the_skipped_rows_fail() {
        assert!(only_duplicates(3, 3, &[w(1062), w(1062)])
            .unwrap_err()
            .contains("listed only 2"));
        assert!(only_duplicates(3, 2, &[w(1062), w(1062)])
            .unwrap_err()
            .contains("3 rows were not stored"));
    }
}
