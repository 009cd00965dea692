//! The `process` runtime: instances are child processes of the server.

use std::path::{Path, PathBuf};

/// Options of the process runtime.
#[derive(Debug, Clone)]
pub struct ProcessRuntimeOptions {
    /// Root of wharf's data (`$WHARF_DATA`): releases go to
    /// `<data_dir>/apps/<app>/releases/<n>`, logs to `<data_dir>/apps/<app>/logs/`.
    pub data_dir: PathBuf,
    /// A log file is rotated (to `<file>.1`, replacing it) past this size.
    pub log_max_bytes: u64,
}

/// See the crate docs. Every child gets `WHARF_DATA_DIR=<data_dir>` and
/// `WHARF_INSTANCE=<id>` in its environment: that is how
/// [`crate::Runtime::kill_leftovers`] recognises its own leftovers in `/proc`.
#[derive(Debug)]
pub struct ProcessRuntime {/* … */}

impl ProcessRuntime {
    pub fn new(options: ProcessRuntimeOptions) -> Result<Self, crate::RuntimeError> {
        let _ = options;
        unimplemented!()
    }

    pub fn data_dir(&self) -> &Path {
        unimplemented!()
    }
}
