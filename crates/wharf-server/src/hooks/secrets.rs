//! An app's webhook secret and forge API token, as files in the data dir:
//! `<data>/hooks/<app>/secret` and `<data>/hooks/<app>/forge-token`,
//! mode 0600 in directories of mode 0700, owned by the server's user.
//!
//! A file is written to a temp file created with mode 0600 next to it
//! (never readable by others, not even briefly), synced and renamed over
//! the old one, so a crash leaves the old value or the new, never half of
//! one. Values are never logged, never stored in the database and never
//! answered except once, to the admin who asked for a new secret.
//!
//! A new secret is `whsec_` and the base64 of 32 bytes from the kernel's
//! random source: the shape GitLab's signing tokens need (notes §1.3), and
//! a plain strong string for every other forge, so one value serves all.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The directory under the data dir that holds every app's hook files.
pub(crate) const HOOKS_DIR: &str = "hooks";
/// Longest value accepted (a forge token, a secret given by hand).
pub(crate) const MAX_VALUE_LEN: usize = 4096;
/// Random bytes in a new secret.
const SECRET_BYTES: usize = 32;

/// Which of an app's hook files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The webhook secret the forge signs with.
    Secret,
    /// The forge API token commit statuses are posted with.
    ForgeToken,
}

impl Kind {
    fn file_name(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::ForgeToken => "forge-token",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Secret => "webhook secret",
            Kind::ForgeToken => "forge token",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    #[error("{0}")]
    BadApp(String),
    #[error(
        "could not {action} the {what} file {path}: {source}; check that the data directory belongs to the user running `wharf server`"
    )]
    Io {
        action: &'static str,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "could not read the system's random source to make a webhook secret: {0}; check that /dev/urandom is available"
    )]
    Random(std::io::Error),
    #[error("the {what} is empty; give a non-empty value")]
    Empty { what: &'static str },
    #[error("the {what} is longer than {MAX_VALUE_LEN} bytes; check what was pasted")]
    TooLong { what: &'static str },
}

/// Forgets `app`'s hook secret and forge token (the app was removed: an app
/// made later under its name must not inherit them).
pub(crate) fn forget(data_dir: &Path, app: &str) -> std::io::Result<()> {
    let Ok(dir) = path(data_dir, app, Kind::Secret).map(|p| p.with_file_name("")) else {
        return Ok(());
    };
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Where `app`'s `kind` file lives (the app name checked first: it
/// becomes a path).
pub(crate) fn path(data_dir: &Path, app: &str, kind: Kind) -> Result<PathBuf, SecretError> {
    wharf_config::validate_app_name(app).map_err(SecretError::BadApp)?;
    Ok(data_dir.join(HOOKS_DIR).join(app).join(kind.file_name()))
}

/// `app`'s `kind` value, trimmed; `None` when it was never set or the
/// file holds only whitespace (both mean "no secret": fail closed).
pub(crate) fn read(data_dir: &Path, app: &str, kind: Kind) -> Result<Option<String>, SecretError> {
    let path = path(data_dir, app, kind)?;
    let mut text = String::new();
    match File::open(&path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => {
            let value = text.trim();
            Ok((!value.is_empty()).then(|| value.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::Io {
            action: "read",
            what: kind.what(),
            path,
            source,
        }),
    }
}

/// Stores `value` as `app`'s `kind` (mode 0600, atomically); returns
/// whether it replaced an earlier value.
pub(crate) fn write(
    data_dir: &Path,
    app: &str,
    kind: Kind,
    value: &str,
) -> Result<bool, SecretError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(SecretError::Empty { what: kind.what() });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(SecretError::TooLong { what: kind.what() });
    }
    let path = path(data_dir, app, kind)?;
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| SecretError::Io {
            action,
            what: kind.what(),
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or(data_dir).to_path_buf();
    let hooks = data_dir.join(HOOKS_DIR);
    for d in [&hooks, &dir] {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(io("create the directory of", d))?;
        // An existing directory keeps its mode: make it owner-only.
        std::fs::set_permissions(d, Permissions::from_mode(0o700))
            .map_err(io("protect the directory of", d))?;
    }
    let replaced = path.exists();
    let tmp = dir.join(format!(
        ".{}.tmp-{:016x}",
        kind.file_name(),
        fastrand::u64(..)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask cannot widen 0600, but a narrower one is not ours.
        file.set_permissions(Permissions::from_mode(0o600))?;
        file.write_all(value.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write", &path)(source));
    }
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(replaced)
}

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub(crate) fn generate() -> Result<String, SecretError> {
    let mut bytes = [0u8; SECRET_BYTES];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(SecretError::Random)?;
    Ok(format!("whsec_{}", BASE64.encode(bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_owner_only_read_back_trimmed_and_replaced_atomically() {
        let data = tempfile::tempdir().unwrap();
        let data = data.path();
        assert_eq!(read(data, "shop", Kind::Secret).unwrap(), None);
        assert!(!write(data, "shop", Kind::Secret, " first \n").unwrap());
        let file = data.join("hooks/shop/secret");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&data.join("hooks/shop")), 0o700);
        assert_eq!(mode(&data.join("hooks")), 0o700);
        assert_eq!(
            read(data, "shop", Kind::Secret).unwrap().as_deref(),
            Some("first")
        );
        assert!(write(data, "shop", Kind::Secret, "second").unwrap());
        assert_eq!(
            read(data, "shop", Kind::Secret).unwrap().as_deref(),
            Some("second")
        );
        assert_eq!(mode(&file), 0o600);
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(data.join("hooks/shop"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"]);
        // The forge token is its own file.
        write(data, "shop", Kind::ForgeToken, "ghp_x").unwrap();
        assert_eq!(mode(&data.join("hooks/shop/forge-token")), 0o600);
        assert_eq!(
            read(data, "shop", Kind::Secret).unwrap().as_deref(),
            Some("second")
        );
    }

    #[test]
    fn blank_files_mean_no_secret_and_bad_values_are_refused() {
        let data = tempfile::tempdir().unwrap();
        let data = data.path();
        std::fs::create_dir_all(data.join("hooks/shop")).unwrap();
        std::fs::write(data.join("hooks/shop/secret"), "  \n").unwrap();
        assert_eq!(read(data, "shop", Kind::Secret).unwrap(), None);
        assert!(matches!(
            write(data, "shop", Kind::Secret, " \n"),
            Err(SecretError::Empty { .. })
        ));
        let long = "x".repeat(MAX_VALUE_LEN + 1);
        assert!(matches!(
            write(data, "shop", Kind::Secret, &long),
            Err(SecretError::TooLong { .. })
        ));
        for app in ["../etc", "a/b", "", "Shop", "."] {
            assert!(
                matches!(read(data, app, Kind::Secret), Err(SecretError::BadApp(_))),
                "{app}"
            );
            assert!(matches!(
                write(data, app, Kind::Secret, "x"),
                Err(SecretError::BadApp(_))
            ));
        }
    }

    #[test]
    fn new_secrets_are_signing_token_shaped_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        let key = BASE64.decode(a.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(key.len(), SECRET_BYTES);
    }
}
