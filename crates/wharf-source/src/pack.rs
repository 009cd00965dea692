//! Packing an app directory into the deterministic tar the server unpacks
//! (the format is described in the crate's documentation).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use crate::error::{Limit, Refusal, SourceError};
use crate::ignore::Ignore;
use crate::path::symlink_target;
use crate::{Limits, hex};

/// The ignore file wharf reads first.
pub const WHARFIGNORE: &str = ".wharfignore";
/// The ignore file read when there is no [`WHARFIGNORE`].
pub const DOCKERIGNORE: &str = ".dockerignore";

/// Names never sent at any depth (`.git` may be a file in worktrees).
const SKIP_ANYWHERE: &[&str] = &[".git"];
/// Names never sent at the top.
const SKIP_AT_TOP: &[&str] = &[".wharf"];
/// Names not sent at the top when there is no ignore file.
const SKIP_AT_TOP_BY_DEFAULT: &[&str] = &["target"];

/// Something of the app directory that was not packed because an upload
/// cannot hold it (a fifo, a socket, a device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Relative, `/`-separated.
    pub path: String,
    /// "fifo", "socket", "block device", "character device".
    pub kind: &'static str,
}

/// What [`pack_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    /// SHA-256 of the archive, lower-case hex.
    pub sha256: String,
    /// Regular files.
    pub files: u64,
    /// Bytes of file content (what [`Limits::max_bytes`] counts).
    pub bytes: u64,
    /// Bytes of the archive.
    pub size: u64,
    /// Entries as [`Limits::max_entries`] counts them: files, directories
    /// and links, and the directories walked for an ignore file's
    /// exceptions (unpacking makes them as parents of what they hold).
    pub entries: u64,
    /// The ignore file that was applied, if any.
    pub ignore_file: Option<&'static str>,
    /// What was left out because an upload cannot hold it.
    pub skipped: Vec<Skipped>,
}

/// An app directory packed in memory by [`pack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The archive.
    pub tar: Vec<u8>,
    /// Its hash, counts and what was left out.
    pub summary: PackSummary,
}

/// Packs `dir` into an archive in memory. See [`pack_to`].
pub fn pack(dir: &Path, limits: &Limits) -> Result<Packed, SourceError> {
    let mut tar = Vec::new();
    let summary = pack_to(dir, limits, &mut tar)?;
    Ok(Packed { tar, summary })
}

/// Packs `dir` into `out` as a deterministic tar archive (the format is
/// described in the crate's documentation), hashing it on the way.
///
/// Refused, before anything past the limit is written: a tree over
/// `limits`, a name that is not UTF-8, a path or link target over
/// `max_path_len`, a symlink that is absolute or leads outside `dir`.
/// Fifos, sockets and devices are skipped and listed in the summary. On an
/// error, what was written to `out` is not a whole archive: discard it.
pub fn pack_to<W: Write>(dir: &Path, limits: &Limits, out: W) -> Result<PackSummary, SourceError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(SourceError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        Err(source) => {
            return Err(SourceError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    }
    let (ignore, ignore_file) = load_ignore(dir)?;
    let builder = tar::Builder::new(HashingWriter::new(out));
    let mut packer = Packer {
        builder,
        limits: *limits,
        root: dir,
        ignore,
        files: 0,
        bytes: 0,
        entries: 0,
        skipped: Vec::new(),
    };
    packer.walk(dir, "")?;
    let Packer {
        builder,
        files,
        bytes,
        entries,
        skipped,
        ..
    } = packer;
    let out = builder
        .into_inner()
        .map_err(|source| SourceError::Write { source })?;
    Ok(PackSummary {
        sha256: hex(&out.hasher.finalize()),
        files,
        bytes,
        size: out.count,
        entries,
        ignore_file,
        skipped,
    })
}

/// The ignore file of `dir`: `.wharfignore`, else `.dockerignore`.
fn load_ignore(dir: &Path) -> Result<(Option<Ignore>, Option<&'static str>), SourceError> {
    for name in [WHARFIGNORE, DOCKERIGNORE] {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => return Ok((Some(Ignore::parse(&text, &path)?), Some(name))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SourceError::Read { path, source }),
        }
    }
    Ok((None, None))
}

/// What becomes of one entry of the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Sent (a directory: walked too).
    Send,
    /// Not sent; a directory is walked for exceptions.
    Walk,
    /// Not sent, nor anything under it.
    Never,
}

