//! Just enough of `/proc` (Linux): process start times, process groups, and
//! finding processes by an environment entry.

use std::path::Path;

/// The fields of `/proc/<pid>/stat` the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `Z`, …
    pub state: u8,
    /// Field 5.
    pub pgid: i32,
    /// Field 22: start time in clock ticks since boot; with the pid, it
    /// identifies a process even across pid reuse.
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`. `None` when the process is gone or unreadable.
pub(crate) fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and parentheses included: fields resume after the last ')'.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3.
    Some(Stat {
        state: *fields.first()?.as_bytes().first()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Start time (field 22 of `/proc/<pid>/stat`), 0 when unreadable.
pub(crate) fn start_time(pid: u32) -> u64 {
    stat(pid).map(|s| s.start_time).unwrap_or(0)
}

/// Whether `pid` still is the process that started at `start_time` and is
/// not a zombie.
pub(crate) fn alive(pid: u32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time && s.state != b'Z')
}

/// Whether any process of group `pgid` is alive and not a zombie.
pub(crate) fn group_has_live_member(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|item| {
        item.file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            .and_then(stat)
            .is_some_and(|s| s.pgid == pgid && s.state != b'Z' && s.state != b'X')
    })
}

/// A process whose environment holds the searched entry.
#[derive(Debug, Clone)]
pub(crate) struct Marked {
    pub pid: u32,
    pub stat: Stat,
    /// Value of `WHARF_INSTANCE`, if set.
    pub instance: Option<String>,
    /// Value of `WHARF_APP`, if set.
    pub app: Option<String>,
}

/// Processes whose environment contains exactly `entry` (`KEY=value`).
/// Entries that cannot be read (other users, gone meanwhile) are skipped.
pub(crate) fn find_by_env(proc_root: &Path, entry: &[u8]) -> Vec<Marked> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for item in dir.flatten() {
        let Some(pid) = item
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(item.path().join("environ")) else {
            continue;
        };
        let mut matched = false;
        let (mut instance, mut app) = (None, None);
        for var in environ.split(|&b| b == 0) {
            if var == entry {
                matched = true;
            } else if let Some(value) = var.strip_prefix(b"WHARF_INSTANCE=") {
                instance = Some(String::from_utf8_lossy(value).into_owned());
            } else if let Some(value) = var.strip_prefix(b"WHARF_APP=") {
                app = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
        if !matched {
            continue;
        }
        let Some(stat) = stat(pid) else { continue };
        found.push(Marked {
            pid,
            stat,
            instance,
            app,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            Stat {
                state: b'S',
                pgid: 1234,
                start_time: 987654
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        let me = std::process::id();
        let stat = stat(me).unwrap();
        assert!(stat.start_time > 0);
        assert!(alive(me, stat.start_time));
        assert!(!alive(me, stat.start_time + 1));
    }
}
