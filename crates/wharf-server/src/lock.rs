//! One server per data directory: an exclusive `flock` on `<data>/server.lock`,
//! released by the kernel when the server dies, however it dies.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::ServerError;

#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: Flock<std::fs::File>,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, ServerError> {
        let path = data_dir.join("server.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| ServerError::Write {
                path: path.clone(),
                source,
            })?;
        let mut file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            ServerError::AlreadyRunning {
                data_dir: data_dir.to_path_buf(),
                pid: std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok()),
            }
        })?;
        file.set_len(0).map_err(|source| ServerError::Write {
            path: path.clone(),
            source,
        })?;
        write!(file, "{}", std::process::id())
            .map_err(|source| ServerError::Write { path, source })?;
        Ok(DataDirLock { _file: file })
    }
}
