//! Captured output of instances and tasks: per-instance files with
//! size-capped rotation, plus a broadcast of live lines.
//!
//! File format: one line per output line, `<unix ms> <stdout|stderr> <text>`.
//! A file is rotated to `<file>.1` (replacing it) before a write would take it
//! past the size cap. Output lines longer than [`MAX_LINE_BYTES`] are cut.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

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

impl LogStream {
    /// `"stdout"` or `"stderr"`, as written in log files.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }
}

impl std::fmt::Display for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest output line kept; the rest of a longer line is dropped.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

/// Lines kept in memory for [`crate::TaskOutcome::tail`].
pub(crate) const TASK_TAIL_LINES: usize = 50;

/// Who a captured stream belongs to.
#[derive(Debug, Clone)]
pub(crate) struct LogSource {
    pub app: String,
    pub release: u64,
    pub process: String,
    pub instance: String,
}

/// An append-only log file with size-capped rotation to `<file>.1`.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    /// Set after a failed write, so a full disk is reported once, not per line.
    failing: bool,
}

impl LogFile {
    pub(crate) fn new(path: PathBuf, max_bytes: u64) -> Self {
        LogFile {
            path,
            file: None,
            size: 0,
            max_bytes: max_bytes.max(1),
            failing: false,
        }
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        // Just set above when it was None.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("log file not open"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        std::fs::rename(&self.path, PathBuf::from(rotated))?;
        self.size = 0;
        Ok(())
    }

    fn try_write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.open()?;
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = self.open()?;
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Appends already formatted lines (each ending in `\n`), rotating first
    /// when they would take the file past the cap. Write errors are logged
    /// (once until a write succeeds again), never returned: a full disk must
    /// not take an instance down.
    pub(crate) fn write_lines(&mut self, lines: &[Vec<u8>]) {
        for bytes in lines {
            match self.try_write(bytes) {
                Ok(()) => self.failing = false,
                Err(err) => {
                    self.file = None;
                    if !self.failing {
                        tracing::warn!(path = %self.path.display(), error = %err, "could not write log file; output is only broadcast until it works again");
                        self.failing = true;
                    }
                }
            }
        }
    }
}

pub(crate) type SharedLogFile = Arc<Mutex<LogFile>>;
pub(crate) type SharedTail = Arc<Mutex<VecDeque<String>>>;

/// Formats one line as stored in a log file.
fn format_line(at_ms: u64, stream: LogStream, line: &str) -> Vec<u8> {
    format!("{at_ms} {stream} {line}\n").into_bytes()
}

/// Parses one stored line back: `(at_ms, stream, text)`.
fn parse_line(s: &str) -> Option<(u64, LogStream, String)> {
    let (at, rest) = s.split_once(' ')?;
    let at_ms = at.parse().ok()?;
    let (stream, text) = match rest.split_once(' ') {
        Some((stream, text)) => (stream, text),
        None => (rest, ""),
    };
    Some((at_ms, LogStream::parse(stream)?, text.to_owned()))
}

/// Reads one line of at most [`MAX_LINE_BYTES`] into `buf` (without the line
/// end); the rest of a longer line is skipped. `Ok(false)` at end of input.
async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    let mut got_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(got_any);
        }
        got_any = true;
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                buf.extend_from_slice(&available[..i.min(room)]);
                reader.consume(i + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(true);
            }
            None => {
                let len = available.len();
                buf.extend_from_slice(&available[..len.min(room)]);
                reader.consume(len);
            }
        }
    }
}

fn now_ms() -> u64 {
    crate::unix_ms(SystemTime::now())
}

/// Reads `stream` line by line into `tx` until it closes.
fn spawn_reader<R>(
    stream: R,
    kind: LogStream,
    tx: mpsc::Sender<(u64, LogStream, String)>,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut buf = Vec::new();
        loop {
            match read_capped_line(&mut reader, &mut buf).await {
                Ok(true) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send((now_ms(), kind, line)).await.is_err() {
                        return;
                    }
                }
                Ok(false) => return,
                Err(err) => {
                    tracing::debug!(error = %err, "reading child output failed");
                    return;
                }
            }
        }
    })
}

