//! Unpacking an upload on the server: the archive is read as a stream, raw
//! entry by raw entry (GNU long names and pax paths are resolved here, with
//! their sizes bounded), every path and link is checked before anything is
//! written, and files are written by this module, never by `tar`'s own
//! unpacker. The guarantees are listed in the crate's documentation.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::error::{Limit, Refusal, SourceError};
use crate::path::{entry_path, symlink_target};
use crate::{Limits, hex};

/// Bytes of a pax extended header honoured (its `path`, `linkpath`).
const PAX_LIMIT: u64 = 64 * 1024;
/// Bytes after the end-of-archive block read (record padding: zeros).
const TRAILING_LIMIT: u64 = 1024 * 1024;
/// The tar block.
const BLOCK: u64 = 512;

/// What [`unpack`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files (a hard link counts as one).
    pub files: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// SHA-256 of the upload as read, lower-case hex.
    pub sha256: String,
}

/// Unpacks the tar archive read from `reader` into `dest`, which must not
/// exist (its parent must) or be an empty directory; checks the upload's
/// SHA-256 against `expected_sha256` when given (hex, either case).
///
/// Every entry is checked before anything of it is written, and nothing is
/// ever written outside `dest` (the rules are in the crate's
/// documentation). On any error, what was unpacked is removed again, and
/// `dest` too when this call created it: the caller finds `dest` as it was
/// (best effort: a removal that fails is not reported). Blocking: run it
/// off the async runtime's threads.
pub fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    limits: &Limits,
    expected_sha256: Option<&str>,
) -> Result<Unpacked, SourceError> {
    let expected = match expected_sha256 {
        Some(given) if given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(given.to_ascii_lowercase())
        }
        Some(given) => {
            return Err(SourceError::BadHash {
                given: given.to_owned(),
            });
        }
        None => None,
    };
    let created = prepare(dest)?;
    let mut tap = Tap {
        inner: reader,
        hasher: Sha256::new(),
        read: 0,
        eof: false,
        failed: None,
    };
    let mut tree = Tree {
        dest,
        limits: *limits,
        nodes: HashMap::new(),
        entries: 0,
        files: 0,
        bytes: 0,
        extension_bytes: 0,
        headers: 0,
        end: 0,
    };
    let outcome = tree
        .read_all(&mut tap)
        .and_then(|()| finish(&mut tap, &tree));
    let result = match outcome {
        Err(failure) => Err(classify(failure, &mut tap, &tree)),
        Ok(()) => {
            let actual = hex(&tap.hasher.clone().finalize());
            match expected {
                Some(expected) if expected != actual => {
                    Err(SourceError::HashMismatch { expected, actual })
                }
                _ => Ok(Unpacked {
                    files: tree.files,
                    bytes: tree.bytes,
                    sha256: actual,
                }),
            }
        }
    };
    if result.is_err() {
        clean_up(dest, created);
    }
    result
}

/// Makes sure `dest` is a new or empty directory; whether it was created.
fn prepare(dest: &Path) -> Result<bool, SourceError> {
    let problem = |reason: String| SourceError::Destination {
        dest: dest.to_owned(),
        reason,
    };
    match fs::symlink_metadata(dest) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(0o755)
                .create(dest)
                .map_err(|err| problem(format!("could not be created: {err}")))?;
            Ok(true)
        }
        Err(err) => Err(problem(format!("could not be read: {err}"))),
        Ok(meta) if !meta.is_dir() => Err(problem("exists and is not a directory".to_owned())),
        Ok(_) => {
            let mut children =
                fs::read_dir(dest).map_err(|err| problem(format!("could not be read: {err}")))?;
            match children.next() {
                None => Ok(false),
                Some(_) => Err(problem("is not empty".to_owned())),
            }
        }
    }
}

