//! Reads the target table's columns from `information_schema` and turns each into the
//! [`ColumnType`] that record conversion checks values against.

use sqlx::{MySqlConnection, Row};

use super::sql::quote_ident;

use crate::error::{Error, Result};
use crate::records::{Charset, Column, ColumnType};

/// A table name split into optional schema and name (`db.table` or `table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

/// Splits `a.b`, `` `a.b` ``, `` `db`.`t``x` `` into identifiers: dots inside backticks belong
/// to the name, a doubled backtick inside them is one backtick. `None` for an unclosed quote.
fn split_identifiers(s: &str) -> Option<Vec<String>> {
    let mut parts = vec![String::new()];
    let mut chars = s.trim().chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("never empty");
        match (c, quoted) {
            ('`', true) if chars.peek() == Some(&'`') => {
                chars.next();
                part.push('`');
            }
            ('`', _) => quoted = !quoted,
            ('.', false) => parts.push(String::new()),
            (c, _) => part.push(c),
        }
    }
    (!quoted).then(|| parts.into_iter().map(|p| p.trim().to_string()).collect())
}

impl TableName {
    /// Parses `table` or `schema.table` (backquotes allowed around each part).
    pub fn parse(s: &str) -> Result<Self> {
        let parts = split_identifiers(s).ok_or_else(|| {
            Error::Config(format!("--table '{s}' has a backtick that is never closed"))
        })?;
        let t = match parts.as_slice() {
            [name] => TableName {
                schema: None,
                name: name.clone(),
            },
            [schema, name] => TableName {
                schema: Some(schema.clone()),
                name: name.clone(),
            },
            _ => {
                return Err(Error::Config(format!(
                    "--table '{s}' must be 'table' or 'database.table'"
                )))
            }
        };
        if t.name.is_empty() || t.schema.as_deref() == Some("") {
            return Err(Error::Config(format!("--table '{s}' has an empty part")));
        }
        Ok(t)
    }

    /// The name quoted for SQL.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The table's columns in table order. Fails with a clear message when the table is missing.
///
/// A nullable column without a DEFAULT clause has no default of its own: MySQL lists its
/// `COLUMN_DEFAULT` as NULL, MariaDB as the text `NULL` (a text default there is quoted), and
/// both mean the same.
pub async fn read_columns(conn: &mut MySqlConnection, table: &TableName) -> Result<TableColumns> {
    let rows = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR),
                CAST(IS_NULLABLE AS CHAR),
                COLUMN_DEFAULT IS NOT NULL AND NOT (IS_NULLABLE = 'YES'
                    AND COLUMN_DEFAULT = 'NULL' AND VERSION() LIKE '%MariaDB%'),
                CAST(EXTRA AS CHAR),
                CAST(CHARACTER_MAXIMUM_LENGTH AS CHAR), CAST(CHARACTER_OCTET_LENGTH AS CHAR),
                CAST(NUMERIC_PRECISION AS CHAR), CAST(NUMERIC_SCALE AS CHAR),
                CAST(CHARACTER_SET_NAME AS CHAR), CAST(DATETIME_PRECISION AS CHAR),
                CAST(COLUMN_KEY AS CHAR)
           FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
          ORDER BY ORDINAL_POSITION",
    )
    .bind(table.schema.as_deref())
    .bind(&table.name)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::Sink(format!("cannot read the columns of {table}: {e}")))?;
    if rows.is_empty() {
        return Err(Error::Schema(format!(
            "table {table} does not exist (or this user cannot see it); create it first, e.g. \
             with sql/sink_table.sql for the seed scenario"
        )));
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut key = Vec::new();
    for row in rows {
        let get =
            |i: usize| -> Option<String> { row.try_get::<Option<String>, _>(i).ok().flatten() };
        let num = |i: usize| get(i).and_then(|s| s.parse::<u64>().ok());
        let name = get(0).unwrap_or_default();
        let data_type = get(1).unwrap_or_default().to_ascii_lowercase();
        let column_type = get(2).unwrap_or_default().to_ascii_lowercase();
        let nullable = get(3).as_deref() == Some("YES");
        let has_explicit_default = row.try_get::<i64, _>(4).unwrap_or(0) != 0;
        let extra = get(5).unwrap_or_default().to_ascii_lowercase();
        let mut ty = column_type_of(
            &data_type,
            &column_type,
            num(6),
            num(7),
            num(8),
            num(9),
            num(11),
        );
        if let (ColumnType::Text { charset, .. }, Some(name)) = (&mut ty, get(10)) {
            *charset = Charset::from_name(&name);
        }
        let generated = extra.contains("generated")
            || extra.contains("virtual")
            || extra.contains("persistent")
            || extra.contains("stored");
        if get(12).as_deref() == Some("PRI") {
            key.push(name.clone());
        }
        columns.push(Column {
            name,
            ty,
            nullable,
            has_default: has_explicit_default || extra.contains("auto_increment") || generated,
            auto_increment: extra.contains("auto_increment"),
        });
    }
    let clustered_key = match <[String; 1]>::try_from(key) {
        Ok([name]) => Some(name),
        Err(_) => None,
    };
    Ok(TableColumns {
        columns,
        clustered_key,
    })
}