/// The capture of one child's stdout and stderr. [`Capture::finish`] waits
/// (boundedly) until everything it read is written.
#[derive(Debug)]
pub(crate) struct Capture {
    readers: Vec<JoinHandle<()>>,
    writer: JoinHandle<()>,
}

impl Capture {
    /// Starts capturing: lines go to `file`, to `broadcast` and, if given, to
    /// `tail` (last [`TASK_TAIL_LINES`] lines).
    pub(crate) fn start(
        stdout: Option<impl AsyncRead + Unpin + Send + 'static>,
        stderr: Option<impl AsyncRead + Unpin + Send + 'static>,
        source: LogSource,
        file: SharedLogFile,
        broadcast: broadcast::Sender<LogLine>,
        tail: Option<SharedTail>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<(u64, LogStream, String)>(1024);
        let mut readers = Vec::new();
        if let Some(out) = stdout {
            readers.push(spawn_reader(out, LogStream::Stdout, tx.clone()));
        }
        if let Some(err) = stderr {
            readers.push(spawn_reader(err, LogStream::Stderr, tx.clone()));
        }
        drop(tx);
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 512 {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let formatted: Vec<Vec<u8>> = batch
                    .iter()
                    .map(|(at, stream, line)| format_line(*at, *stream, line))
                    .collect();
                let file = file.clone();
                // Blocking file I/O off the async workers; one hop per batch.
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut file) = file.lock() {
                        file.write_lines(&formatted);
                    }
                })
                .await;
                if let Some(tail) = &tail
                    && let Ok(mut tail) = tail.lock()
                {
                    for (_, _, line) in &batch {
                        if tail.len() == TASK_TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line.clone());
                    }
                }
                for (at_ms, stream, line) in batch {
                    // No receivers is fine; lagging receivers lose lines.
                    let _ = broadcast.send(LogLine {
                        at_ms,
                        app: source.app.clone(),
                        release: source.release,
                        process: source.process.clone(),
                        instance: source.instance.clone(),
                        stream,
                        line,
                    });
                }
            }
        });
        Capture { readers, writer }
    }

    /// Waits until the output is written, at most `limit` (a grandchild that
    /// keeps the pipes open must not hang the caller); then stops reading.
    pub(crate) async fn finish(mut self, limit: Duration) {
        if tokio::time::timeout(limit, &mut self.writer).await.is_err() {
            for reader in &self.readers {
                reader.abort();
            }
            // Readers gone, so the channel closes and the writer drains what it has.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.writer).await;
        }
    }
}

/// What a log file name says about its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFileOwner {
    pub release: u64,
    pub process: String,
    pub instance: String,
}

/// Recognises `<app>-r<release>-<process>-<index>.log[.1]` (instances) and
/// `release-<release>-<task>.log[.1]` (tasks, instance `<app>-r<release>-<task>`).
pub(crate) fn parse_log_file_name(app: &str, name: &str) -> Option<LogFileOwner> {
    let stem = name
        .strip_suffix(".log")
        .or_else(|| name.strip_suffix(".log.1"))?;
    if let Some(rest) = stem.strip_prefix(app).and_then(|r| r.strip_prefix("-r")) {
        let (release, rest) = rest.split_once('-')?;
        let release = parse_digits(release)?;
        let (process, index) = rest.rsplit_once('-')?;
        parse_digits(index)?;
        if process.is_empty() {
            return None;
        }
        return Some(LogFileOwner {
            release,
            process: process.to_owned(),
            instance: stem.to_owned(),
        });
    }
    let rest = stem.strip_prefix("release-")?;
    let (release, task) = rest.split_once('-')?;
    let release = parse_digits(release)?;
    if task.is_empty() {
        return None;
    }
    Some(LogFileOwner {
        release,
        process: task.to_owned(),
        instance: format!("{app}-r{release}-{task}"),
    })
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The last `n` lines of a file, oldest first, reading backwards from the end
/// so a large file costs only what is returned.
fn last_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut pos = len;
    let mut chunk_buf: Vec<u8> = Vec::new();
    const CHUNK: u64 = 64 * 1024;
    loop {
        // Lines = newlines in the buffer, ignoring one at the very end.
        let newlines = chunk_buf.iter().filter(|&&b| b == b'\n').count();
        let trailing = usize::from(chunk_buf.last() == Some(&b'\n'));
        if pos == 0 || newlines.saturating_sub(trailing) >= n {
            break;
        }
        let step = CHUNK.min(pos);
        pos -= step;
        file.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0u8; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&chunk_buf);
        chunk_buf = chunk;
    }
    let text = String::from_utf8_lossy(&chunk_buf);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    // Unless the read reached the file start, the first piece may be partial.
    if pos > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|s| (*s).to_owned()).collect())
}