/// Removes what an unpack that failed wrote.
fn clean_up(dest: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(dest);
        return;
    }
    let Ok(children) = fs::read_dir(dest) else {
        return;
    };
    for child in children.flatten() {
        let path = child.path();
        // Never follows links: a symlink is removed, not what it points to.
        let _ = match child.file_type() {
            Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
    }
}

/// Why reading the archive stopped.
#[derive(Debug)]
enum Failure {
    /// Refused, or failed writing: the error as it is.
    Source(SourceError),
    /// The stream or the tar reader failed at `at` (an entry, or "the
    /// archive"): receive error, truncation or garbage, told apart by
    /// [`classify`].
    Stream { err: io::Error, at: String },
}

impl From<SourceError> for Failure {
    fn from(err: SourceError) -> Self {
        Failure::Source(err)
    }
}

fn stream(at: impl Into<String>) -> impl FnOnce(io::Error) -> Failure {
    let at = at.into();
    move |err| Failure::Stream { err, at }
}

/// The error a [`Failure`] is to whoever sent the upload.
fn classify<R>(failure: Failure, tap: &mut Tap<R>, tree: &Tree<'_>) -> SourceError {
    let (err, at) = match failure {
        Failure::Source(err) => return err,
        Failure::Stream { err, at } => (err, at),
    };
    if let Some(source) = tap.failed.take() {
        return SourceError::Receive { source };
    }
    if tree.headers == 0 {
        let reason = match tap.read {
            0 => "it is empty".to_owned(),
            n if n < BLOCK => format!("it is {n} bytes, less than one tar header"),
            _ => "its first block is not a tar header".to_owned(),
        };
        return SourceError::NotTar { reason };
    }
    if tap.eof {
        return SourceError::Truncated { at };
    }
    SourceError::NotTar {
        reason: format!("{at} is damaged: {err}"),
    }
}

/// After the last entry: the end-of-archive block must have been read, and
/// what follows it (record padding) must be zeros.
fn finish<R: Read>(tap: &mut Tap<R>, tree: &Tree<'_>) -> Result<(), Failure> {
    if tree.headers == 0 && tap.read < BLOCK {
        let err = io::Error::new(io::ErrorKind::UnexpectedEof, "no header");
        return Err(Failure::Stream {
            err,
            at: "the archive".to_owned(),
        });
    }
    if tap.read < tree.end + BLOCK {
        return Err(SourceError::Truncated {
            at: "the archive, before its end-of-archive block".to_owned(),
        }
        .into());
    }
    let mut zeros = ZeroCheck::default();
    let trailing = io::copy(&mut tap.take(TRAILING_LIMIT + 1), &mut zeros)
        .map_err(stream("the end of the archive"))?;
    if zeros.other || trailing > TRAILING_LIMIT {
        return Err(SourceError::NotTar {
            reason: "it has data after the end of its archive".to_owned(),
        }
        .into());
    }
    Ok(())
}

/// What an entry already written is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Symlink,
}

/// What a GNU long-name or pax header says of the entry after it.
#[derive(Debug, Default)]
struct Pending {
    gnu_name: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.gnu_name.is_none()
            && self.gnu_link.is_none()
            && self.pax_path.is_none()
            && self.pax_link.is_none()
    }
}

/// The tree being unpacked: everything written under `dest` so far.
struct Tree<'a> {
    dest: &'a Path,
    limits: Limits,
    /// Every path written (entries and the directories made for them).
    nodes: HashMap<String, Node>,
    /// Entries counted against `max_entries`.
    entries: u64,
    files: u64,
    /// Data bytes of entries, counted against `max_bytes`.
    bytes: u64,
    /// Data bytes of long-name and pax headers, counted there too.
    extension_bytes: u64,
    /// Raw headers read (long names and pax headers included).
    headers: u64,
    /// Where the last raw entry's data ends in the stream.
    end: u64,
}

