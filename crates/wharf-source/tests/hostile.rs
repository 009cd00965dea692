//! Hostile uploads: every archive here is refused with an error naming
//! what is wrong, nothing is written outside the destination, and the
//! failed unpack leaves nothing behind.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use common::{Raw, Scene, listing};
use tar::EntryType;
use wharf_source::{Limit, Limits, Refusal, SourceError, unpack};

/// Unpacks `archive` into the scene's `dest` and returns the error, after
/// checking that the parent is as it was.
fn refused(archive: &[u8], limits: &Limits) -> SourceError {
    let scene = Scene::new();
    let err = unpack(archive, &scene.dest, limits, None).unwrap_err();
    scene.untouched();
    // Every error reads as a sentence for people, with no debug output.
    let text = err.to_string();
    assert!(
        !text.contains("Error {") && !text.contains("Custom {"),
        "{text}"
    );
    err
}

/// The refusal of the entry `entry`.
fn refusal(archive: &[u8]) -> (String, Refusal) {
    match refused(archive, &Limits::default()) {
        SourceError::Refused { entry, reason } => (entry, reason),
        other => panic!("expected a refusal, got: {other}"),
    }
}

#[test]
fn parent_dir_components_are_refused() {
    for name in ["../x", "a/../../x", "ok/../../victim", ".."] {
        let archive = Raw::new().file("ok", b"fine").file(name, b"evil").finish();
        assert_eq!(refusal(&archive), (name.to_owned(), Refusal::ParentDir));
    }
}

#[test]
fn absolute_paths_are_refused() {
    let scene = Scene::new();
    let target = scene.parent.path().join("pwned");
    let name = target.to_str().unwrap();
    let archive = Raw::new().file(name, b"evil").finish();
    let err = unpack(&archive[..], &scene.dest, &Limits::default(), None).unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused { entry, reason: Refusal::AbsolutePath } if entry == name),
        "{err}"
    );
    assert!(err.to_string().contains("is an absolute path"), "{err}");
    scene.untouched();
}

#[test]
fn empty_paths_are_refused() {
    let archive = Raw::new().file("", b"x").finish();
    assert_eq!(refusal(&archive), (String::new(), Refusal::EmptyPath));
    // `./` as a file is empty once cleaned; as a directory it is `dest`.
    let archive = Raw::new().file("./", b"x").finish();
    assert_eq!(refusal(&archive).1, Refusal::EmptyPath);
}

#[test]
fn symlinks_out_are_refused() {
    for (target, reason) in [
        (
            "/etc",
            Refusal::AbsoluteLink {
                target: "/etc".into(),
            },
        ),
        (
            "../victim",
            Refusal::LinkOutside {
                target: "../victim".into(),
            },
        ),
        (
            "../../x",
            Refusal::LinkOutside {
                target: "../../x".into(),
            },
        ),
        (
            "sub/../../victim",
            Refusal::LinkUpAfterDown {
                target: "sub/../../victim".into(),
            },
        ),
    ] {
        let archive = Raw::new()
            .dir("sub")
            .symlink("link", target)
            .file("link/passwd", b"evil")
            .finish();
        assert_eq!(refusal(&archive), ("link".to_owned(), reason), "{target}");
    }
    // From deeper down, `../..` is still inside, one more is not.
    let archive = Raw::new()
        .symlink("a/b/up", "../..")
        .symlink("a/b/out", "../../..")
        .finish();
    assert_eq!(
        refusal(&archive),
        (
            "a/b/out".to_owned(),
            Refusal::LinkOutside {
                target: "../../..".into()
            }
        )
    );
}

