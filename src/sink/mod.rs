//! Sink: MySQL. Schema introspection ([`schema`]), batches and the transaction that commits
//! them ([`mysql`]), the LOAD DATA path ([`load_data`]), checkpoints and the job lock
//! ([`checkpoint`]).

pub mod checkpoint;
pub mod load_data;
pub mod mysql;
pub mod schema;

pub use mysql::{Batch, BatchBuilder, CommitStats, MysqlSink};

/// How long getting a MySQL connection may take, from either pool (sqlx's, and the LOAD DATA
/// path's `mysql_async` one); past it the attempt counts as a retriable failure.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
