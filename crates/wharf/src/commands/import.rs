//! `wharf import compose|kamal`: write a `wharf.toml` from a
//! `docker-compose.yml` or a Kamal `config/deploy.yml` (the mapping itself
//! is `wharf-import`'s). Warnings go to stderr, the file to `--out` (or the
//! TOML to stdout with `--stdout`), `--json` puts both on stdout, and the
//! error too when the import fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use wharf_import::{ComposeOptions, Import, ImportError};

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

pub fn run(command: ImportCommand) -> Result<()> {
    let (kind, args) = match command {
        ImportCommand::Compose(args) => ("compose", args),
        ImportCommand::Kamal(args) => ("kamal", args),
    };
    let json = args.json;
    match import(kind, &args) {
        Ok(done) => report(kind, &args, &done),
        Err(err) => {
            if json {
                // A script reads the outcome on stdout whatever it is; the
                // error is also said on stderr, and the exit code is kept.
                output::json(&serde_json::json!({
                    "ok": false,
                    "error": crate::render_error(&err),
                    "toml": null,
                    "warnings": [],
                    "written": null,
                    "check": null,
                }));
            }
            Err(err)
        }
    }
}

/// What an import made: the result, the file it read, where it wrote it,
/// and what `wharf config check` says of it.
struct Done {
    file: PathBuf,
    imported: Import,
    written: Option<PathBuf>,
    check: Option<String>,
}

fn import(kind: &str, args: &ImportArgs) -> Result<Done> {
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
    let imported = match kind {
        "compose" => {
            // Compose reads `.env` next to the file for `${VAR}`.
            let dotenv_path = file.with_file_name(".env");
            let dotenv = match std::fs::read_to_string(&dotenv_path) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(Exit::Usage(format!(
                        "could not read {}: {e}; compose reads it for `${{VAR}}` values, so the import does too: make it readable",
                        dotenv_path.display()
                    ))
                    .into());
                }
            };
            wharf_import::compose_with(
                &file,
                &source,
                &ComposeOptions {
                    name: args.name.as_deref(),
                    service: args.service.as_deref(),
                    dotenv: dotenv.as_deref(),
                },
            )
        }
        _ => {
            if args.service.is_some() {
                return Err(Exit::Usage(
                    "`--service` chooses a compose service; a Kamal import takes its roles as processes: drop `--service`".into(),
                )
                .into());
            }
            wharf_import::kamal(&file, &source, args.name.as_deref())
        }
    }
    .map_err(|e: ImportError| Exit::Usage(e.to_string()))?;

    let out = if args.out.is_dir() {
        args.out.join(wharf_config::FILE_NAME)
    } else {
        args.out.clone()
    };
    // The import is meant to produce a valid file; if it did not, say so
    // now rather than at the first deploy.
    let check = wharf_config::AppConfig::parse(&out, &imported.toml)
        .err()
        .map(|e| e.to_string());
    let written = if args.stdout {
        None
    } else {
        write(&out, &imported.toml, args.force)?;
        Some(out)
    };
    Ok(Done {
        file,
        imported,
        written,
        check,
    })
}

fn report(kind: &str, args: &ImportArgs, done: &Done) -> Result<()> {
    let Done {
        file,
        imported,
        written,
        check,
    } = done;
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
            "ok": true,
            "error": null,
            "toml": imported.toml,
            "warnings": warnings,
            "written": written.as_ref().map(|p| p.display().to_string()),
            "check": check,
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
    match written {
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
            if let Some(note) = relative_paths_note(kind, file, out) {
                output::note(&note);
            }
        }
    }
    if let Some(e) = check {
        output::note(&format!(
            "warning: the imported file does not pass `wharf config check` yet; fix these before deploying:\n{e}"
        ));
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

/// Relative paths ([build], `env_file`, `./` volumes) are relative to where
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
            "note: the relative paths in it ([build], `env_file`, `./` volumes) are relative to {}, where {} is, but wharf reads them relative to {}: move wharf.toml to {} or adjust them",
            app_dir.display(),
            file.display(),
            out_dir.display(),
            app_dir.display()
        )
    })
}
