//! `wharf import compose|kamal`: write a `wharf.toml` from a
//! `docker-compose.yml` or a Kamal `config/deploy.yml` (the mapping itself
//! is `wharf-import`'s). Warnings go to stderr, the file to `--out` (or the
//! TOML to stdout with `--stdout`), `--json` puts both on stdout.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use wharf_import::{Import, ImportError};

use crate::Exit;
use crate::cli::{ImportArgs, ImportCommand};
use crate::output;

/// Compose files looked for when none is named, in this order.
const COMPOSE_FILES: [&str; 4] = [
    "docker-compose.yml",
    "compose.yml",
    "compose.yaml",
    "docker-compose.yaml",
];
const KAMAL_FILE: &str = "config/deploy.yml";

type Importer = fn(&Path, &str, Option<&str>) -> Result<Import, ImportError>;

pub fn run(command: ImportCommand) -> Result<()> {
    let (kind, args, import): (&str, ImportArgs, Importer) = match command {
        ImportCommand::Compose(args) => ("compose", args, wharf_import::compose),
        ImportCommand::Kamal(args) => ("kamal", args, wharf_import::kamal),
    };
    let file = match &args.file {
        Some(f) => f.clone(),
        None => default_file(kind)?,
    };
    let source = std::fs::read_to_string(&file).map_err(|e| {
        Exit::Usage(format!(
            "could not read {}: {e}; pass the file to import: `wharf import {kind} FILE`",
            file.display()
        ))
    })?;
    let imported =
        import(&file, &source, args.name.as_deref()).map_err(|e| Exit::Usage(e.to_string()))?;

    let out = if args.out.is_dir() {
        args.out.join(wharf_config::FILE_NAME)
    } else {
        args.out.clone()
    };
    let written = if args.stdout {
        None
    } else {
        write(&out, &imported.toml, args.force)?;
        Some(out)
    };

    if args.json {
        let warnings: Vec<serde_json::Value> = imported
            .warnings
            .iter()
            .map(|w| {
                serde_json::json!({
                    "location": w.location,
                    "key": w.key,
                    "message": w.message,
                })
            })
            .collect();
        output::json(&serde_json::json!({
            "toml": imported.toml,
            "warnings": warnings,
            "written": written.as_ref().map(|p| p.display().to_string()),
        }));
        return Ok(());
    }

    {
        let mut err = std::io::stderr().lock();
        for w in &imported.warnings {
            // Writes ignore errors, as in `output`: a closed stderr must not
            // turn a written file into a failure.
            let _ = writeln!(err, "warning: {w}");
        }
    }
    match &written {
        None => output::data(imported.toml.trim_end()),
        Some(out) => {
            let n = imported.warnings.len();
            let s = if n == 1 { "" } else { "s" };
            let about = if n == 0 {
                "every key was carried over".to_owned()
            } else {
                format!("{n} warning{s} above")
            };
            output::note(&format!(
                "wrote {} from {} ({about}); review it, then `wharf config check` and `wharf deploy`",
                out.display(),
                file.display()
            ));
            if let Some(note) = relative_paths_note(kind, &file, out) {
                output::note(&note);
            }
            // The import is meant to produce a valid file; if it did not,
            // say so now rather than at the first deploy.
            if let Err(e) = wharf_config::AppConfig::parse(out, &imported.toml) {
                output::note(&format!(
                    "warning: {} does not pass `wharf config check` yet; fix these before deploying:\n{e}",
                    out.display()
                ));
            }
        }
    }
    Ok(())
}

fn default_file(kind: &str) -> Result<PathBuf> {
    let candidates: &[&str] = if kind == "compose" {
        &COMPOSE_FILES
    } else {
        &[KAMAL_FILE]
    };
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Ok(found);
    }
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| ".".into());
    Err(Exit::Usage(format!(
        "no {} in {cwd}; run this in the app's directory or pass the file: `wharf import {kind} FILE`",
        candidates.join(", ")
    ))
    .into())
}

fn write(out: &Path, toml: &str, force: bool) -> Result<()> {
    // `create_new` rather than an exists() check first: nothing can appear
    // between the check and the write.
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = match options.open(out) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Exit::Usage(format!(
                "{} already exists; pass --force to overwrite it, --out PATH to write elsewhere, or --stdout to print it",
                out.display()
            ))
            .into());
        }
        Err(e) => {
            return Err(Exit::Failed(format!("could not write {}: {e}", out.display())).into());
        }
    };
    f.write_all(toml.as_bytes())
        .map_err(|e| Exit::Failed(format!("could not write {}: {e}", out.display())))?;
    Ok(())
}

/// Paths in [build] (and the app name's directory) are relative to where
/// the imported file's app lives; when wharf.toml goes elsewhere, say so.
fn relative_paths_note(kind: &str, file: &Path, out: &Path) -> Option<String> {
    let dir_of = |p: &Path| -> Option<PathBuf> {
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        parent.canonicalize().ok()
    };
    let mut app_dir = dir_of(file)?;
    if kind == "kamal" && app_dir.file_name().is_some_and(|n| n == "config") {
        app_dir.pop();
    }
    let out_dir = dir_of(out)?;
    (app_dir != out_dir).then(|| {
        format!(
            "note: the paths in [build] are relative to {}, where {} is, but wharf reads them relative to {}: move wharf.toml to {} or adjust them",
            app_dir.display(),
            file.display(),
            out_dir.display(),
            app_dir.display()
        )
    })
}
