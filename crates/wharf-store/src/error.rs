//! Store errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "could not open the store at {path}: {source}; check the data directory's permissions and free space"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the store is at schema version {found}, newer than this wharf knows ({known}); upgrade wharf"
    )]
    TooNew { found: u32, known: u32 },
    #[error(
        "a {kind} of {app} is already running (deploy {deploy}, now {state}); wait for it to finish"
    )]
    DeployInProgress {
        app: String,
        deploy: i64,
        kind: String,
        state: String,
    },
    #[error("no app named {0} in this server's store; deploy it first")]
    NoSuchApp(String),
    #[error("{app} has no release {number}")]
    NoSuchRelease { app: String, number: i64 },
    #[error("no job {0} in this server's store; list jobs with `wharf jobs`")]
    NoSuchJob(i64),
    #[error(
        "job {job} is no longer held by runner {owner} (its lease expired and it was taken over, or it ended); stop working on it, nothing was recorded"
    )]
    LeaseLost { job: i64, owner: String },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store holds a value this wharf cannot read: {0}")]
    Corrupt(String),
}
