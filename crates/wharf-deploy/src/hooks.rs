//! Forge webhook intake's one step in the engine: record a verified
//! delivery and queue its pipeline in the same store transaction
//! ([`wharf_store::Store::record_delivery`]), then wake the job runner.
//!
//! The server checks the signature and decides what the delivery is; this
//! only writes, so a webhook is answered as soon as the store committed.

use wharf_jobs::{JobKind, QueueLimits};
use wharf_store::{DeliveryOutcome, NewDelivery, NewJob, now_ms};

use crate::{DeployError, Engine, JobArgs};

impl Engine {
    /// Records `delivery` and, with `pipeline` (a [`JobArgs::Pipeline`]),
    /// queues it in the same transaction; wakes the runner when a job was
    /// queued. A duplicate key or body changes nothing; a full queue
    /// records nothing.
    pub fn accept_delivery(
        &self,
        delivery: &NewDelivery<'_>,
        pipeline: Option<&JobArgs>,
    ) -> Result<DeliveryOutcome, DeployError> {
        let json = match pipeline {
            None => None,
            Some(args @ JobArgs::Pipeline(_)) => Some(
                serde_json::to_string(args).map_err(|e| DeployError::Internal(e.to_string()))?,
            ),
            Some(_) => {
                return Err(DeployError::Internal(
                    "a webhook delivery can only queue a pipeline job".into(),
                ));
            }
        };
        let job = json
            .as_deref()
            .map(|json| NewJob::new(delivery.app, JobKind::Pipeline, json));
        let outcome = self.store.record_delivery(
            delivery,
            job.as_ref().map(|job| (job, QueueLimits::default())),
            now_ms(),
        )?;
        if let DeliveryOutcome::Recorded {
            delivery: row,
            superseded,
            behind,
        } = &outcome
            && let Some(job) = row.job_id
        {
            tracing::info!(
                app = %row.app,
                job,
                delivery = row.id,
                forge = %row.forge,
                ?superseded,
                ?behind,
                "pipeline queued by a webhook delivery"
            );
            // The newest push wins: a pipeline still running for an older
            // push stops (its CI at once, its deploy before the switch).
            if let Some(running) = *behind
                && let Ok(Some(old)) = self.store.job(running)
                && old.kind == JobKind::Pipeline
            {
                tracing::info!(app = %row.app, job = running, newer = job, "cancelling the pipeline of an older push");
                let _ = self.cancel_job(running);
            }
            self.jobs.wake();
        }
        Ok(outcome)
    }
}
