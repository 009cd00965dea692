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
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = vec![count(config.processes.len(), "process", "processes")];
    if !config.accessories.is_empty() {
        parts.push(count(config.accessories.len(), "accessory", "accessories"));
    }
    if !config.cron.is_empty() {
        parts.push(count(config.cron.len(), "cron entry", "cron entries"));
    }
    output::note(&format!(
        "{} is valid: app {}, {}",
        dir.join(wharf_config::FILE_NAME).display(),
        config.name,
        parts.join(", ")
    ));
    Ok(())
}
