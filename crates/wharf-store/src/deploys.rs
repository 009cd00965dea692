//! Deploys and their transitions: the durable half of the deploy state
//! machine. Each method commits before it returns, so the caller may act
//! outside the process right after (Architecture Invariant 3).

use rusqlite::{OptionalExtension, Row, params};

use crate::model::*;
use crate::{Store, StoreError, now_ms};

const DEPLOY_COLS: &str = "id, app_id, kind, from_release, to_release, state, outcome, error, started_ms, finished_ms, strategy, weight, verdict";

fn deploy_row(r: &Row<'_>) -> rusqlite::Result<DeployRow> {
    let conv = |i: usize, e: StoreError| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let kind: String = r.get(2)?;
    let outcome: Option<String> = r.get(6)?;
    Ok(DeployRow {
        id: r.get(0)?,
        app_id: r.get(1)?,
        kind: DeployKind::parse(&kind).map_err(|e| conv(2, e))?,
        from_release: r.get(3)?,
        to_release: r.get(4)?,
        state: r.get(5)?,
        outcome: outcome
            .map(|o| DeployOutcome::parse(&o))
            .transpose()
            .map_err(|e| conv(6, e))?,
        error: r.get(7)?,
        started_ms: r.get(8)?,
        finished_ms: r.get(9)?,
        strategy: r.get(10)?,
        weight: r.get(11)?,
        verdict: r.get(12)?,
    })
}

impl Store {
    /// Starts a deploy of `app`, in state `pending`. Fails with
    /// [`StoreError::DeployInProgress`] while another one of the same app
    /// has no outcome (a unique partial index guards this, so two servers on
    /// one store cannot race past it either).
    pub fn begin_deploy(
        &self,
        app: &AppRow,
        kind: DeployKind,
        from_release: Option<i64>,
        to_release: Option<i64>,
    ) -> Result<DeployRow, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        let inserted = tx.execute(
            "INSERT INTO deploys (app_id, kind, from_release, to_release, state, started_ms)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![app.id, kind.as_str(), from_release, to_release, now],
        );
        if let Err(rusqlite::Error::SqliteFailure(e, _)) = &inserted
            && e.code == rusqlite::ErrorCode::ConstraintViolation
        {
            let running = tx.query_row(
                &format!("SELECT {DEPLOY_COLS} FROM deploys WHERE app_id = ?1 AND outcome IS NULL"),
                [app.id],
                deploy_row,
            )?;
            return Err(StoreError::DeployInProgress {
                app: app.name.clone(),
                deploy: running.id,
                kind: running.kind.to_string(),
                state: running.state,
            });
        }
        inserted?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO deploy_transitions (deploy_id, seq, state, at_ms) VALUES (?1, 1, 'pending', ?2)",
            params![id, now],
        )?;
        let row = tx.query_row(
            &format!("SELECT {DEPLOY_COLS} FROM deploys WHERE id = ?1"),
            [id],
            deploy_row,
        )?;
        tx.commit()?;
        Ok(row)
    }

    /// Records that deploy `id` enters `state`.
    pub fn transition(&self, id: i64, state: &str, detail: Option<&str>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        record_transition(&tx, id, state, detail)?;
        tx.commit()?;
        Ok(())
    }

    /// Records the strategy a deploy runs with.
    pub fn set_deploy_strategy(&self, id: i64, strategy: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deploys SET strategy = ?2 WHERE id = ?1",
            params![id, strategy],
        )?;
        Ok(())
    }

    /// Records a new traffic share of the new release, as a transition
    /// (`step` names it, e.g. "canary"), before the table that applies it is
    /// swapped in.
    pub fn set_weight(
        &self,
        id: i64,
        step: &str,
        weight: u32,
        detail: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        record_transition(&tx, id, step, Some(detail))?;
        tx.execute(
            "UPDATE deploys SET weight = ?2 WHERE id = ?1",
            params![id, weight],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Keeps the latest analysis decision of a deploy (JSON).
    pub fn set_verdict(&self, id: i64, verdict_json: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deploys SET verdict = ?2 WHERE id = ?1",
            params![id, verdict_json],
        )?;
        Ok(())
    }

    /// Sets which release a deploy goes to (known once the release exists).
    pub fn set_deploy_target(&self, id: i64, to_release: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deploys SET to_release = ?2 WHERE id = ?1",
            params![id, to_release],
        )?;
        Ok(())
    }

    /// The commit point of a deploy: records `switched` and makes `release`
    /// the app's serving release, in one transaction.
    pub fn switch(&self, id: i64, app_id: i64, release: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        record_transition(
            &tx,
            id,
            "switched",
            Some(&format!("release {release} is serving")),
        )?;
        tx.execute(
            "UPDATE apps SET current_release = ?2 WHERE id = ?1",
            params![app_id, release],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a deploy with its outcome (and error message when it failed).
    pub fn finish_deploy(
        &self,
        id: i64,
        outcome: DeployOutcome,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        record_transition(&tx, id, outcome.as_str(), error)?;
        tx.execute(
            "UPDATE deploys SET outcome = ?2, error = ?3, finished_ms = ?4 WHERE id = ?1",
            params![id, outcome.as_str(), error, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn deploy(&self, id: i64) -> Result<Option<DeployRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {DEPLOY_COLS} FROM deploys WHERE id = ?1"),
                [id],
                deploy_row,
            )
            .optional()?)
    }

    /// Deploys without an outcome (after a crash: those to converge).
    pub fn unfinished_deploys(&self) -> Result<Vec<DeployRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DEPLOY_COLS} FROM deploys WHERE outcome IS NULL ORDER BY id"
        ))?;
        let rows = stmt.query_map([], deploy_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The newest `limit` deploys of an app, newest first.
    pub fn deploys(&self, app_id: i64, limit: u32) -> Result<Vec<DeployRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DEPLOY_COLS} FROM deploys WHERE app_id = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![app_id, limit], deploy_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn transitions(&self, deploy_id: i64) -> Result<Vec<TransitionRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT deploy_id, seq, state, at_ms, detail FROM deploy_transitions
             WHERE deploy_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([deploy_id], |r| {
                Ok(TransitionRow {
                    deploy_id: r.get(0)?,
                    seq: r.get(1)?,
                    state: r.get(2)?,
                    at_ms: r.get(3)?,
                    detail: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

fn record_transition(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    state: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let changed = tx.execute(
        "UPDATE deploys SET state = ?2 WHERE id = ?1",
        params![id, state],
    )?;
    if changed == 0 {
        return Err(StoreError::Corrupt(format!("deploy {id} does not exist")));
    }
    tx.execute(
        "INSERT INTO deploy_transitions (deploy_id, seq, state, at_ms, detail)
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM deploy_transitions WHERE deploy_id = ?1), ?2, ?3, ?4)",
        params![id, state, now, detail],
    )?;
    Ok(())
}
