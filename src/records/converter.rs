//! One record -> one row: the fields mapped to the table's columns and converted.

use super::convert::recycle;
use super::{convert_value, BadReason, BadRecord, Column, FieldSplitter, Value};

/// Turns records into rows for one table: split, map fields to columns, convert.
#[derive(Debug, Clone)]
pub struct RowConverter {
    splitter: FieldSplitter,
    /// For each field: the index into `columns` it feeds, or `None` if the field is skipped.
    field_targets: Vec<Option<usize>>,
    /// The mapped columns, in the order values are produced.
    columns: Vec<Column>,
    /// Fewest fields a record may have: with the default mapping, a record may leave out
    /// trailing columns whose default is NULL (as LOAD DATA does); otherwise every field.
    min_fields: usize,
    null_literal: Option<Vec<u8>>,
    /// Reused value buffer (see [`recycle`]).
    scratch: Vec<Value<'static>>,
}

impl RowConverter {
    /// Builds the converter from the table's columns and the mapping. `mapping` lists, per
    /// field, the column it feeds (`None` = skip the field); without it, fields map to the
    /// table's columns in order, leaving out the trailing columns that have a DEFAULT (or are
    /// AUTO_INCREMENT or generated), and records may omit trailing nullable columns.
    pub fn new(
        table_columns: &[Column],
        mapping: Option<&[Option<String>]>,
        delimiter: u8,
        escape: Option<u8>,
        null_literal: Option<&str>,
    ) -> Result<Self, String> {
        let mut columns = Vec::new();
        let mut field_targets = Vec::new();
        match mapping {
            Some(names) => {
                for name in names {
                    match name {
                        None => field_targets.push(None),
                        Some(name) => {
                            let col = table_columns
                                .iter()
                                .find(|c| c.name.eq_ignore_ascii_case(name))
                                .ok_or_else(|| {
                                    format!(
                                        "the mapping names column `{name}`, which the table does not have (it has: {})",
                                        table_columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                                    )
                                })?;
                            if columns.iter().any(|c: &Column| c.name == col.name) {
                                return Err(format!("the mapping names column `{name}` twice"));
                            }
                            field_targets.push(Some(columns.len()));
                            columns.push(col.clone());
                        }
                    }
                }
            }
            None => {
                // A nullable column without a DEFAULT clause has no default of its own: its
                // field is mapped (a record may still leave it out, see `min_fields`).
                let keep = table_columns
                    .iter()
                    .rposition(|c| !c.has_default)
                    .map_or(0, |i| i + 1);
                for col in &table_columns[..keep] {
                    field_targets.push(Some(columns.len()));
                    columns.push(col.clone());
                }
                if columns.is_empty() {
                    return Err(
                        "every column of the table has a default; give --columns to say which fields go where"
                            .into(),
                    );
                }
            }
        }
        for col in table_columns {
            if !col.has_default && !col.nullable && !columns.iter().any(|c| c.name == col.name) {
                return Err(format!(
                    "column `{}` is NOT NULL without a default but no field maps to it",
                    col.name
                ));
            }
        }
        // Only the default mapping lets records be shorter, and only by trailing columns
        // whose omission stores what their default would: NULL.
        let min_fields = match mapping {
            Some(_) => field_targets.len(),
            None => columns
                .iter()
                .rposition(|c| !c.nullable || c.has_default)
                .map_or(0, |i| i + 1)
                .max(1),
        };
        Ok(RowConverter {
            splitter: FieldSplitter::new(delimiter, escape),
            field_targets,
            columns,
            min_fields,
            null_literal: null_literal.map(|s| s.as_bytes().to_vec()),
            scratch: Vec::new(),
        })
    }

    /// The mapped columns, in the order [`RowConverter::convert`] yields values.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column each field feeds, in field order (`-` for a skipped field): what `check`
    /// and the summary show, so a mapping chosen by default is visible.
    pub fn mapped_columns(&self) -> Vec<String> {
        self.field_targets
            .iter()
            .map(|t| t.map_or_else(|| "-".to_string(), |i| self.columns[i].name.clone()))
            .collect()
    }

    /// Number of fields a record must have.
    pub fn field_count(&self) -> usize {
        self.field_targets.len()
    }

    /// Converts one record and hands its values, in column order, to `emit`.
    /// The value buffer is reused from record to record: no allocation per record.
    pub fn convert<R>(
        &mut self,
        record: &[u8],
        emit: impl FnOnce(&[Value<'_>]) -> R,
    ) -> Result<R, BadRecord> {
        let RowConverter {
            splitter,
            field_targets,
            columns,
            min_fields,
            null_literal,
            scratch,
        } = self;
        let fields = splitter.split(record)?;
        if fields.len() > field_targets.len() || fields.len() < *min_fields {
            let expected = if *min_fields == field_targets.len() {
                field_targets.len().to_string()
            } else {
                format!("{} to {}", min_fields, field_targets.len())
            };
            return Err(BadRecord::new(
                BadReason::FieldCount,
                None,
                format!("expected {expected} fields, found {}", fields.len()),
            ));
        }
        let mut values = recycle(std::mem::take(scratch));
        values.resize(columns.len(), Value::Null);
        for (i, target) in field_targets.iter().enumerate().take(fields.len()) {
            let Some(ci) = *target else { continue };
            let col = &columns[ci];
            // The null literal is matched as written: with `\` as the escape, `\N` is NULL
            // and `\\N` is the text `\N`.
            values[ci] = if null_literal.as_deref() == Some(fields.raw(i)) {
                // NOT NULL refuses NULL whatever its DEFAULT (the server would fail the
                // batch, or store an implicit zero); AUTO_INCREMENT takes it as "next".
                if !col.nullable && !col.auto_increment {
                    return Err(BadRecord::new(
                        BadReason::NullNotAllowed,
                        Some(&col.name),
                        format!("field {i} is the null literal but the column is NOT NULL"),
                    ));
                }
                Value::Null
            } else {
                convert_value(fields.get(i), col).map_err(|(reason, detail)| {
                    BadRecord::new(reason, Some(&col.name), format!("field {i}: {detail}"))
                })?
            };
        }
        let result = emit(&values);
        *scratch = recycle(values);
        Ok(result)
    }
}
