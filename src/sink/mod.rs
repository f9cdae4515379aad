//! Sink: MySQL. Schema introspection ([`schema`]), batched statements and the transaction
//! that commits them ([`mysql`]), checkpoints and the job lock ([`checkpoint`]).

pub mod checkpoint;
pub mod mysql;
pub mod schema;

pub use mysql::{Batch, BatchBuilder, CommitStats, MysqlSink};
