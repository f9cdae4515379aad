//! pulsar2mysql moves a bounded range of an Apache Pulsar topic into a MySQL table, fast and
//! exactly once.
//!
//! # Layout: the data flow, one module per stage
//! - [`config`]: one validated configuration; value types checked while arguments are parsed.
//! - [`source`]: bounded readers, one per partition; every message carries its position.
//! - [`records`]: bytes -> fields -> values converted to the target columns' types.
//! - [`sink`]: MySQL: schema introspection, batched statements, checkpoints in the same
//!   transaction as the rows they cover, and the job lock.
//! - [`pipeline`]: wires source -> records -> sink with bounded channels and cancellation.
//! - [`report`]: the JSON summary of a run.
//! - [`metrics`]: Prometheus metrics from the live counters (HTTP endpoint, Pushgateway,
//!   node_exporter textfile), through the `prometheus` crate's registry and text encoder.
//! - [`progress`]: the progress line on a terminal, or a progress log line.
//! - [`error`]: typed errors, the retry rule and exit codes.
//! - [`cli`]: the command line; the binary (`src/main.rs`) only calls into it.

pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub(crate) mod http;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod range;
pub(crate) mod records;
pub mod report;
pub mod sink;
pub(crate) mod source;

pub use config::Config;
pub use error::{Error, ExitCode, Result};