/// The last `n` lines of `app` from the files in `dir`, oldest first.
pub(crate) fn tail_dir(
    dir: &Path,
    app: &str,
    process: Option<&str>,
    n: usize,
) -> Result<Vec<LogLine>, crate::RuntimeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(crate::RuntimeError::io("read log directory", dir, err)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| crate::RuntimeError::io("read log directory", dir, err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(owner) = parse_log_file_name(app, name) else {
            continue;
        };
        if process.is_some_and(|p| p != owner.process) {
            continue;
        }
        // `.1` (older) sorts before the current file of the same owner.
        let rotated = name.ends_with(".1");
        files.push((owner.instance.clone(), !rotated, entry.path(), owner));
    }
    files.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut lines = Vec::new();
    for (_, _, path, owner) in files {
        let raw = match last_lines(&path, n) {
            Ok(raw) => raw,
            // Rotated away between listing and reading.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(crate::RuntimeError::io("read log file", path, err)),
        };
        for raw in raw {
            if let Some((at_ms, stream, line)) = parse_line(&raw) {
                lines.push(LogLine {
                    at_ms,
                    app: app.to_owned(),
                    release: owner.release,
                    process: owner.process.clone(),
                    instance: owner.instance.clone(),
                    stream,
                    line,
                });
            }
        }
    }
    lines.sort_by_key(|l| l.at_ms);
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_log_file_name("my-app", "my-app-r12-web-worker-3.log"),
            Some(LogFileOwner {
                release: 12,
                process: "web-worker".into(),
                instance: "my-app-r12-web-worker-3".into()
            })
        );
        assert_eq!(
            parse_log_file_name("my-app", "release-4-migrate.log.1"),
            Some(LogFileOwner {
                release: 4,
                process: "migrate".into(),
                instance: "my-app-r4-migrate".into()
            })
        );
        assert_eq!(parse_log_file_name("my-app", "other-r1-web-0.log"), None);
        assert_eq!(parse_log_file_name("my-app", "my-app-r1-web-x.log"), None);
        assert_eq!(parse_log_file_name("my-app", "my-app-r1-web-0.txt"), None);
        // An app called "release" is not confused with task logs.
        assert_eq!(
            parse_log_file_name("release", "release-r2-web-0.log").map(|o| o.release),
            Some(2)
        );
    }

    #[test]
    fn lines_round_trip() {
        let raw = format_line(1234, LogStream::Stderr, "hello  world ");
        let s = String::from_utf8(raw).unwrap();
        assert_eq!(
            parse_line(s.trim_end_matches('\n')),
            Some((1234, LogStream::Stderr, "hello  world ".into()))
        );
        assert_eq!(
            parse_line("1 stdout"),
            Some((1, LogStream::Stdout, String::new()))
        );
        assert_eq!(parse_line("garbage"), None);
    }

    #[test]
    fn last_lines_reads_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let got = last_lines(&path, 3).unwrap();
        assert_eq!(got, vec!["line 19997", "line 19998", "line 19999"]);
        assert_eq!(last_lines(&path, 30_000).unwrap().len(), 20_000);
        std::fs::write(&path, "a\nb").unwrap();
        assert_eq!(last_lines(&path, 5).unwrap(), vec!["a", "b"]);
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 100];
        input.extend_from_slice(b"\nnext\r\n");
        let mut reader = BufReader::with_capacity(1000, &input[..]);
        let mut buf = Vec::new();
        assert!(read_capped_line(&mut reader, &mut buf).await.unwrap());
        assert_eq!(buf.len(), MAX_LINE_BYTES);
        assert!(read_capped_line(&mut reader, &mut buf).await.unwrap());
        assert_eq!(buf, b"next");
        assert!(!read_capped_line(&mut reader, &mut buf).await.unwrap());
    }
}
