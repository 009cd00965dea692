//! Forge webhook deliveries (migration 8): what came to `POST /hooks/{app}`
//! and what wharf did with it, and the count of refused ones.
//!
//! [`Store::record_delivery`] is one `BEGIN IMMEDIATE` transaction that
//! de-duplicates the delivery, queues its pipeline job (if any) with the
//! queue's per-app policy and inserts the delivery's row with the job's
//! id: a delivery is recorded with its job or not at all, and a crash
//! between the two cannot happen.
//!
//! A delivery is a duplicate when its key (the forge's delivery id) *or*
//! its body's SHA-256 was already recorded for the app and forge: a
//! redelivery keeps its id, and a captured body re-sent under a new id
//! (GitHub, Gitea, Forgejo and Bitbucket sign no timestamp) is refused
//! the same way. A duplicate changes nothing but the first delivery's
//! repeat count. Delivery rows are never pruned: the table is the
//! memory that refuses replays.
//!
//! Refused deliveries (no secret, a missing or bad signature) are not
//! stored one by one — anyone can send them, and an attacker would fill
//! the table — but counted per app and forge with the last one's time and
//! reason ([`Store::record_refusal`]), a row per pair whatever comes.

use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use wharf_jobs::{JobId, ParseError, QueueFull, QueueLimits};

use crate::jobs::{Enqueued, NewJob, enqueue_in};
use crate::{Store, StoreError};

/// Longest `event` kept (a header value; anything longer is cut).
const MAX_EVENT_LEN: usize = 100;
/// Longest `detail` or refusal reason kept.
const MAX_DETAIL_LEN: usize = 2000;

/// What wharf did with a recorded delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    /// A push to the watched branch: a pipeline job was queued.
    Queued,
    /// The forge's ping (sent when a webhook is created).
    Ping,
    /// An event other than a push.
    IgnoredEvent,
    /// A push to another branch, a tag, or an app that watches no branch.
    IgnoredBranch,
    /// The watched branch was deleted.
    IgnoredDeleted,
    /// A push whose payload could not be read.
    Invalid,
}

impl HookOutcome {
    pub const ALL: [HookOutcome; 6] = [
        HookOutcome::Queued,
        HookOutcome::Ping,
        HookOutcome::IgnoredEvent,
        HookOutcome::IgnoredBranch,
        HookOutcome::IgnoredDeleted,
        HookOutcome::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookOutcome::Queued => "queued",
            HookOutcome::Ping => "ping",
            HookOutcome::IgnoredEvent => "ignored_event",
            HookOutcome::IgnoredBranch => "ignored_branch",
            HookOutcome::IgnoredDeleted => "ignored_deleted",
            HookOutcome::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for HookOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HookOutcome {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HookOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| ParseError {
                what: "delivery outcome",
                value: s.to_owned(),
                expected: "`queued`, `ping`, `ignored_event`, `ignored_branch`, `ignored_deleted`, `invalid`".into(),
            })
    }
}

/// A delivery that passed its signature check, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery<'a> {
    pub app: &'a str,
    /// The forge's slug (`github`, …).
    pub forge: &'a str,
    /// The forge's delivery id, or one made from the body's hash.
    pub delivery_key: &'a str,
    /// SHA-256 of the raw body, hex.
    pub body_sha256: &'a str,
    /// The event as the forge names it.
    pub event: &'a str,
    pub ref_name: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub repo: Option<&'a str>,
    /// What was done; with a job to queue it is always
    /// [`HookOutcome::Queued`], whatever this says.
    pub outcome: HookOutcome,
    /// Why, for people (no secrets).
    pub detail: Option<&'a str>,
}

/// A recorded delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub app: String,
    pub forge: String,
    pub delivery_key: String,
    pub body_sha256: String,
    pub event: String,
    pub ref_name: Option<String>,
    pub commit: Option<String>,
    pub repo: Option<String>,
    pub received_ms: i64,
    pub outcome: HookOutcome,
    pub detail: Option<String>,
    /// The pipeline job it queued.
    pub job_id: Option<JobId>,
    /// Later deliveries refused as duplicates of this one.
    pub repeats: i64,
    pub last_repeat_ms: Option<i64>,
}

/// What [`Store::record_delivery`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Recorded, with its job when one was given (`delivery.job_id`).
    Recorded {
        delivery: Box<DeliveryRow>,
        /// The waiting jobs the new job replaced.
        superseded: Vec<JobId>,
        /// The app's running job the new one waits for.
        behind: Option<JobId>,
    },
    /// Its key or body was recorded before, as `first`: nothing was
    /// inserted or queued (the first's `repeats` counts it).
    Duplicate { first: Box<DeliveryRow> },
    /// The queue is full: nothing was recorded, so the forge's retry (or
    /// a redelivery) is not a duplicate.
    Full(QueueFull),
}

/// The refused deliveries of an app from one forge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRow {
    pub app: String,
    pub forge: String,
    pub count: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Why the last one was refused.
    pub last_reason: String,
}

