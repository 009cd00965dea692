//! `wharf config show|check`: the resolved wharf.toml, locally.

use std::path::Path;

use anyhow::Result;
use wharf_config::AppConfig;

use crate::output;

pub fn show(dir: &Path, json: bool) -> Result<()> {
    let config = AppConfig::load(dir)?;
    if json {
        output::json(&config);
    } else {
        output::data(config.to_toml().trim_end());
    }
    Ok(())
}

pub fn check(dir: &Path) -> Result<()> {
    let config = AppConfig::load(dir)?;
    output::note(&format!(
        "{} is valid: app {}, {} processes",
        dir.join(wharf_config::FILE_NAME).display(),
        config.name,
        config.processes.len()
    ));
    Ok(())
}