impl Tree<'_> {
    fn read_all<R: Read>(&mut self, tap: &mut Tap<R>) -> Result<(), Failure> {
        let mut archive = tar::Archive::new(tap);
        let entries = archive.entries().map_err(stream("the archive"))?.raw(true);
        let mut pending = Pending::default();
        let mut last = String::from("the archive");
        let header_limit = self.limits.max_entries.saturating_mul(4).saturating_add(16);
        for entry in entries {
            let at = match self.headers {
                0 => "the archive".to_owned(),
                _ => format!("the entry after `{last}`"),
            };
            let mut entry = entry.map_err(stream(at))?;
            self.headers += 1;
            let size = entry.size();
            self.end = entry
                .raw_file_position()
                .saturating_add(size.div_ceil(BLOCK).saturating_mul(BLOCK));
            if self.headers > header_limit {
                return Err(too_large(&last, Limit::Entries(self.limits.max_entries)));
            }
            let kind = entry.header().entry_type();
            let max_name = self.limits.max_path_len as u64 + 1;
            if matches!(
                kind,
                EntryType::GNULongName
                    | EntryType::GNULongLink
                    | EntryType::XHeader
                    | EntryType::XGlobalHeader
            ) {
                // Their data counts against `max_bytes` too.
                self.extension_bytes = self.extension_bytes.saturating_add(size);
                if self.bytes.saturating_add(self.extension_bytes) > self.limits.max_bytes {
                    return Err(too_large(&last, Limit::Bytes(self.limits.max_bytes)));
                }
            }
            match kind {
                EntryType::GNULongName | EntryType::GNULongLink => {
                    let mut value = read_extension(&mut entry, size, max_name, &last)?;
                    while value.last() == Some(&0) {
                        value.pop();
                    }
                    let slot = match kind {
                        EntryType::GNULongName => &mut pending.gnu_name,
                        _ => &mut pending.gnu_link,
                    };
                    if slot.replace(value).is_some() {
                        return Err(not_tar("two GNU long names for one entry", &last));
                    }
                    continue;
                }
                EntryType::XHeader => {
                    if pending.pax_path.is_some() || pending.pax_link.is_some() {
                        return Err(not_tar("two pax headers for one entry", &last));
                    }
                    let data = read_extension(&mut entry, size, PAX_LIMIT, &last)?;
                    pax(&data, &mut pending, &last)?;
                    continue;
                }
                EntryType::XGlobalHeader => {
                    // Nothing in it concerns what wharf keeps; read past it.
                    read_extension(&mut entry, size, PAX_LIMIT, &last)?;
                    continue;
                }
                _ => {}
            }
            let raw_path = pending
                .pax_path
                .take()
                .or(pending.gnu_name.take())
                .unwrap_or_else(|| entry.path_bytes().into_owned());
            let raw_link = pending
                .pax_link
                .take()
                .or(pending.gnu_link.take())
                .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
            last = shown(&raw_path);
            self.count(&last, size)?;
            let refused = |reason| Refused(last.clone(), reason);
            let path = entry_path(&raw_path, self.limits.max_path_len).map_err(refused)?;
            let mode = entry
                .header()
                .mode()
                .map_err(|err| not_tar(&err.to_string(), &last))?
                & 0o777;
            match kind {
                EntryType::Directory if path.is_empty() => {} // `./`: dest itself.
                _ if path.is_empty() => return Err(refused(Refusal::EmptyPath).into()),
                EntryType::Regular | EntryType::Continuous => {
                    self.parents(&path, &last)?;
                    self.file(&path, &last, mode, size, &mut entry)?;
                }
                EntryType::Directory => {
                    self.parents(&path, &last)?;
                    self.dir(&path, &last, mode)?;
                }
                EntryType::Symlink => {
                    let raw = raw_link.unwrap_or_default();
                    let target =
                        symlink_target(&path, &raw, self.limits.max_path_len).map_err(refused)?;
                    self.parents(&path, &last)?;
                    self.vacant(&path, &last)?;
                    let full = self.dest.join(&path);
                    std::os::unix::fs::symlink(&target, &full).map_err(write_error(&full))?;
                    self.nodes.insert(path, Node::Symlink);
                }
                EntryType::Link => {
                    let raw = raw_link.unwrap_or_default();
                    let target = entry_path(&raw, self.limits.max_path_len)
                        .ok()
                        .filter(|t| self.nodes.get(t) == Some(&Node::File));
                    let Some(target) = target else {
                        let target = shown(&raw);
                        return Err(refused(Refusal::HardLinkTarget { target }).into());
                    };
                    self.parents(&path, &last)?;
                    self.vacant(&path, &last)?;
                    let full = self.dest.join(&path);
                    fs::hard_link(self.dest.join(&target), &full).map_err(write_error(&full))?;
                    self.nodes.insert(path, Node::File);
                    self.files += 1;
                }
                other => {
                    let kind = match other {
                        EntryType::Char => "character device".to_owned(),
                        EntryType::Block => "block device".to_owned(),
                        EntryType::Fifo => "fifo".to_owned(),
                        EntryType::GNUSparse => "GNU sparse file".to_owned(),
                        other => format!("entry of type {:?}", char::from(other.as_byte())),
                    };
                    return Err(refused(Refusal::Special { kind }).into());
                }
            }
        }
        if !pending.is_empty() {
            return Err(not_tar("a long name or pax header ends the archive", &last));
        }
        Ok(())
    }

    /// Counts one entry with `size` bytes of data against the limits.
    fn count(&mut self, entry: &str, size: u64) -> Result<(), Failure> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(too_large(entry, Limit::Entries(self.limits.max_entries)));
        }
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes.saturating_add(self.extension_bytes) > self.limits.max_bytes {
            return Err(too_large(entry, Limit::Bytes(self.limits.max_bytes)));
        }
        Ok(())
    }

    /// Makes the parent directories of `path` that are not there yet, and
    /// refuses a parent that is a link or a file of the archive.
    fn parents(&mut self, path: &str, entry: &str) -> Result<(), Failure> {
        for (i, _) in path.match_indices('/') {
            let parent = &path[..i];
            match self.nodes.get(parent) {
                Some(Node::Dir) => {}
                Some(Node::Symlink) => {
                    let link = parent.to_owned();
                    return Err(Refused(entry.to_owned(), Refusal::ThroughSymlink { link }).into());
                }
                Some(Node::File) => {
                    let file = parent.to_owned();
                    return Err(Refused(entry.to_owned(), Refusal::UnderFile { file }).into());
                }
                None => {
                    self.count(entry, 0)?;
                    let full = self.dest.join(parent);
                    DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .map_err(write_error(&full))?;
                    self.nodes.insert(parent.to_owned(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    /// Refuses a path already written.
    fn vacant(&self, path: &str, entry: &str) -> Result<(), Failure> {
        match self.nodes.contains_key(path) {
            true => Err(Refused(entry.to_owned(), Refusal::Duplicate).into()),
            false => Ok(()),
        }
    }

    /// Writes the regular file `path` from the entry's data.
    fn file(
        &mut self,
        path: &str,
        entry: &str,
        mode: u32,
        size: u64,
        data: &mut impl Read,
    ) -> Result<(), Failure> {
        self.vacant(path, entry)?;
        let full = self.dest.join(path);
        // `create_new` is O_EXCL: never through an existing file or link.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&full)
            .map_err(write_error(&full))?;
        self.nodes.insert(path.to_owned(), Node::File);
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(stream(format!("entry `{entry}`"))(err)),
            };
            file.write_all(&buf[..n]).map_err(write_error(&full))?;
            copied += n as u64;
        }
        if copied < size {
            let err = io::Error::new(io::ErrorKind::UnexpectedEof, "short entry");
            return Err(stream(format!("entry `{entry}`"))(err));
        }
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(write_error(&full))?;
        self.files += 1;
        Ok(())
    }

    /// Makes the directory `path`, or sets the mode of one made for an
    /// earlier entry. Directories always keep `u+rwx`.
    fn dir(&mut self, path: &str, entry: &str, mode: u32) -> Result<(), Failure> {
        let full = self.dest.join(path);
        match self.nodes.get(path) {
            Some(Node::Dir) => {}
            Some(_) => return Err(Refused(entry.to_owned(), Refusal::Duplicate).into()),
            None => {
                DirBuilder::new()
                    .mode(0o700)
                    .create(&full)
                    .map_err(write_error(&full))?;
                self.nodes.insert(path.to_owned(), Node::Dir);
            }
        }
        fs::set_permissions(&full, Permissions::from_mode(mode | 0o700))
            .map_err(write_error(&full))?;
        Ok(())
    }
}

/// An entry refused for a reason.
struct Refused(String, Refusal);

impl From<Refused> for Failure {
    fn from(Refused(entry, reason): Refused) -> Self {
        Failure::Source(SourceError::Refused { entry, reason })
    }
}

fn too_large(entry: &str, limit: Limit) -> Failure {
    Failure::Source(SourceError::UploadTooLarge {
        entry: entry.to_owned(),
        limit,
    })
}

fn not_tar(what: &str, last: &str) -> Failure {
    let reason = match last {
        "the archive" => what.to_owned(),
        last => format!("{what}, after entry `{last}`"),
    };
    Failure::Source(SourceError::NotTar { reason })
}

fn write_error(path: &Path) -> impl FnOnce(io::Error) -> Failure {
    let path: PathBuf = path.to_owned();
    move |source| Failure::Source(SourceError::Unpack { path, source })
}

/// The data of a long-name or pax entry, at most `max` bytes.
fn read_extension(
    entry: &mut impl Read,
    size: u64,
    max: u64,
    last: &str,
) -> Result<Vec<u8>, Failure> {
    if size > max {
        let what = format!("an extended header of {size} bytes (at most {max} are read)");
        return Err(not_tar(&what, last));
    }
    let mut data = Vec::new();
    entry
        .read_to_end(&mut data)
        .map_err(stream(format!("the entry after `{last}`")))?;
    if (data.len() as u64) < size {
        let err = io::Error::new(io::ErrorKind::UnexpectedEof, "short extended header");
        return Err(stream(format!("the entry after `{last}`"))(err));
    }
    Ok(data)
}

/// Takes `path` and `linkpath` of a pax header into `pending`; refuses
/// `size` (which the raw reader would not honour: files over 8 GiB).
fn pax(data: &[u8], pending: &mut Pending, last: &str) -> Result<(), Failure> {
    for record in tar::PaxExtensions::new(data) {
        let record = record.map_err(|_| not_tar("a malformed pax header", last))?;
        match record.key_bytes() {
            b"path" => pending.pax_path = Some(record.value_bytes().to_vec()),
            b"linkpath" => pending.pax_link = Some(record.value_bytes().to_vec()),
            b"size" => {
                let what = "a pax `size` record (a file over 8 GiB)".to_owned();
                let entry = format!("after `{last}`");
                return Err(Refused(entry, Refusal::Unsupported { what }).into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// A raw path as it is shown in messages.
fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).escape_debug().to_string()
}

/// The upload stream: hashed and counted as it is read; a read error is
/// kept for [`classify`], and the end of the stream noted.
struct Tap<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    eof: bool,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) => {
                self.eof |= !buf.is_empty();
                Ok(0)
            }
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.read += n as u64;
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => {
                let message = err.to_string();
                self.failed = Some(err);
                Err(io::Error::other(message))
            }
        }
    }
}

/// A sink that notes whether anything but zeros went into it.
#[derive(Debug, Default)]
struct ZeroCheck {
    other: bool,
}

impl Write for ZeroCheck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.other |= buf.iter().any(|&b| b != 0);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
