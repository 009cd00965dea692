//! Errors of packing and unpacking: what failed, on what, and what to do.
//!
//! [`SourceError`] is what [`pack`](crate::pack) and
//! [`unpack`](crate::unpack) return; [`Refusal`] says why an entry of an
//! upload was refused (tests match on it); [`IgnoreError`] is an ignore
//! file that cannot be used, on its own so that other users of
//! [`Ignore`](crate::Ignore) (the docker build context) can map it into
//! their own errors.

use std::fmt;
use std::path::PathBuf;

/// An ignore file (`.wharfignore`, `.dockerignore`) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "ignore file {location}: {reason}; fix it (patterns as in Docker's .dockerignore) or remove it"
)]
pub struct IgnoreError {
    /// The file, with `:line` when one line is at fault.
    pub location: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What went wrong packing an app directory or unpacking an upload.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The app's ignore file cannot be used.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// What was to be packed is not a directory.
    #[error("could not pack {path}: it is not a directory; pack the app's directory")]
    NotADirectory { path: PathBuf },
    /// A file of the app directory could not be read.
    #[error(
        "could not read {path} to pack the app: {source}; make it readable or list it in .wharfignore"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file changed size while it was being packed.
    #[error(
        "{path} changed size while the app was being packed; pack again once nothing writes to it, or list it in .wharfignore"
    )]
    Changed { path: PathBuf },
    /// The packed archive could not be written out.
    #[error("could not write the packed app: {source}")]
    Write { source: std::io::Error },
    /// Something in the app directory cannot travel in an upload (a name
    /// that is not UTF-8, a path over the length limit, a link leaving the
    /// app).
    #[error("cannot pack {path}: it {reason}; change it or list it in .wharfignore")]
    Unpackable { path: String, reason: Refusal },
    /// The app directory is over a limit of what the server accepts.
    #[error(
        "the app directory {dir} is over the server's limit of {limit}: list what the server does not need (build output, dependencies, data) in .wharfignore"
    )]
    PackTooLarge { dir: PathBuf, limit: Limit },

    /// The expected hash given to `unpack` is not a SHA-256.
    #[error(
        "the upload's announced hash {given:?} is not a SHA-256 (64 hex digits); send it again"
    )]
    BadHash { given: String },
    /// The directory to unpack into is neither new nor empty.
    #[error(
        "could not unpack the upload into {dest}: it {reason}; unpack into a new or empty directory"
    )]
    Destination { dest: PathBuf, reason: String },
    /// The upload could not be read (the connection failed).
    #[error("could not receive the upload: {source}; send it again")]
    Receive { source: std::io::Error },
    /// The upload is not a tar archive, or not one wharf reads.
    #[error(
        "the upload is not a tar archive ({reason}); send the app with `wharf deploy`, which packs it"
    )]
    NotTar { reason: String },
    /// The upload ends before its archive does.
    #[error("the upload ends in the middle of {at} (it was cut short on the way); send it again")]
    Truncated { at: String },
    /// The upload is over a limit of what the server accepts.
    #[error(
        "the upload is over the server's limit of {limit} (at entry `{entry}`): leave out what the server does not need with .wharfignore, or raise the server's upload limit"
    )]
    UploadTooLarge { entry: String, limit: Limit },
    /// An entry of the upload is unsafe or of a kind wharf does not unpack.
    #[error("refused the upload: entry `{entry}` {reason}; nothing of it was kept")]
    Refused { entry: String, reason: Refusal },
    /// The upload's bytes do not have the hash it was sent with.
    #[error(
        "the upload's SHA-256 is {actual}, not the {expected} it was sent with: it was changed or cut short on the way; nothing of it was kept, send it again"
    )]
    HashMismatch { expected: String, actual: String },
    /// Writing the unpacked tree failed.
    #[error(
        "could not write {path} while unpacking the upload: {source}; is there room on the disk?"
    )]
    Unpack {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A limit of [`Limits`](crate::Limits) that was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_bytes`: bytes of file content.
    Bytes(u64),
    /// `max_entries`: files, directories and links.
    Entries(u64),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Limit::Bytes(n) => write!(f, "{} of files", human_bytes(n)),
            Limit::Entries(n) => write!(f, "{n} files, directories and links"),
        }
    }
}

/// `n` bytes for people: `512 bytes`, `1.5 KiB`, `1.0 GiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    #[allow(clippy::cast_precision_loss)] // a display value
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Why an entry (or a file being packed) was refused. Displayed as the
/// end of a sentence whose subject is the entry: "entry `x` {reason}".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path is empty.
    EmptyPath,
    /// The path starts at `/`.
    AbsolutePath,
    /// The path has a `..` component.
    ParentDir,
    /// The path (or a link's target) has a NUL byte.
    Nul,
    /// The path (or a link's target) is not UTF-8.
    NotUtf8,
    /// The path or a link's target is longer than `max_path_len`.
    TooLong { len: usize, max: usize },
    /// A symlink whose target is absolute.
    AbsoluteLink { target: String },
    /// A symlink whose target leaves the tree once resolved from the
    /// link's directory.
    LinkOutside { target: String },
    /// A symlink whose target goes up (`..`) after going down, which could
    /// leave the tree through another link.
    LinkUpAfterDown { target: String },
    /// A symlink with an empty target.
    EmptyLink,
    /// A hard link whose target is not a regular file unpacked before it.
    HardLinkTarget { target: String },
    /// The entry's parent path goes through a symlink of the archive.
    ThroughSymlink { link: String },
    /// The entry's parent path goes through a file of the archive.
    UnderFile { file: String },
    /// The same path appears twice.
    Duplicate,
    /// A device, fifo, socket, sparse file or unknown entry type.
    Special { kind: String },
    /// A pax extended header wharf does not honour (`size`).
    Unsupported { what: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::EmptyPath => write!(f, "has an empty path"),
            Refusal::AbsolutePath => write!(f, "is an absolute path (paths must be relative)"),
            Refusal::ParentDir => write!(f, "has a `..` component (paths must stay inside)"),
            Refusal::Nul => write!(f, "has a NUL byte in its path or link target"),
            Refusal::NotUtf8 => write!(f, "has a path or link target that is not UTF-8"),
            Refusal::TooLong { len, max } => {
                write!(
                    f,
                    "has a path or link target of {len} bytes, over the limit of {max}"
                )
            }
            Refusal::AbsoluteLink { target } => {
                write!(
                    f,
                    "is a symlink to the absolute path {target} (links must be relative)"
                )
            }
            Refusal::LinkOutside { target } => {
                write!(f, "is a symlink to {target}, which leads outside the app")
            }
            Refusal::LinkUpAfterDown { target } => write!(
                f,
                "is a symlink to {target}, which goes up (`..`) after going down (write it without the detour)"
            ),
            Refusal::EmptyLink => write!(f, "is a symlink with an empty target"),
            Refusal::HardLinkTarget { target } => write!(
                f,
                "is a hard link to {target}, which is not a regular file unpacked before it"
            ),
            Refusal::ThroughSymlink { link } => {
                write!(
                    f,
                    "is under `{link}`, which is a symlink (writing through links is refused)"
                )
            }
            Refusal::UnderFile { file } => write!(f, "is under `{file}`, which is a file"),
            Refusal::Duplicate => write!(f, "appears twice in the archive"),
            Refusal::Special { kind } => write!(
                f,
                "is a {kind}: only files, directories and links can be uploaded"
            ),
            Refusal::Unsupported { what } => write!(f, "has {what}, which wharf does not unpack"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(
            Limit::Entries(3).to_string(),
            "3 files, directories and links"
        );
    }
}
