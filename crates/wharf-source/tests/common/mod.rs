//! Helpers of the integration tests: archives built by hand (raw header
//! bytes, so that paths `tar::Header::set_path` refuses can be written),
//! and listings of directories to prove nothing was written outside.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// A temp parent holding `victim` (a file that must stay as it is) and
/// the path `dest` to unpack into (not created).
pub struct Scene {
    pub parent: tempfile::TempDir,
    pub dest: PathBuf,
}

impl Scene {
    pub fn new() -> Scene {
        let parent = tempfile::tempdir().unwrap();
        fs::write(parent.path().join("victim"), "original").unwrap();
        let dest = parent.path().join("dest");
        Scene { parent, dest }
    }

    /// The parent is as it was: only `victim`, unchanged (the failed
    /// unpack removed `dest`, which it had created).
    pub fn untouched(&self) {
        assert_eq!(listing(self.parent.path()), ["victim"]);
        let victim = fs::read_to_string(self.parent.path().join("victim")).unwrap();
        assert_eq!(victim, "original");
    }
}

/// Every path under `root`, relative, sorted; links are listed, never
/// followed.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.push(rel);
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(root, &path, out);
        }
    }
}

/// An archive written entry by entry, with raw names.
pub struct Raw {
    builder: tar::Builder<Vec<u8>>,
}

impl Raw {
    pub fn new() -> Raw {
        Raw {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// An entry named `name` exactly (no cleaning, no checks).
    pub fn entry(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Raw {
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        header.set_entry_type(kind);
        header.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Raw {
        self.entry(name.as_bytes(), EntryType::Regular, b"", data)
    }

    pub fn dir(self, name: &str) -> Raw {
        self.entry(name.as_bytes(), EntryType::Directory, b"", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> Raw {
        self.entry(name.as_bytes(), EntryType::Symlink, target.as_bytes(), b"")
    }

    pub fn hard_link(self, name: &str, target: &str) -> Raw {
        self.entry(name.as_bytes(), EntryType::Link, target.as_bytes(), b"")
    }

    /// A GNU long-name entry (`L`) naming the entry after it.
    pub fn long_name(self, name: &[u8]) -> Raw {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(b"././@LongLink", EntryType::GNULongName, b"", &data)
    }

    /// A pax extended header (`x`) for the entry after it.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Raw {
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    /// The archive with its end-of-archive blocks.
    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// Creates `files` (a trailing `/` makes a directory) under `root`, with
/// mode 0644 (0755 for directories) whatever the umask.
pub fn tree(root: &Path, files: &[&str]) {
    for file in files {
        let path = root.join(file);
        if file.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, format!("content of {file}")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}
