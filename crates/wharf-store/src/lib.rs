//! wharf's state, in one SQLite file.
//!
//! The schema is versioned ([`migrate`]); every query is a typed method on
//! [`Store`]. The deploy engine's Architecture Invariant 3 ("every transition
//! is recorded before it acts outside the process") rests on two things here:
//! [`Store::transition`] commits before it returns, and [`Store::switch`]
//! moves an app's serving release in the same transaction that records the
//! `switched` transition.
//!
//! The durable job queue ([`Store::enqueue`], [`Store::claim`], …, in
//! `jobs/`) applies `wharf-jobs`' pure rules inside its transactions.
//! Forge webhook deliveries ([`Store::record_delivery`], in `hooks.rs`) are
//! recorded in the same transaction as the pipeline job they queue.
//!
//! The store knows nothing of HTTP or processes.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

mod deploys;
mod error;
mod hooks;
mod jobs;
mod migrate;
mod model;
mod queries;
mod tokens;

pub use error::StoreError;
pub use hooks::{DeliveryOutcome, DeliveryRow, HookOutcome, NewDelivery, RefusalRow};
pub use jobs::{
    Enqueued, JobLogRow, JobRow, JobStepRow, LeaseStatus, MAX_LINE_BYTES, MAX_LOG_LINES, NewJob,
    StepEnd,
};
pub use model::{
    AppRow, DeployKind, DeployOutcome, DeployRow, EventLevel, EventRow, InstanceRow, InstanceState,
    NewInstance, ReleaseMetricsRow, ReleaseRow, ReleaseStatus, TransitionRow,
};
pub use tokens::{NewToken, TokenRow};

/// A handle on the store. Cheap to share behind an `Arc`; queries are short
/// and serialised on one connection (SQLite has one writer anyway).
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and applies pending
    /// migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::init(conn)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store, StoreError> {
        // WAL keeps readers (status, dashboards) off the writer's back;
        // NORMAL sync is durable across process crashes, which is what
        // kill -9 recovery needs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate::apply(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// The schema version this store is at.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves a connection that is still
        // consistent (every write is a transaction), so poisoning is ignored.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
