//! An app's source as it travels to the server: sources are shipped, not
//! shared. The CLI [`pack`]s the app directory into a tar archive and
//! uploads it with its SHA-256; the server [`unpack`]s it into a fresh
//! directory, checking every entry, and deploys from there.
//!
//! # The format
//!
//! A plain (uncompressed) tar archive, GNU flavour (GNU long-name entries
//! for paths over 100 bytes), made deterministic so that the same tree
//! always gives the same bytes, hence the same hash:
//!
//! * entries depth first, each directory's entries sorted by name (bytes),
//!   a directory before what it holds; paths relative, `/`-separated, UTF-8;
//! * regular files, directories and symlinks only: symlinks are stored as
//!   links (never followed), hard-linked files as separate files; fifos,
//!   sockets and devices are left out and listed in
//!   [`PackSummary::skipped`];
//! * modes kept (permission bits only: `0o777`; setuid, setgid and sticky
//!   bits are dropped), mtime 0, uid and gid 0, no user or group names;
//! * the archive's hash is the SHA-256 of all its bytes, lower-case hex.
//!
//! What is sent: everything under the directory but `.git` (at any depth)
//! and `.wharf` (at the top), and what the ignore file excludes. The ignore
//! file is `.wharfignore` at the top if there is one, else `.dockerignore`;
//! its patterns follow Docker's rules ([`Ignore`]). Without either, `target`
//! at the top is left out too (as the docker build context and the release
//! snapshot leave it out). `.wharfignore` and `.dockerignore` themselves are
//! always sent (a docker build on the server reads `.dockerignore`).
//!
//! # The guarantees of unpacking
//!
//! [`unpack`] reads the archive as a stream (the hash is computed on the
//! way, and checked at the end when one is expected) into a directory that
//! must be new or empty, and writes nothing outside it, whatever the
//! archive holds. It refuses, naming the entry: empty or absolute paths,
//! `..` components, symlinks that are absolute or lead outside once
//! resolved from their directory, hard links to anything but a regular
//! file unpacked before them, any entry under a symlink or a file of the
//! archive, a path that appears twice, devices, fifos and other special
//! entries. Files are written by this crate (never by `tar`'s unpacker),
//! created exclusively (`O_EXCL`: never through an existing link), with
//! their permission bits and no owner; directories also get `u+rwx` so the
//! server can fill and remove them. [`Limits`] bound the file bytes, the
//! number of entries and the length of paths; garbage, a cut-off upload, or
//! one over a limit is a clean error. On any error, `unpack` removes what
//! it wrote (and `dest` itself when it created it): the caller finds `dest`
//! as it was.
//!
//! The crate does no networking and knows nothing of deploys; the server
//! and CLI wire it to `POST /v1/deploys`.

mod error;
pub mod git;
mod ignore;
mod pack;
mod path;
mod unpack;

pub use error::{IgnoreError, Limit, Refusal, SourceError};
pub use ignore::Ignore;
pub use pack::{DOCKERIGNORE, PackSummary, Packed, Skipped, WHARFIGNORE, pack, pack_to};
pub use unpack::{Unpacked, unpack};

/// What an upload may hold. Packing checks the same limits, so the CLI
/// refuses an app the server would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file content in all (the data of the archive's entries,
    /// not counting its headers).
    pub max_bytes: u64,
    /// Files, directories and links, counting the directories unpacking
    /// creates for entries whose parents are not in the archive.
    pub max_entries: u64,
    /// Bytes in one entry's path or link target.
    pub max_path_len: usize,
}

impl Default for Limits {
    /// 1 GiB, 200 000 entries, paths of 4096 bytes.
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 30,
            max_entries: 200_000,
            max_path_len: 4096,
        }
    }
}

/// `bytes` as lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
