//! Sink: MySQL. Connecting ([`connect`]), schema introspection ([`schema`]), batches
//! ([`batch`]), the transaction that commits them (`commit`), SQL text (`sql`), the LOAD DATA
//! path ([`load_data`]), checkpoints and the job lock ([`checkpoint`]).

pub(crate) mod batch;
pub mod checkpoint;
mod commit;
pub(crate) mod connect;
pub(crate) mod fence;
mod job_lock;
pub(crate) mod load_data;
pub(crate) mod schema;
mod skipped;
mod sql;
pub(crate) mod target;
pub(crate) mod tsv;
mod write_error;

pub use batch::{Batch, BatchBuilder, OpenBatch};
pub use commit::CommitStats;
pub use connect::{migrate, MysqlSink};

/// How long getting a MySQL connection may take, from either pool (sqlx's, and the LOAD DATA
/// path's `mysql_async` one); past it the attempt counts as a retriable failure.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
