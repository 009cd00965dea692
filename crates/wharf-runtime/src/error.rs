use std::path::PathBuf;

/// What went wrong in a runtime, and on what.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("could not start instance {instance} (`{command}` in {workdir}): {source}")]
    Spawn { instance: String, command: String, workdir: PathBuf, source: std::io::Error },
}