/// The classic: a link planted first, then a file written through it.
#[test]
fn writing_through_a_symlink_is_refused() {
    // To somewhere outside: the link itself is refused.
    let archive = Raw::new()
        .symlink("a", "/etc")
        .file("a/passwd", b"evil")
        .finish();
    assert!(matches!(refusal(&archive).1, Refusal::AbsoluteLink { .. }));

    // To somewhere inside: the link is fine, going through it is not.
    for (second, kind) in [
        ("a/x", EntryType::Regular),
        ("a/x", EntryType::Directory),
        ("a/sub/x", EntryType::Regular),
        ("a/x", EntryType::Symlink),
    ] {
        let archive = Raw::new()
            .dir("real")
            .symlink("a", "real")
            .entry(second.as_bytes(), kind, b"y", b"")
            .finish();
        assert_eq!(
            refusal(&archive),
            (
                second.to_owned(),
                Refusal::ThroughSymlink {
                    link: "a".to_owned()
                }
            ),
            "{second} {kind:?}"
        );
    }

    // A link of the same name as a later file: refused as a duplicate,
    // never followed (files are created with O_EXCL).
    let archive = Raw::new()
        .symlink("x", "y")
        .file("x", b"through the link")
        .finish();
    assert_eq!(refusal(&archive), ("x".to_owned(), Refusal::Duplicate));
}

#[test]
fn entries_under_a_file_are_refused() {
    let archive = Raw::new().file("f", b"x").file("f/g", b"y").finish();
    assert_eq!(
        refusal(&archive),
        ("f/g".to_owned(), Refusal::UnderFile { file: "f".into() })
    );
}

#[test]
fn hard_links_out_are_refused() {
    let scene = Scene::new();
    let victim = scene.parent.path().join("victim");
    for target in [
        "../victim".to_owned(),
        victim.to_str().unwrap().to_owned(),
        "missing".to_owned(),
        "later".to_owned(),
        "dir".to_owned(),
        "link".to_owned(),
        String::new(),
    ] {
        let archive = Raw::new()
            .dir("dir")
            .symlink("link", "dir")
            .hard_link("h", &target)
            .file("later", b"x")
            .finish();
        assert_eq!(
            refusal(&archive),
            ("h".to_owned(), Refusal::HardLinkTarget { target }),
        );
    }
    // The victim was never linked to: it still has one name.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1);
}

#[test]
fn hard_links_to_earlier_files_are_made() {
    let scene = Scene::new();
    let archive = Raw::new()
        .file("a", b"shared")
        .hard_link("sub/b", "a")
        .finish();
    let unpacked = unpack(&archive[..], &scene.dest, &Limits::default(), None).unwrap();
    assert_eq!(unpacked.files, 2);
    assert_eq!(fs::read(scene.dest.join("sub/b")).unwrap(), b"shared");
}

#[test]
fn special_entries_are_refused() {
    for (kind, name) in [
        (EntryType::Fifo, "fifo"),
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::GNUSparse, "GNU sparse file"),
        (EntryType::new(b'V'), "entry of type 'V'"),
    ] {
        let archive = Raw::new().entry(b"dev", kind, b"", b"").finish();
        let (entry, reason) = refusal(&archive);
        assert_eq!(entry, "dev");
        assert_eq!(
            reason,
            Refusal::Special {
                kind: name.to_owned()
            }
        );
    }
}

#[test]
fn duplicates_are_refused() {
    let archive = Raw::new().file("a", b"1").file("a", b"2").finish();
    assert_eq!(refusal(&archive), ("a".to_owned(), Refusal::Duplicate));
    // A directory named again is fine (its mode is set again).
    let scene = Scene::new();
    let archive = Raw::new().file("d/f", b"1").dir("d").dir("d/").finish();
    unpack(&archive[..], &scene.dest, &Limits::default(), None).unwrap();
    assert_eq!(listing(&scene.dest), ["d", "d/f"]);
}

