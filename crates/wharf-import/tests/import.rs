//! Table-driven import tests: every fixture under `tests/fixtures/compose/`
//! and `tests/fixtures/kamal/` is imported, and the produced `wharf.toml`
//! and the warnings (or the error) are compared with one snapshot per case.
//! Every produced file must be valid TOML and a valid `wharf.toml`. A
//! compose fixture's `.env` is passed in as the CLI does.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use wharf_import::{ComposeOptions, Import, ImportError};

type Importer = fn(&Path, &str, Option<&str>) -> Result<Import, ImportError>;

/// A compose file with the `.env` next to it, as `wharf import compose`
/// reads them.
fn compose_fixture(path: &Path, source: &str, name: Option<&str>) -> Result<Import, ImportError> {
    let dotenv = std::fs::read_to_string(path.with_file_name(".env")).ok();
    wharf_import::compose_with(
        path,
        source,
        &ComposeOptions {
            name,
            dotenv: dotenv.as_deref(),
            ..ComposeOptions::default()
        },
    )
}

/// Fixture paths are relative to the crate, as `cargo test` runs there; that
/// is also how they appear in locations.
fn fixture(kind: &str, case: &str) -> PathBuf {
    let file = match kind {
        "compose" => "docker-compose.yml",
        _ => "config/deploy.yml",
    };
    Path::new("tests/fixtures").join(kind).join(case).join(file)
}

fn render(result: &Result<Import, ImportError>) -> String {
    match result {
        Ok(import) => {
            let mut out = String::from("--- wharf.toml\n");
            out.push_str(&import.toml);
            out.push_str(&format!("--- warnings ({})\n", import.warnings.len()));
            for w in &import.warnings {
                out.push_str(&format!("{w}\n"));
            }
            out
        }
        Err(e) => format!("--- error\n{e}\n"),
    }
}

fn check(kind: &str, case: &str, import: Importer) {
    let path = fixture(kind, case);
    let source = std::fs::read_to_string(&path).unwrap();
    let result = import(&path, &source, None);
    if let Ok(ok) = &result {
        toml::from_str::<toml::Table>(&ok.toml)
            .unwrap_or_else(|e| panic!("{kind}/{case}: not valid TOML: {e}\n{}", ok.toml));
    }
    let mut settings = insta::Settings::clone_current();
    // Relative host paths are resolved to absolute ones on this machine.
    settings.add_filter(&regex_escape(env!("CARGO_MANIFEST_DIR")), "[CRATE]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(format!("{kind}-{case}"), render(&result)));
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

macro_rules! cases {
    ($kind:literal, $import:path, $($name:ident => $case:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check($kind, $case, $import);
            }
        )*
    };
}

mod compose {
    use super::*;

    cases!("compose", compose_fixture,
        web_postgres_worker => "web-postgres-worker",
        build_string => "build-string",
        build_map => "build-map",
        env_interpolation => "env-interpolation",
        long_syntax => "long-syntax",
        anchors => "anchors",
        unsupported => "unsupported",
        no_build => "no-build",
        invalid_yaml => "invalid-yaml",
        two_http => "two-http",
        literal_secrets => "literal-secrets",
        restart_policies => "restart-policies",
        image_only => "image-only",
        first_build_not_web => "first-build-not-web",
        env_files => "env-files",
        init_job => "init-job",
        profiles_extends => "profiles-extends",
        yaml_compose_accepts => "yaml-compose-accepts",
        yaml_duplicate_key => "yaml-duplicate-key",
    );
}

mod kamal {
    use super::*;

    cases!("kamal", wharf_import::kamal,
        minimal => "minimal",
        roles_proxy => "roles-proxy",
        accessories => "accessories",
        builder => "builder",
        erb_unsupported => "erb-unsupported",
        rails_sqlite => "rails-sqlite",
        placeholder => "placeholder",
    );
}

/// Every fixture directory has a test above.
#[test]
fn every_fixture_is_a_case() {
    let this = include_str!("import.rs");
    for kind in ["compose", "kamal"] {
        for entry in std::fs::read_dir(Path::new("tests/fixtures").join(kind)).unwrap() {
            let case = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                this.contains(&format!("=> \"{case}\"")),
                "tests/fixtures/{kind}/{case} has no test case in {}",
                file!()
            );
        }
    }
}