/// A table's columns, and what its rows are stored in the order of.
pub struct TableColumns {
    pub columns: Vec<Column>,
    /// The column that alone is the table's clustered index (its primary key, or the unique
    /// NOT NULL key InnoDB uses in its place; `COLUMN_KEY = 'PRI'`): None for a composite key
    /// or none at all.
    pub clustered_key: Option<String>,
}

/// Maps information_schema's description of a column to what conversion checks.
/// `fsp` is `DATETIME_PRECISION`, the fractional digits of a temporal column.
pub fn column_type_of(
    data_type: &str,
    column_type: &str,
    char_max: Option<u64>,
    octet_max: Option<u64>,
    precision: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
) -> ColumnType {
    let fsp = fsp.unwrap_or(0).min(6) as u8;
    let unsigned = column_type.contains("unsigned");
    let int = |bits: u32| {
        if unsigned {
            ColumnType::UInt {
                max: if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                },
            }
        } else {
            ColumnType::Int {
                min: if bits == 64 {
                    i64::MIN
                } else {
                    -(1i64 << (bits - 1))
                },
                max: if bits == 64 {
                    i64::MAX
                } else {
                    (1i64 << (bits - 1)) - 1
                },
            }
        }
    };
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => ColumnType::Bool,
        "tinyint" => int(8),
        "smallint" => int(16),
        "mediumint" => int(24),
        "int" | "integer" => int(32),
        "bigint" => int(64),
        "decimal" | "numeric" => ColumnType::Decimal {
            precision: precision.unwrap_or(10) as u32,
            scale: scale.unwrap_or(0) as u32,
            unsigned,
        },
        "float" => ColumnType::Float {
            max: f32::MAX as f64,
            unsigned,
        },
        "double" | "real" => ColumnType::Float {
            max: f64::MAX,
            unsigned,
        },
        "bit" => ColumnType::Bit {
            bits: precision.unwrap_or(1).clamp(1, 64) as u32,
        },
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColumnType::Text {
            max_chars: char_max.unwrap_or(u64::MAX),
            max_bytes: octet_max.unwrap_or(u64::MAX),
            charset: Charset::Unicode, // read_columns sets the column's own
        },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnType::Binary {
                max_bytes: octet_max.or(char_max).unwrap_or(u64::MAX),
            }
        }
        "enum" => ColumnType::Enum(quoted_values(column_type, "enum(")),
        "set" => ColumnType::Set(quoted_values(column_type, "set(")),
        "date" => ColumnType::Date,
        "datetime" => ColumnType::DateTime { fsp },
        "timestamp" => ColumnType::Timestamp { fsp },
        "time" => ColumnType::Time { fsp },
        "year" => ColumnType::Year,
        "json" => ColumnType::Json,
        _ => ColumnType::Other,
    }
}

/// `enum('a','b''c')` -> `["a", "b'c"]` (and the same for `set(...)`).
fn quoted_values(column_type: &str, open: &str) -> Vec<String> {
    let inner = column_type.trim_start_matches(open).trim_end_matches(')');
    let mut values = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quote) {
            ('\'', false) => in_quote = true,
            ('\'', true) if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            ('\'', true) => {
                in_quote = false;
                values.push(std::mem::take(&mut cur));
            }
            (c, true) => cur.push(c),
            _ => {}
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_seed_table_types() {
        assert_eq!(
            column_type_of("int", "int(11)", None, None, Some(10), Some(0), None),
            ColumnType::Int {
                min: i32::MIN as i64,
                max: i32::MAX as i64
            }
        );
        assert_eq!(
            column_type_of(
                "varchar",
                "varchar(255)",
                Some(255),
                Some(1020),
                None,
                None,
                None
            ),
            ColumnType::Text {
                max_chars: 255,
                max_bytes: 1020,
                charset: Charset::Unicode,
            }
        );
        assert_eq!(
            column_type_of("tinyint", "tinyint(1)", None, None, None, None, None),
            ColumnType::Bool
        );
        assert_eq!(
            column_type_of(
                "tinyint",
                "tinyint(3) unsigned",
                None,
                None,
                None,
                None,
                None
            ),
            ColumnType::UInt { max: 255 }
        );
        assert_eq!(
            column_type_of(
                "bigint",
                "bigint(20) unsigned",
                None,
                None,
                None,
                None,
                None
            ),
            ColumnType::UInt { max: u64::MAX }
        );
    }

    #[test]
    fn parses_enum_values() {
        assert_eq!(quoted_values("enum('a','b''c')", "enum("), vec!["a", "b'c"]);
        assert_eq!(quoted_values("set('x','y')", "set("), vec!["x", "y"]);
    }

    #[test]
    fn table_names() {
        assert_eq!(
            TableName::parse("sink_table").unwrap().quoted(),
            "`sink_table`"
        );
        assert_eq!(TableName::parse("db.t").unwrap().quoted(), "`db`.`t`");
        assert!(TableName::parse("a.b.c").is_err());
        let dotted = TableName::parse("`a.b`").unwrap();
        assert_eq!((dotted.schema, dotted.name.as_str()), (None, "a.b"));
        let both = TableName::parse("`my db`.`t``x`").unwrap();
        assert_eq!(both.schema.as_deref(), Some("my db"));
        assert_eq!(both.name, "t`x");
        assert_eq!(both.quoted(), "`my db`.`t``x`");
        assert!(TableName::parse("`open").is_err());
    }
}
