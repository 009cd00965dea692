//! Packing a real tree and unpacking it: what is sent, what comes out, and
//! the hash that stays the same for the same tree.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::{listing, tree};
use wharf_source::{Limit, Limits, Refusal, Skipped, SourceError, pack, unpack};

/// A path over 100 bytes (a GNU long name in the archive).
fn long_path() -> String {
    format!("deep/{}/file.txt", "d".repeat(120))
}

/// The app of the round trip, made under `root`.
fn app(root: &Path) {
    let long = long_path();
    tree(
        root,
        &[
            "wharf.toml",
            "bin/",
            "src/main.rs",
            "src/nested/deeper/mod.rs",
            "empty/",
            ".git/HEAD",
            "src/.git",
            ".wharf/data/wharf.db",
            "src/.wharf/kept",
            "logs/a.log",
            "logs/keep.log",
            "notes.tmp",
            "src/notes.tmp",
            "target/release/app",
            ".dockerignore",
            &long,
        ],
    );
    fs::write(root.join("bin/run"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("src/main.rs"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(
        root.join(".wharfignore"),
        "logs\n!logs/keep.log\n**/*.tmp\n",
    )
    .unwrap();
    symlink("src/main.rs", root.join("main")).unwrap();
    symlink("../main.rs", root.join("src/nested/up")).unwrap();
    symlink("../../wharf.toml", root.join("src/nested/top")).unwrap();
    symlink("missing", root.join("dangling")).unwrap();
    // A socket: an upload cannot hold it.
    let _socket = std::os::unix::net::UnixListener::bind(root.join("app.sock")).unwrap();
}

/// What of [`app`] is sent.
fn expected() -> Vec<String> {
    let long = long_path();
    let mut paths: Vec<String> = [
        ".dockerignore",
        ".wharfignore",
        "bin",
        "bin/run",
        "dangling",
        "deep",
        &long[..long.rfind('/').unwrap()],
        &long,
        "empty",
        "logs",
        "logs/keep.log",
        "main",
        "src",
        "src/.wharf",
        "src/.wharf/kept",
        "src/main.rs",
        "src/nested",
        "src/nested/deeper",
        "src/nested/deeper/mod.rs",
        "src/nested/top",
        "src/nested/up",
        "target",
        "target/release",
        "target/release/app",
        "wharf.toml",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    paths.sort();
    paths
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_tree_comes_back_as_it_was_sent() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let packed = pack(src.path(), &Limits::default()).unwrap();
    let summary = &packed.summary;
    assert_eq!(summary.ignore_file, Some(".wharfignore"));
    assert_eq!(
        summary.skipped,
        [Skipped {
            path: "app.sock".into(),
            kind: "socket"
        }]
    );
    assert_eq!(summary.size, packed.tar.len() as u64);

    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("app");
    let unpacked = unpack(
        &packed.tar[..],
        &dest,
        &Limits::default(),
        Some(&summary.sha256),
    )
    .unwrap();
    assert_eq!(unpacked.sha256, summary.sha256);
    assert_eq!(unpacked.files, summary.files);
    assert_eq!(unpacked.bytes, summary.bytes);
    assert_eq!(listing(parent.path()).len(), expected().len() + 1);
    assert_eq!(listing(&dest), expected());

    // Contents, modes and links.
    for path in expected() {
        let (a, b) = (src.path().join(&path), dest.join(&path));
        let meta = fs::symlink_metadata(&a).unwrap();
        if meta.is_symlink() {
            assert_eq!(
                fs::read_link(&a).unwrap(),
                fs::read_link(&b).unwrap(),
                "{path}"
            );
        } else if meta.is_file() {
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{path}");
            assert_eq!(mode(&a), mode(&b), "{path}");
        } else {
            assert!(fs::symlink_metadata(&b).unwrap().is_dir(), "{path}");
        }
    }
    assert_eq!(mode(&dest.join("bin/run")), 0o755);
    assert_eq!(mode(&dest.join("src/main.rs")), 0o600);
    assert_eq!(mode(&dest.join("empty")), 0o750);
    assert_eq!(
        fs::read_to_string(dest.join("src/nested/up")).unwrap(),
        "content of src/main.rs"
    );
    assert_eq!(
        fs::read_to_string(dest.join("src/nested/top")).unwrap(),
        "content of wharf.toml"
    );
}

#[test]
fn the_same_tree_gives_the_same_hash() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    app(one.path());
    let first = pack(one.path(), &Limits::default()).unwrap();
    let again = pack(one.path(), &Limits::default()).unwrap();
    assert_eq!(first, again);
    // Made again elsewhere, a moment later (other mtimes, other inodes).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    app(two.path());
    let other = pack(two.path(), &Limits::default()).unwrap();
    assert_eq!(other.summary.sha256, first.summary.sha256);
    assert_eq!(other.tar, first.tar);
    // One byte more is another hash.
    fs::write(two.path().join("wharf.toml"), "changed").unwrap();
    let changed = pack(two.path(), &Limits::default()).unwrap();
    assert_ne!(changed.summary.sha256, first.summary.sha256);
}

#[test]
fn headers_keep_nothing_of_the_machine() {
    let src = tempfile::tempdir().unwrap();
    app(src.path());
    let packed = pack(src.path(), &Limits::default()).unwrap();
    let mut archive = tar::Archive::new(&packed.tar[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(header.groupname_bytes(), Some(&b""[..]));
        assert!(header.mode().unwrap() & 0o7000 == 0);
        names.push(entry.path().unwrap().to_string_lossy().into_owned());
    }
    // Depth first, sorted by name, each directory before what it holds.
    assert_eq!(
        names[..4],
        [".dockerignore", ".wharfignore", "bin", "bin/run"]
    );
    assert!(names.iter().all(|n| !n.contains(".git") && n != ".wharf"));
}

#[test]
fn dockerignore_is_used_without_a_wharfignore() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), &["app.py", "secret.env", "target/x", "cache/a"]);
    fs::write(
        src.path().join(".dockerignore"),
        "*.env\ncache\n.dockerignore\n",
    )
    .unwrap();
    let packed = pack(src.path(), &Limits::default()).unwrap();
    assert_eq!(packed.summary.ignore_file, Some(".dockerignore"));
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("app");
    unpack(&packed.tar[..], &dest, &Limits::default(), None).unwrap();
    // `target` is sent once an ignore file does not list it; the ignore
    // file is sent even when it lists itself.
    assert_eq!(
        listing(&dest),
        [".dockerignore", "app.py", "target", "target/x"]
    );

    // Without any ignore file, `target` at the top stays home.
    fs::remove_file(src.path().join(".dockerignore")).unwrap();
    let packed = pack(src.path(), &Limits::default()).unwrap();
    assert_eq!(packed.summary.ignore_file, None);
    let dest = parent.path().join("again");
    unpack(&packed.tar[..], &dest, &Limits::default(), None).unwrap();
    assert_eq!(listing(&dest), ["app.py", "cache", "cache/a", "secret.env"]);
}

#[test]
fn what_cannot_travel_is_refused_when_packing() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), &["app.py", "venv/bin/"]);
    symlink("/usr/bin/python3", src.path().join("venv/bin/python")).unwrap();
    let err = pack(src.path(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, SourceError::Unpackable { path, reason: Refusal::AbsoluteLink { .. } } if path == "venv/bin/python"),
        "{err}"
    );
    assert!(err.to_string().contains(".wharfignore"), "{err}");
    // Listed in the ignore file, it is not looked at.
    fs::write(src.path().join(".wharfignore"), "venv\n").unwrap();
    pack(src.path(), &Limits::default()).unwrap();

    // A link out of the app through `..`.
    symlink("../../elsewhere", src.path().join("out")).unwrap();
    let err = pack(src.path(), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            SourceError::Unpackable {
                reason: Refusal::LinkOutside { .. },
                ..
            }
        ),
        "{err}"
    );
    fs::remove_file(src.path().join("out")).unwrap();

    // A name that is not UTF-8.
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(src.path().join(name), "x").unwrap();
    let err = pack(src.path(), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            SourceError::Unpackable {
                reason: Refusal::NotUtf8,
                ..
            }
        ),
        "{err}"
    );
    fs::remove_file(src.path().join(name)).unwrap();

    // Over the limits of the server.
    fs::write(src.path().join("big"), vec![0u8; 2048]).unwrap();
    let limits = Limits {
        max_bytes: 1024,
        ..Limits::default()
    };
    let err = pack(src.path(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::PackTooLarge {
                limit: Limit::Bytes(1024),
                ..
            }
        ),
        "{err}"
    );
    let limits = Limits {
        max_entries: 1,
        ..Limits::default()
    };
    let err = pack(src.path(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::PackTooLarge {
                limit: Limit::Entries(1),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(".wharfignore"), "{err}");

    // Not a directory.
    let err = pack(&src.path().join("app.py"), &Limits::default()).unwrap_err();
    assert!(matches!(err, SourceError::NotADirectory { .. }), "{err}");
    // A bad ignore file names its line.
    fs::write(src.path().join(".wharfignore"), "ok\n!\n").unwrap();
    let err = pack(src.path(), &Limits::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains(".wharfignore:2: `!` needs a pattern"),
        "{err}"
    );
}

/// An archive made by GNU tar (`./` entries, real mtimes and owners) is
/// unpacked too.
#[test]
fn archives_of_gnu_tar_are_read() {
    let src = tempfile::tempdir().unwrap();
    let long = long_path();
    tree(src.path(), &["a/b.txt", "c/", &long]);
    symlink("a/b.txt", src.path().join("l")).unwrap();
    let Ok(output) = std::process::Command::new("tar")
        .args(["-cf", "-", "-C"])
        .arg(src.path())
        .arg(".")
        .output()
    else {
        eprintln!("no tar on this machine; skipped");
        return;
    };
    assert!(output.status.success());
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("app");
    unpack(&output.stdout[..], &dest, &Limits::default(), None).unwrap();
    let mut want = vec![
        "a".to_owned(),
        "a/b.txt".into(),
        "c".into(),
        "deep".into(),
        long[..long.rfind('/').unwrap()].to_owned(),
        long.clone(),
        "l".into(),
    ];
    want.sort();
    assert_eq!(listing(&dest), want);
}