#[test]
fn long_names_and_pax_paths_are_checked_too() {
    let archive = Raw::new()
        .long_name(b"../escaped")
        .file("harmless", b"x")
        .finish();
    assert_eq!(refusal(&archive), ("../escaped".into(), Refusal::ParentDir));

    let archive = Raw::new()
        .pax(&[("path", &b"/etc/passwd"[..])])
        .file("harmless", b"x")
        .finish();
    assert_eq!(
        refusal(&archive),
        ("/etc/passwd".into(), Refusal::AbsolutePath)
    );

    let archive = Raw::new()
        .pax(&[("linkpath", &b"/etc"[..])])
        .symlink("harmless", "ok")
        .finish();
    assert!(matches!(refusal(&archive).1, Refusal::AbsoluteLink { .. }));

    // A pax size would make the raw reader disagree with other readers.
    let archive = Raw::new()
        .pax(&[("size", &b"3"[..])])
        .file("f", b"abc")
        .finish();
    assert!(matches!(refusal(&archive).1, Refusal::Unsupported { .. }));

    // A long name longer than any path allowed is not even read.
    let limits = Limits {
        max_path_len: 100,
        ..Limits::default()
    };
    let archive = Raw::new().long_name(&[b'a'; 300]).file("f", b"x").finish();
    let err = refused(&archive, &limits);
    assert!(matches!(err, SourceError::NotTar { .. }), "{err}");
}