/// What is sent of the entry at `rel` (`/`-separated, `name` its last part):
/// always-skipped names first, then the ignore files themselves (always
/// sent), then the ignore file's patterns (or the defaults without one).
fn verdict(ignore: Option<&Ignore>, rel: &str, name: &str) -> Verdict {
    let top = !rel.contains('/');
    if SKIP_ANYWHERE.contains(&name) || (top && SKIP_AT_TOP.contains(&name)) {
        return Verdict::Never;
    }
    if top && (name == WHARFIGNORE || name == DOCKERIGNORE) {
        return Verdict::Send;
    }
    match ignore {
        Some(ignore) if ignore.excludes(rel) => {
            // An exception may bring back something under it: walk it.
            if ignore.has_exceptions() {
                Verdict::Walk
            } else {
                Verdict::Never
            }
        }
        Some(_) => Verdict::Send,
        None if top && SKIP_AT_TOP_BY_DEFAULT.contains(&name) => Verdict::Never,
        None => Verdict::Send,
    }
}

struct Packer<'a, W: Write> {
    builder: tar::Builder<HashingWriter<W>>,
    limits: Limits,
    root: &'a Path,
    ignore: Option<Ignore>,
    files: u64,
    bytes: u64,
    entries: u64,
    skipped: Vec<Skipped>,
}

impl<W: Write> Packer<'_, W> {
    /// Packs what is under `dir` (at `rel` in the archive).
    fn walk(&mut self, dir: &Path, rel: &str) -> Result<(), SourceError> {
        let read_error = |source| SourceError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(read_error)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_error)?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let lossy = name.to_string_lossy();
            let rel_path = match rel {
                "" => lossy.clone().into_owned(),
                rel => format!("{rel}/{lossy}"),
            };
            let verdict = verdict(self.ignore.as_ref(), &rel_path, &lossy);
            if verdict == Verdict::Never {
                continue;
            }
            if name.to_str().is_none() {
                return Err(self.unpackable(rel_path, Refusal::NotUtf8));
            }
            if rel_path.len() > self.limits.max_path_len {
                let reason = Refusal::TooLong {
                    len: rel_path.len(),
                    max: self.limits.max_path_len,
                };
                return Err(self.unpackable(rel_path, reason));
            }
            let meta = fs::symlink_metadata(&path).map_err(|source| SourceError::Read {
                path: path.clone(),
                source,
            })?;
            let kind = meta.file_type();
            let mode = meta.permissions().mode() & 0o777;
            if kind.is_dir() {
                // A walked directory is counted too: unpacking makes it
                // for what an exception brings back under it.
                self.count(0)?;
                if verdict == Verdict::Send {
                    let mut header = header(EntryType::Directory, mode, 0);
                    self.builder
                        .append_data(&mut header, &rel_path, io::empty())
                        .map_err(|source| SourceError::Write { source })?;
                }
                self.walk(&path, &rel_path)?;
            } else if verdict == Verdict::Walk {
                continue;
            } else if kind.is_file() {
                self.count(meta.len())?;
                self.files += 1;
                self.append_file(&path, &rel_path, mode, meta.len())?;
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).map_err(|source| SourceError::Read {
                    path: path.clone(),
                    source,
                })?;
                let raw = target.as_os_str().as_encoded_bytes();
                let target = match symlink_target(&rel_path, raw, self.limits.max_path_len) {
                    Ok(target) => target,
                    Err(reason) => return Err(self.unpackable(rel_path, reason)),
                };
                self.count(0)?;
                let mut header = header(EntryType::Symlink, 0o777, 0);
                self.builder
                    .append_link(&mut header, &rel_path, &target)
                    .map_err(|source| SourceError::Write { source })?;
            } else {
                let kind = if kind.is_fifo() {
                    "fifo"
                } else if kind.is_socket() {
                    "socket"
                } else if kind.is_block_device() {
                    "block device"
                } else {
                    "character device"
                };
                self.skipped.push(Skipped {
                    path: rel_path,
                    kind,
                });
            }
        }
        Ok(())
    }

    /// Appends the regular file at `path`, `size` bytes long when it was
    /// looked at; a file that changed since is an error, never a corrupt
    /// archive passed off as whole.
    fn append_file(
        &mut self,
        path: &Path,
        rel: &str,
        mode: u32,
        size: u64,
    ) -> Result<(), SourceError> {
        let read_error = |source| SourceError::Read {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(read_error)?;
        let mut reader = ExactReader {
            file,
            remaining: size,
            problem: None,
        };
        let mut header = header(EntryType::Regular, mode, size);
        let written = self.builder.append_data(&mut header, rel, &mut reader);
        match (reader.problem, written) {
            (Some(Problem::Io(source)), _) => Err(read_error(source)),
            (Some(Problem::Changed), _) => Err(SourceError::Changed {
                path: path.to_owned(),
            }),
            (None, Err(source)) => Err(SourceError::Write { source }),
            (None, Ok(())) => Ok(()),
        }
    }

    /// Counts one more entry of `bytes` bytes against the limits.
    fn count(&mut self, bytes: u64) -> Result<(), SourceError> {
        self.entries += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        let limit = if self.entries > self.limits.max_entries {
            Limit::Entries(self.limits.max_entries)
        } else if self.bytes > self.limits.max_bytes {
            Limit::Bytes(self.limits.max_bytes)
        } else {
            return Ok(());
        };
        Err(SourceError::PackTooLarge {
            dir: self.root.to_owned(),
            limit,
        })
    }

    fn unpackable(&self, path: String, reason: Refusal) -> SourceError {
        SourceError::Unpackable { path, reason }
    }
}

