//! Typed queries on apps, releases, instances and events.

use rusqlite::{OptionalExtension, Row, params};

use crate::model::*;
use crate::{Store, StoreError, now_ms};

const APP_COLS: &str = "id, name, source_dir, current_release, created_ms, maintenance";
const RELEASE_COLS: &str =
    "app_id, number, revision, config_json, dir, status, created_ms, source_hash, source";
const INSTANCE_COLS: &str =
    "id, app_id, release, process, idx, port, pid, state, started_ms, updated_ms";
const EVENT_COLS: &str = "id, app_id, deploy_id, at_ms, level, message";

fn app_row(r: &Row<'_>) -> rusqlite::Result<AppRow> {
    Ok(AppRow {
        id: r.get(0)?,
        name: r.get(1)?,
        source_dir: r.get(2)?,
        current_release: r.get(3)?,
        created_ms: r.get(4)?,
        maintenance: r.get(5)?,
    })
}

/// Maps a TEXT enum column, turning an unknown value into a conversion error
/// that names the column.
fn text<T>(r: &Row<'_>, i: usize, parse: fn(&str) -> Result<T, StoreError>) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    parse(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn release_row(r: &Row<'_>) -> rusqlite::Result<ReleaseRow> {
    Ok(ReleaseRow {
        app_id: r.get(0)?,
        number: r.get(1)?,
        revision: r.get(2)?,
        config_json: r.get(3)?,
        dir: r.get(4)?,
        status: text(r, 5, ReleaseStatus::parse)?,
        created_ms: r.get(6)?,
        source_hash: r.get(7)?,
        source: r.get(8)?,
    })
}

fn instance_row(r: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        id: r.get(0)?,
        app_id: r.get(1)?,
        release: r.get(2)?,
        process: r.get(3)?,
        idx: r.get(4)?,
        port: r.get(5)?,
        pid: r.get(6)?,
        state: text(r, 7, InstanceState::parse)?,
        started_ms: r.get(8)?,
        updated_ms: r.get(9)?,
    })
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        app_id: r.get(1)?,
        deploy_id: r.get(2)?,
        at_ms: r.get(3)?,
        level: text(r, 4, EventLevel::parse)?,
        message: r.get(5)?,
    })
}

impl Store {
    /// Forgets an app and everything recorded of it (releases, deploys and
    /// their transitions, instances, events, metrics), in one transaction.
    /// The caller stops and removes what runs first.
    pub fn remove_app(&self, app_id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for sql in [
            "DELETE FROM events WHERE app_id = ?1
               OR deploy_id IN (SELECT id FROM deploys WHERE app_id = ?1)",
            "DELETE FROM deploy_transitions WHERE deploy_id IN (SELECT id FROM deploys WHERE app_id = ?1)",
            "DELETE FROM deploys WHERE app_id = ?1",
            "DELETE FROM instances WHERE app_id = ?1",
            "DELETE FROM release_metrics WHERE app_id = ?1",
            "DELETE FROM releases WHERE app_id = ?1",
            "DELETE FROM apps WHERE id = ?1",
        ] {
            tx.execute(sql, [app_id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Turns maintenance mode of an app on (with a message, empty for the
    /// default page) or off (`None`).
    pub fn set_maintenance(&self, app_id: i64, message: Option<&str>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE apps SET maintenance = ?2 WHERE id = ?1",
            params![app_id, message],
        )?;
        Ok(())
    }

    /// Registers `name` (or updates its source dir) and returns it.
    pub fn upsert_app(&self, name: &str, source_dir: &str) -> Result<AppRow, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO apps (name, source_dir, created_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET source_dir = excluded.source_dir",
            params![name, source_dir, now_ms()],
        )?;
        Ok(conn.query_row(
            &format!("SELECT {APP_COLS} FROM apps WHERE name = ?1"),
            [name],
            app_row,
        )?)
    }

    pub fn app(&self, name: &str) -> Result<AppRow, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {APP_COLS} FROM apps WHERE name = ?1"),
                [name],
                app_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchApp(name.to_owned()))
    }

    pub fn apps(&self) -> Result<Vec<AppRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {APP_COLS} FROM apps ORDER BY name"))?;
        let rows = stmt.query_map([], app_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Creates the next release of an app, numbered after the highest so
    /// far. `source_hash`: what its source tree hashed to, if known.
    /// Records where release `number` of `app_id` came from (see
    /// [`ReleaseRow::source`]).
    pub fn set_release_source(
        &self,
        app_id: i64,
        number: i64,
        source: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE releases SET source = ?3 WHERE app_id = ?1 AND number = ?2",
            params![app_id, number, source],
        )?;
        Ok(())
    }

    pub fn create_release(
        &self,
        app_id: i64,
        revision: Option<&str>,
        config_json: &str,
        source_hash: Option<&str>,
    ) -> Result<ReleaseRow, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let number: i64 = tx.query_row(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE app_id = ?1",
            [app_id],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO releases (app_id, number, revision, config_json, status, created_ms, source_hash)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
            params![app_id, number, revision, config_json, now_ms(), source_hash],
        )?;
        let row = tx.query_row(
            &format!("SELECT {RELEASE_COLS} FROM releases WHERE app_id = ?1 AND number = ?2"),
            params![app_id, number],
            release_row,
        )?;
        tx.commit()?;
        Ok(row)
    }

