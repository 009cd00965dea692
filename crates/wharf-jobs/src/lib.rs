//! wharf's job queue and cron, as pure functions.
//!
//! Deploys, rollbacks, accessory boots, one-off runs, cron runs and
//! pipelines are *jobs*: rows in the store that one runner at a time holds
//! under a lease, made of recorded steps that a runner resumes after a
//! crash. This crate holds what the queue *decides*, with no I/O, so every
//! rule is a table-driven unit test:
//!
//! - [`model`]: the words — [`JobKind`], [`JobState`] (and its allowed
//!   transitions), [`StepState`], [`LogStream`], [`JobEnd`];
//! - [`policy`]: the per-app enqueue decision (one runs, one deploy waits,
//!   newest deploy wins, full queues refuse), cancel, and leases;
//! - [`schedule`]: cron expressions with a time zone, and when they fire;
//! - [`cron`]: whether an entry runs, skips or waits on a scheduler's tick.
//!
//! Dependency direction: this crate knows nothing wharf-specific;
//! `wharf-store` depends on it for the enums and calls the policy inside
//! its transactions, and the server wires both together. Config
//! validation calls [`Schedule::parse`] and [`TimeZone::parse`].

pub mod cron;
pub mod model;
pub mod policy;
pub mod schedule;

pub use cron::{CronHistory, CronOptions, Decision, SkipReason};
pub use model::{JobEnd, JobId, JobKind, JobState, LogStream, Outcome, ParseError, StepState};
pub use policy::{
    CancelAction, EnqueueDecision, QueueFull, QueueLimits, QueueScope, QueueSnapshot, Waiting,
};
pub use schedule::{InvalidField, Schedule, ScheduleError, TimeZone};
