//! Versioned schema migrations.
//!
//! Migration `i` (1-based) brings the schema from version `i-1` to `i`; the
//! version lives in SQLite's `user_version`. Each runs in its own transaction
//! together with the version bump, so a crash mid-migration leaves the
//! previous version intact. Never edit a released migration: add one.

use rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_progressive.sql"),
    include_str!("migrations/0003_source_hash.sql"),
    include_str!("migrations/0004_maintenance.sql"),
    include_str!("migrations/0005_jobs.sql"),
    include_str!("migrations/0006_api_tokens.sql"),
    include_str!("migrations/0007_release_source.sql"),
    include_str!("migrations/0008_hooks.sql"),
    include_str!("migrations/0009_job_log_steps.sql"),
];

/// The schema version this build knows.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

pub(crate) fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            found: current,
            known: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_fresh_database_to_latest_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let err = apply(&mut conn).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    }
}
