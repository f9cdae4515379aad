//! Splitting a record into fields on a one-byte delimiter, with an optional escape byte.

use std::ops::Range;

use super::{BadReason, BadRecord};

/// Splits a record on a one-byte delimiter, honouring an optional escape byte
/// (`\|` is a literal `|`, `\\` a literal `\`). No quoting.
#[derive(Debug, Clone)]
pub struct FieldSplitter {
    delimiter: u8,
    escape: Option<u8>,
    spans: Vec<Range<usize>>,
    unescaped: Vec<u8>,
    /// With escapes: each field's span in the record as written.
    raw_spans: Vec<Range<usize>>,
}

/// The fields of one record, borrowed from the payload or from the splitter's buffer.
#[derive(Debug)]
pub struct Fields<'a> {
    bytes: &'a [u8],
    spans: &'a [Range<usize>],
    /// The record as written and each field's span in it (the same as `bytes` and `spans`
    /// when nothing was unescaped).
    raw: &'a [u8],
    raw_spans: &'a [Range<usize>],
}

impl<'a> Fields<'a> {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The bytes of field `i`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.bytes[self.spans[i].clone()]
    }

    /// The bytes of field `i` as written in the record, escape bytes included.
    pub fn raw(&self, i: usize) -> &'a [u8] {
        &self.raw[self.raw_spans[i].clone()]
    }
}

impl FieldSplitter {
    /// A splitter for one delimiter and optional escape byte.
    pub fn new(delimiter: u8, escape: Option<u8>) -> Self {
        FieldSplitter {
            delimiter,
            escape,
            spans: Vec::with_capacity(16),
            unescaped: Vec::new(),
            raw_spans: Vec::new(),
        }
    }

    /// Splits `record`; the result lives until the next call.
    pub fn split<'a>(&'a mut self, record: &'a [u8]) -> Result<Fields<'a>, BadRecord> {
        self.spans.clear();
        let escape = match self.escape {
            Some(e) if memchr::memchr(e, record).is_some() => e,
            _ => {
                let mut start = 0;
                for i in memchr::memchr_iter(self.delimiter, record) {
                    self.spans.push(start..i);
                    start = i + 1;
                }
                self.spans.push(start..record.len());
                return Ok(Fields {
                    bytes: record,
                    spans: &self.spans,
                    raw: record,
                    raw_spans: &self.spans,
                });
            }
        };
        self.unescaped.clear();
        self.raw_spans.clear();
        let mut start = 0;
        let mut raw_start = 0;
        let mut bytes = record.iter().enumerate();
        while let Some((i, &b)) = bytes.next() {
            if b == escape {
                match bytes.next() {
                    Some((_, &next)) => self.unescaped.push(next),
                    None => {
                        return Err(BadRecord::new(
                            BadReason::Malformed,
                            None,
                            format!("record ends with a lone escape character at byte {i}"),
                        ))
                    }
                }
            } else if b == self.delimiter {
                self.spans.push(start..self.unescaped.len());
                start = self.unescaped.len();
                self.raw_spans.push(raw_start..i);
                raw_start = i + 1;
            } else {
                self.unescaped.push(b);
            }
        }
        self.spans.push(start..self.unescaped.len());
        self.raw_spans.push(raw_start..record.len());
        Ok(Fields {
            bytes: &self.unescaped,
            spans: &self.spans,
            raw: record,
            raw_spans: &self.raw_spans,
        })
    }
}