const DELIVERY_COLS: &str = "id, app, forge, delivery_key, body_sha256, event, ref_name, commit_sha, repo, received_ms, outcome, detail, job_id, repeats, last_repeat_ms";

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    let outcome: String = r.get(10)?;
    Ok(DeliveryRow {
        id: r.get(0)?,
        app: r.get(1)?,
        forge: r.get(2)?,
        delivery_key: r.get(3)?,
        body_sha256: r.get(4)?,
        event: r.get(5)?,
        ref_name: r.get(6)?,
        commit: r.get(7)?,
        repo: r.get(8)?,
        received_ms: r.get(9)?,
        outcome: outcome.parse().map_err(|e: ParseError| {
            rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e))
        })?,
        detail: r.get(11)?,
        job_id: r.get(12)?,
        repeats: r.get(13)?,
        last_repeat_ms: r.get(14)?,
    })
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Store {
    /// Records a verified delivery and, with `job`, queues its pipeline in
    /// the same transaction (see the module doc): a duplicate key or body
    /// changes nothing but the first's repeat count; a full queue records
    /// nothing.
    pub fn record_delivery(
        &self,
        new: &NewDelivery<'_>,
        job: Option<(&NewJob<'_>, QueueLimits)>,
        now_ms: i64,
    ) -> Result<DeliveryOutcome, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(first) = seen_before(&tx, new)? {
            tx.execute(
                "UPDATE hook_deliveries SET repeats = repeats + 1, last_repeat_ms = ?2 WHERE id = ?1",
                params![first.id, now_ms],
            )?;
            let first = delivery_in(&tx, first.id)?;
            tx.commit()?;
            return Ok(DeliveryOutcome::Duplicate {
                first: Box::new(first),
            });
        }
        let (outcome, job_id, superseded, behind) = match job {
            None => (new.outcome, None, Vec::new(), None),
            Some((job, limits)) => match enqueue_in(&tx, job, limits, now_ms)? {
                Enqueued::Queued {
                    job,
                    superseded,
                    behind,
                } => (HookOutcome::Queued, Some(job.id), superseded, behind),
                // The job's own dedup key was queued before (by the same
                // delivery, whose row was lost to a pruned database, say):
                // that job is this delivery's.
                Enqueued::Duplicate { existing_id } => {
                    (HookOutcome::Queued, Some(existing_id), Vec::new(), None)
                }
                Enqueued::Full(full) => return Ok(DeliveryOutcome::Full(full)),
            },
        };
        tx.execute(
            "INSERT INTO hook_deliveries (app, forge, delivery_key, body_sha256, event, ref_name,
                 commit_sha, repo, received_ms, outcome, detail, job_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                new.app,
                new.forge,
                new.delivery_key,
                new.body_sha256,
                cut(new.event, MAX_EVENT_LEN),
                new.ref_name,
                new.commit,
                new.repo,
                now_ms,
                outcome.as_str(),
                new.detail.map(|d| cut(d, MAX_DETAIL_LEN)),
                job_id,
            ],
        )?;
        let delivery = delivery_in(&tx, tx.last_insert_rowid())?;
        tx.commit()?;
        Ok(DeliveryOutcome::Recorded {
            delivery: Box::new(delivery),
            superseded,
            behind,
        })
    }

    /// The deliveries of `app`, newest first, at most `limit`.
    pub fn deliveries(&self, app: &str, limit: u32) -> Result<Vec<DeliveryRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM hook_deliveries WHERE app = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![app, limit], delivery_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Counts a refused delivery of `app` from `forge` (see the module
    /// doc); `reason` says why (no secret values).
    pub fn record_refusal(
        &self,
        app: &str,
        forge: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO hook_refusals (app, forge, count, first_ms, last_ms, last_reason)
             VALUES (?1, ?2, 1, ?3, ?3, ?4)
             ON CONFLICT (app, forge) DO UPDATE SET
                 count = count + 1, last_ms = excluded.last_ms, last_reason = excluded.last_reason",
            params![app, forge, now_ms, cut(reason, MAX_DETAIL_LEN)],
        )?;
        Ok(())
    }

    /// The refused deliveries of `app`, per forge, most recent first.
    pub fn refusals(&self, app: &str) -> Result<Vec<RefusalRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT app, forge, count, first_ms, last_ms, last_reason FROM hook_refusals
             WHERE app = ?1 ORDER BY last_ms DESC, forge",
        )?;
        let rows = stmt
            .query_map([app], |r| {
                Ok(RefusalRow {
                    app: r.get(0)?,
                    forge: r.get(1)?,
                    count: r.get(2)?,
                    first_ms: r.get(3)?,
                    last_ms: r.get(4)?,
                    last_reason: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// The first delivery with `new`'s key or body, for its app and forge.
fn seen_before(
    tx: &Transaction<'_>,
    new: &NewDelivery<'_>,
) -> Result<Option<DeliveryRow>, StoreError> {
    Ok(tx
        .query_row(
            &format!(
                "SELECT {DELIVERY_COLS} FROM hook_deliveries
                 WHERE app = ?1 AND forge = ?2 AND (delivery_key = ?3 OR body_sha256 = ?4)
                 ORDER BY id LIMIT 1"
            ),
            params![new.app, new.forge, new.delivery_key, new.body_sha256],
            delivery_row,
        )
        .optional()?)
}

fn delivery_in(tx: &Transaction<'_>, id: i64) -> Result<DeliveryRow, StoreError> {
    Ok(tx.query_row(
        &format!("SELECT {DELIVERY_COLS} FROM hook_deliveries WHERE id = ?1"),
        [id],
        delivery_row,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        for o in HookOutcome::ALL {
            assert_eq!(o.as_str().parse::<HookOutcome>(), Ok(o));
        }
        assert!("duplicate".parse::<HookOutcome>().is_err());
    }

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("push", 100), "push");
        assert_eq!(cut("éé", 3), "é");
        assert_eq!(cut("abc", 0), "");
    }
}