/// Every import that succeeds is a `wharf.toml` wharf accepts.
#[test]
fn every_import_is_a_valid_wharf_toml() {
    let mut failures = Vec::new();
    for (kind, import) in [
        ("compose", compose_fixture as Importer),
        ("kamal", wharf_import::kamal as Importer),
    ] {
        for entry in std::fs::read_dir(Path::new("tests/fixtures").join(kind)).unwrap() {
            let case = entry.unwrap().file_name().into_string().unwrap();
            let path = fixture(kind, &case);
            let source = std::fs::read_to_string(&path).unwrap();
            let Ok(ok) = import(&path, &source, None) else {
                continue;
            };
            if let Err(e) = wharf_config::AppConfig::parse(Path::new("wharf.toml"), &ok.toml) {
                failures.push(format!("{kind}/{case}:\n{e}\n{}", ok.toml));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn name_option() {
    let path = fixture("compose", "build-string");
    let source = std::fs::read_to_string(&path).unwrap();
    let ok = wharf_import::compose(&path, &source, Some("my-app")).unwrap();
    assert!(ok.toml.contains("name = \"my-app\""), "{}", ok.toml);
    let err = wharf_import::compose(&path, &source, Some("My App")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`My App` is not a valid app name: use lowercase letters, digits and `-`, not starting with `-`, at most 63 characters; try `--name my-app`"
    );
}

/// Whatever the input, an import returns; it never panics.
#[test]
fn odd_inputs_do_not_panic() {
    let inputs = [
        "",
        "~",
        "[]",
        "- a\n- b\n",
        "services:\n",
        "services: []\n",
        "services:\n  web: 1\n",
        "services:\n  web:\n    build:\n",
        "services:\n  web:\n    build: [1]\n    ports: 3000\n    environment: 5\n",
        "services:\n  web:\n    build: .\n    ports: [{}, [], \"x:y:z:w\", 70000]\n    healthcheck: []\n    deploy: 3\n",
        "services:\n  web:\n    build: {context: ../..}\n",
        "services:\n  web:\n    build: .\n    <<: 5\n",
        "a: &a [*a]\n",
        "? [a, b]\n: c\n",
        "services:\n  \"\":\n    build: .\n  \"日本\":\n    image: x\n",
        "\u{feff}services:\n  web:\n    build: .\n",
        "servers: 5\nproxy: [1]\nenv: x\naccessories: [1]\nbuilder: 7\n",
        "servers:\n  web: {hosts: 3, options: [1], proxy: {hosts: 5, app_port: 99999}}\n",
        "accessories:\n  db: {image: [x], port: \"a:b\", env: {secret: [\"A:B:C\", 1]}, directories: [x]}\n",
        "<%= x %>\n",
    ];
    for input in inputs {
        for import in [wharf_import::compose as Importer, wharf_import::kamal] {
            let result = import(Path::new("x/docker-compose.yml"), input, None);
            if let Ok(ok) = result {
                toml::from_str::<toml::Table>(&ok.toml).unwrap_or_else(|e| {
                    panic!("input {input:?}: not valid TOML: {e}\n{}", ok.toml)
                });
            }
        }
    }
}

/// A literal credential is moved to `[secrets]`: its value is neither in
/// the produced file nor in any warning.
#[test]
fn literal_secrets_are_never_printed() {
    let path = fixture("compose", "literal-secrets");
    let source = std::fs::read_to_string(&path).unwrap();
    let ok = wharf_import::compose(&path, &source, None).unwrap();
    for secret in [
        "hunter2-web",
        "3f9c1e0d7a",
        "wJalrXUtnFEMI",
        "sk_live_51Hx",
        "pg-s3cret",
        "my-s3cret",
    ] {
        assert!(source.contains(secret), "{secret} is not in the fixture");
        assert!(!ok.toml.contains(secret), "{secret} in:\n{}", ok.toml);
        for w in &ok.warnings {
            assert!(!w.to_string().contains(secret), "{secret} in: {w}");
        }
    }
}

/// A value of the wrong shape is a warning at its location, not a silent
/// drop.
#[test]
fn wrong_shapes_are_warned_about() {
    let compose = "services:\n  web:\n    build: .\n    deploy: 3\n  db:\n    image: postgres\n    healthcheck:\n      interval: 5s\n";
    let ok = wharf_import::compose(Path::new("app/docker-compose.yml"), compose, None).unwrap();
    let warnings: Vec<String> = ok.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.contains(&"app/docker-compose.yml:4:13: services.web.deploy: expected a mapping, found a single value; not carried over".to_owned()),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(
            |w| w.starts_with("app/docker-compose.yml:8:7: services.db.healthcheck: no `test`")
        ),
        "{warnings:#?}"
    );

    let kamal = "service: x\nservers: [a]\nbuilder: 7\nproxy:\n  hosts: x.example.com\n";
    let ok = wharf_import::kamal(Path::new("config/deploy.yml"), kamal, None).unwrap();
    let warnings: Vec<String> = ok.warnings.iter().map(ToString::to_string).collect();
    for expected in [
        "config/deploy.yml:3:10: builder: expected a mapping, found a single value; not carried over",
        "config/deploy.yml:5:10: proxy.hosts: expected a list, found a single value; not carried over",
    ] {
        assert!(warnings.contains(&expected.to_owned()), "{warnings:#?}");
    }
}
