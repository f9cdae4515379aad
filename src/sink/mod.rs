//! Sink: MySQL. Schema introspection ([`schema`]), batches and the transaction that commits
//! them ([`mysql`]), the LOAD DATA path ([`load_data`]), checkpoints and the job lock
//! ([`checkpoint`]).

pub mod checkpoint;
pub mod load_data;
pub mod mysql;
pub mod schema;

pub use mysql::{Batch, BatchBuilder, CommitStats, MysqlSink};
