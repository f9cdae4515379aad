//! Integration tests against the real Pulsar broker and MariaDB server started by
//! `scripts/services.sh` (never skipped: a missing service is a failure). Grouped by behaviour.

mod common;

mod auth;
mod bad_records;
mod check;
mod codecs;
mod edges;
mod end_snapshot;
mod exactly_once;
mod faults;
mod inlong;
mod load;
mod locks;
mod metrics;
mod mysql_tls;
mod outcomes;
mod partitions;
mod privileges;
mod ranges;
mod restarts;
mod seed;
mod types;
