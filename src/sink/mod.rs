//! Sink: MySQL. Its files in a total order, each using only files above it (checked by
//! `tests/layers.rs`): SQL text at the bottom, then where and as whom to connect, the
//! project's tables, the job lock, the target table's schema, the LOAD DATA input format and
//! its rows' key order, checkpoints, dead letters, the fence, write errors, skipped rows, batches (data), the batch
//! builder, the LOAD DATA path, the connected sink, and the commit at the top.

// Bottom: SQL literals and identifiers.
mod sql;

// Where and as whom both drivers connect; the session's settings.
pub(crate) mod target;

// The project's own tables.
mod migrations;

pub mod job_lock;

// The target table's columns and name.
pub(crate) mod schema;

// LOAD DATA's input format.
pub(crate) mod tsv;

// A batch's rows in the table's key order.
mod key_order;

// Checkpoints, window ends, and a checkpoint's move across a batch (`Span`).
pub mod checkpoint;

mod dead_letter;

// The condition every attempt at a batch writes under.
pub(crate) mod fence;

mod write_error;

// What the server skipped, judged from its warnings.
mod skipped;

// Batches as data, and their builder.
pub(crate) mod batch;

pub(crate) mod batch_builder;

// The LOAD DATA write path, the connected sink, and the commit on top.
pub(crate) mod load_data;

pub(crate) mod connect;

mod commit;

pub use batch::{Batch, OpenBatch};
pub use batch_builder::BatchBuilder;
pub use checkpoint::Checkpoint;
pub use commit::CommitStats;
pub use connect::{migrate, MysqlSink};
pub use job_lock::{lock_name, JobLock, LOCK_IDLE_TIMEOUT_SECS};
pub(crate) use sql::quote_ident;
