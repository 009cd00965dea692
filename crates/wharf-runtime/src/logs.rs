//! Captured output of instances and tasks: per-instance files with
//! size-capped rotation, plus a broadcast of live lines.


/// One line of output of an instance or a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Milliseconds since the epoch when the line was read.
    pub at_ms: u64,
    pub app: String,
    pub release: u64,
    /// Process name, or the task name (e.g. "release").
    pub process: String,
    /// Instance id, or `<app>-r<release>-<task>` for tasks.
    pub instance: String,
    pub stream: LogStream,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