#[test]
fn garbage_is_not_a_tar_archive() {
    // Deterministic noise.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    for input in [
        &noise[..],
        &noise[..100],
        b"",
        b"PK\x03\x04 a zip file",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
    ] {
        let err = refused(input, &Limits::default());
        assert!(matches!(err, SourceError::NotTar { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("the upload is not a tar archive ("),
            "{err}"
        );
    }
    // An end-of-archive block and nothing else is an empty archive.
    let scene = Scene::new();
    let unpacked = unpack(&[0u8; 1024][..], &scene.dest, &Limits::default(), None).unwrap();
    assert_eq!((unpacked.files, unpacked.bytes), (0, 0));
    // Something after the end of the archive is refused.
    let mut archive = Raw::new().file("a", b"x").finish();
    archive.extend_from_slice(b"more");
    let err = refused(&archive, &Limits::default());
    assert!(err.to_string().contains("data after the end"), "{err}");
}

#[test]
fn truncated_archives_are_refused() {
    let archive = Raw::new()
        .file("a", &[b'a'; 2000])
        .file("b", &[b'b'; 700])
        .finish();
    // Mid-header, mid-data, at an entry boundary without the end blocks.
    for cut in [700, 1024, 2600, 3072, 3600, archive.len() - 1024] {
        let err = refused(&archive[..cut], &Limits::default());
        assert!(
            matches!(err, SourceError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("cut short"), "{err}");
    }
}

#[test]
fn over_the_byte_limit_is_refused_before_writing() {
    let limits = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    let archive = Raw::new()
        .file("small", &[1; 600])
        .file("big", &[2; 600])
        .finish();
    let err = refused(&archive, &limits);
    assert!(
        matches!(&err, SourceError::UploadTooLarge { entry, limit: Limit::Bytes(1000) } if entry == "big"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("1000 bytes of files") && text.contains(".wharfignore"),
        "{text}"
    );
    // Extended headers count too: they cannot smuggle data past the limit.
    let archive = Raw::new()
        .entry(
            b"pax_global_header",
            EntryType::XGlobalHeader,
            b"",
            &[b'x'; 1200],
        )
        .file("small", b"x")
        .finish();
    let err = refused(&archive, &limits);
    assert!(
        matches!(
            err,
            SourceError::UploadTooLarge {
                limit: Limit::Bytes(1000),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn over_the_entry_limit_is_refused() {
    let limits = Limits {
        max_entries: 5,
        ..Limits::default()
    };
    let mut raw = Raw::new();
    for n in 0..10 {
        raw = raw.file(&format!("f{n}"), b"x");
    }
    let err = refused(&raw.finish(), &limits);
    assert!(
        matches!(&err, SourceError::UploadTooLarge { entry, limit: Limit::Entries(5) } if entry == "f5"),
        "{err}"
    );
    // Directories made for deep entries count too.
    let archive = Raw::new().file("a/b/c/d/e/f", b"x").finish();
    let err = refused(&archive, &limits);
    assert!(matches!(err, SourceError::UploadTooLarge { .. }), "{err}");
    // Paths over the length limit.
    let limits = Limits {
        max_path_len: 10,
        ..Limits::default()
    };
    let archive = Raw::new().file("a/very/long/path", b"x").finish();
    let err = refused(&archive, &limits);
    assert!(
        matches!(
            err,
            SourceError::Refused {
                reason: Refusal::TooLong { len: 16, max: 10 },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_hash_mismatch_keeps_nothing() {
    let archive = Raw::new().file("a", b"x").finish();
    let scene = Scene::new();
    let wrong = "0".repeat(64);
    let err = unpack(&archive[..], &scene.dest, &Limits::default(), Some(&wrong)).unwrap_err();
    assert!(
        matches!(&err, SourceError::HashMismatch { expected, .. } if *expected == wrong),
        "{err}"
    );
    scene.untouched();

    // The right hash, in either case, passes.
    let good = unpack(&archive[..], &scene.dest, &Limits::default(), None)
        .unwrap()
        .sha256;
    fs::remove_dir_all(&scene.dest).unwrap();
    let upper = good.to_uppercase();
    let again = unpack(&archive[..], &scene.dest, &Limits::default(), Some(&upper)).unwrap();
    assert_eq!(again.sha256, good);

    // Something that is not a hash is refused before anything is read.
    let err = unpack(
        &archive[..],
        &scene.parent.path().join("other"),
        &Limits::default(),
        Some("abc"),
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::BadHash { .. }), "{err}");
}

#[test]
fn the_destination_must_be_new_or_empty() {
    let scene = Scene::new();
    let archive = Raw::new().file("a", b"x").finish();
    // A file, or a non-empty directory: refused, left alone.
    let victim = scene.parent.path().join("victim");
    let err = unpack(&archive[..], &victim, &Limits::default(), None).unwrap_err();
    assert!(matches!(err, SourceError::Destination { .. }), "{err}");
    let err = unpack(&archive[..], scene.parent.path(), &Limits::default(), None).unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
    scene.untouched();

    // An empty directory that exists: kept (emptied) after a failure.
    fs::create_dir(&scene.dest).unwrap();
    let bad = Raw::new().file("a", b"x").file("../b", b"y").finish();
    unpack(&bad[..], &scene.dest, &Limits::default(), None).unwrap_err();
    assert!(listing(&scene.dest).is_empty());
    unpack(&archive[..], &scene.dest, &Limits::default(), None).unwrap();
    assert_eq!(listing(&scene.dest), ["a"]);
}

/// A reader that fails after some bytes, as a dropped connection does.
struct Failing<'a>(&'a [u8]);

impl std::io::Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ));
        }
        let n = buf.len().min(self.0.len()).min(700);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_failed_connection_is_a_receive_error() {
    let archive = Raw::new().file("a", &[1; 5000]).finish();
    let scene = Scene::new();
    let err = unpack(
        Failing(&archive[..3000]),
        &scene.dest,
        &Limits::default(),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::Receive { .. }), "{err}");
    assert!(err.to_string().contains("connection reset"), "{err}");
    scene.untouched();
}

#[test]
fn setuid_bits_are_never_kept() {
    use std::os::unix::fs::PermissionsExt;
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_path("suid").unwrap();
    header.set_mode(0o6755);
    header.set_uid(0);
    header.set_size(1);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    let archive = builder.into_inner().unwrap();
    let scene = Scene::new();
    unpack(&archive[..], &scene.dest, &Limits::default(), None).unwrap();
    let mode = fs::metadata(scene.dest.join("suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}
