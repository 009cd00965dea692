//! Helpers shared by this crate's integration tests.

use std::path::Path;

use wharf_config::AppConfig;

/// Parses a config that must be valid; the panic shows every error.
pub fn parse(source: &str) -> AppConfig {
    match AppConfig::parse(Path::new("wharf.toml"), source) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

/// The smallest valid app.
pub const MINIMAL: &str = r#"
name = "hello"
[processes.web]
command = "bin/hello"
"#;