/// A header with only what the format keeps: kind, mode, size. Owner,
/// names and mtime are zero.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// What went wrong reading a file being packed.
#[derive(Debug)]
enum Problem {
    Io(io::Error),
    /// It has another size than when it was looked at.
    Changed,
}

/// Reads exactly `remaining` bytes of `file`, and records (for the caller
/// to report) a read error or a file that is shorter or longer than that.
struct ExactReader {
    file: fs::File,
    remaining: u64,
    problem: Option<Problem>,
}

impl ExactReader {
    fn fail(&mut self, problem: Problem) -> io::Error {
        self.problem = Some(problem);
        io::Error::other("the file could not be read whole")
    }
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Nothing more is expected: a byte more means the file grew.
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => Err(self.fail(Problem::Changed)),
                Err(err) => Err(self.fail(Problem::Io(err))),
            };
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        match self.file.read(&mut buf[..want]) {
            Ok(0) => Err(self.fail(Problem::Changed)),
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => Err(self.fail(Problem::Io(err))),
        }
    }
}

/// A writer that hashes and counts what goes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A file that is shorter or longer than it was is an error, never a
    /// corrupt archive passed off as whole.
    #[test]
    fn a_file_that_changed_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"0123456789").unwrap();
        for expected in [20, 5] {
            let mut reader = ExactReader {
                file: fs::File::open(&path).unwrap(),
                remaining: expected,
                problem: None,
            };
            let mut sink = Vec::new();
            assert!(io::copy(&mut reader, &mut sink).is_err(), "{expected}");
            assert!(
                matches!(reader.problem, Some(Problem::Changed)),
                "{expected}"
            );
        }
        let mut reader = ExactReader {
            file: fs::File::open(&path).unwrap(),
            remaining: 10,
            problem: None,
        };
        let mut sink = Vec::new();
        assert_eq!(io::copy(&mut reader, &mut sink).unwrap(), 10);
        assert!(reader.problem.is_none());
    }

    #[test]
    fn verdicts() {
        let none = |rel: &str| verdict(None, rel, rel.rsplit('/').next().unwrap_or(rel));
        assert_eq!(none(".git"), Verdict::Never);
        assert_eq!(none("a/.git"), Verdict::Never);
        assert_eq!(none(".wharf"), Verdict::Never);
        assert_eq!(none("a/.wharf"), Verdict::Send);
        assert_eq!(none("target"), Verdict::Never);
        assert_eq!(none("a/target"), Verdict::Send);
        assert_eq!(none("src"), Verdict::Send);

        let ignore = Ignore::parse("*\n!keep", Path::new(".wharfignore")).ok();
        let with = |rel: &str| verdict(ignore.as_ref(), rel, rel.rsplit('/').next().unwrap_or(rel));
        assert_eq!(with(".wharfignore"), Verdict::Send);
        assert_eq!(with(".dockerignore"), Verdict::Send);
        assert_eq!(with("a/.dockerignore"), Verdict::Walk);
        assert_eq!(with("keep"), Verdict::Send);
        assert_eq!(with("target"), Verdict::Walk);
        assert_eq!(with(".git"), Verdict::Never);
    }
}