    pub fn release(&self, app: &AppRow, number: i64) -> Result<ReleaseRow, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {RELEASE_COLS} FROM releases WHERE app_id = ?1 AND number = ?2"),
                params![app.id, number],
                release_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchRelease {
                app: app.name.clone(),
                number,
            })
    }

    /// Every release of an app, newest first.
    pub fn releases(&self, app_id: i64) -> Result<Vec<ReleaseRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RELEASE_COLS} FROM releases WHERE app_id = ?1 ORDER BY number DESC"
        ))?;
        let rows = stmt
            .query_map([app_id], release_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn set_release_status(
        &self,
        app_id: i64,
        number: i64,
        status: ReleaseStatus,
        dir: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE releases SET status = ?3, dir = COALESCE(?4, dir) WHERE app_id = ?1 AND number = ?2",
            params![app_id, number, status.as_str(), dir],
        )?;
        Ok(())
    }

    /// Records an instance about to be started.
    pub fn insert_instance(&self, new: &NewInstance<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        self.conn().execute(
            "INSERT INTO instances (id, app_id, release, process, idx, port, state, started_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'starting', ?7, ?7)
             ON CONFLICT (id) DO UPDATE SET port = excluded.port, pid = NULL,
                 state = 'starting', started_ms = excluded.started_ms, updated_ms = excluded.updated_ms",
            params![new.id, new.app_id, new.release, new.process, new.idx, new.port, now],
        )?;
        Ok(())
    }

    pub fn set_instance_state(&self, id: &str, state: InstanceState) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE instances SET state = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, state.as_str(), now_ms()],
        )?;
        Ok(())
    }

    pub fn set_instance_pid(&self, id: &str, pid: Option<u32>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE instances SET pid = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, pid, now_ms()],
        )?;
        Ok(())
    }

    /// Instances not yet stopped, of one app or (with `None`) of all.
    pub fn live_instances(&self, app_id: Option<i64>) -> Result<Vec<InstanceRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {INSTANCE_COLS} FROM instances
             WHERE state NOT IN ('stopped', 'failed') AND (?1 IS NULL OR app_id = ?1)
             ORDER BY release, process, idx"
        ))?;
        let rows = stmt
            .query_map([app_id], instance_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn instance(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {INSTANCE_COLS} FROM instances WHERE id = ?1"),
                [id],
                instance_row,
            )
            .optional()?)
    }

    /// Appends to the event log.
    pub fn add_event(
        &self,
        app_id: Option<i64>,
        deploy_id: Option<i64>,
        level: EventLevel,
        message: &str,
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO events (app_id, deploy_id, at_ms, level, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![app_id, deploy_id, now_ms(), level.as_str(), message],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The newest `limit` events of an app (or all apps), oldest first.
    pub fn events(&self, app_id: Option<i64>, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {EVENT_COLS} FROM (
                 SELECT {EVENT_COLS} FROM events WHERE (?1 IS NULL OR app_id = ?1)
                 ORDER BY id DESC LIMIT ?2
             ) ORDER BY id"
        ))?;
        let rows = stmt
            .query_map(params![app_id, limit], event_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Adds one 10 s bucket of a release's request metrics (merging into an
    /// existing bucket).
    pub fn add_release_metrics(
        &self,
        app_id: i64,
        m: &ReleaseMetricsRow,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO release_metrics (app_id, release, bucket_ms, requests, errors, p50_ms, p99_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (app_id, release, bucket_ms) DO UPDATE SET
                 requests = requests + excluded.requests, errors = errors + excluded.errors,
                 p50_ms = COALESCE(excluded.p50_ms, p50_ms), p99_ms = COALESCE(excluded.p99_ms, p99_ms)",
            params![app_id, m.release, m.bucket_ms, m.requests, m.errors, m.p50_ms, m.p99_ms],
        )?;
        Ok(())
    }

    /// A release's metric buckets since `since_ms`, oldest first.
    pub fn release_metrics(
        &self,
        app_id: i64,
        release: i64,
        since_ms: i64,
    ) -> Result<Vec<ReleaseMetricsRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT release, bucket_ms, requests, errors, p50_ms, p99_ms FROM release_metrics
             WHERE app_id = ?1 AND release = ?2 AND bucket_ms >= ?3 ORDER BY bucket_ms",
        )?;
        let rows = stmt
            .query_map(params![app_id, release, since_ms], |r| {
                Ok(ReleaseMetricsRow {
                    release: r.get(0)?,
                    bucket_ms: r.get(1)?,
                    requests: r.get(2)?,
                    errors: r.get(3)?,
                    p50_ms: r.get(4)?,
                    p99_ms: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
