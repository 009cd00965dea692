//! Errors of the runtimes: each says what failed, on what, and (where it
//! helps) what to do about it.

use std::path::PathBuf;

/// What went wrong in a runtime, and on what.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not start instance {instance} (`{command}` in {workdir}): {source}")]
    Spawn {
        instance: String,
        command: String,
        workdir: PathBuf,
        source: std::io::Error,
    },
    /// A name used to build a path (app, instance, task) is unusable.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The source of a release is missing or is not a directory.
    #[error("release source {path} is not a directory: point the app at its source directory")]
    NotADirectory { path: PathBuf },
    /// `start` was called for an instance id that is already supervised.
    #[error("instance {instance} is already running: stop it before starting it again")]
    AlreadyRunning { instance: String },
    /// The operation exists only in another runtime.
    #[error(
        "{what} need the docker runtime, and {on} does not use it: set runtime = \"docker\" in its wharf.toml"
    )]
    Unsupported { what: &'static str, on: String },
    /// The Docker runtime failed (engine unreachable, build failed, …).
    #[error(transparent)]
    Docker(Box<crate::docker::DockerError>),
}

impl RuntimeError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
