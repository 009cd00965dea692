//! Cron end to end with the real binary: an every-second entry (a 6-field
//! schedule, seconds first) runs once per tick as a one-off task of the
//! serving release, its output kept as the run's log; across a kill -9 and
//! a restart no scheduled time runs twice, and of the times missed while
//! the server was down only the latest runs; a run still going makes the
//! next one skip, recorded with why.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{App, Server};

fn cron_app(name: &str, entries: &str) -> App {
    let app = App::builder(name).build();
    app.write_config(&format!(
        r#"name = "{name}"

[processes.web]
command = "{bin}"
http = {{ path = "/" }}
health = {{ path = "/up", interval = "100ms" }}

{entries}
"#,
        bin = support::hello_bin().display()
    ));
    app
}

fn runs(server: &Server, entry: &str) -> Vec<serde_json::Value> {
    let out = server.ok(&["cron", "runs", entry, "--json", "--limit", "500"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scheduled time → how many runs (or skips) were recorded for it.
fn per_tick(runs: &[serde_json::Value]) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for r in runs {
        *out.entry(r["scheduled_ms"].as_i64().unwrap()).or_default() += 1;
    }
    out
}

#[test]
fn an_every_second_entry_runs_once_per_tick_across_a_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_on(&data, &[]);
    let app = cron_app(
        "ticker",
        "[cron.tick]\nschedule = \"* * * * * *\"\ncommand = \"echo tick from $WHARF_CRON\"\n",
    );
    server.deploy(&app, &[]);
    wait_for("three runs", Duration::from_secs(20), || {
        runs(&server, "tick")
            .iter()
            .filter(|r| r["state"] == "succeeded")
            .count()
            >= 3
    });
    let before = runs(&server, "tick");
    let last_before = before
        .iter()
        .map(|r| r["scheduled_ms"].as_i64().unwrap())
        .max()
        .unwrap();
    // Its output is the run's log, and `cron list` names the entry.
    let done = before.iter().find(|r| r["state"] == "succeeded").unwrap();
    let logs = server.ok(&["job", "logs", &done["id"].to_string()]);
    assert!(logs.contains("tick from tick"), "{logs}");
    assert_eq!(done["exit_code"], 0);
    assert!(server.ok(&["cron", "list"]).contains("* * * * * * (UTC)"));

    server.kill9();
    std::thread::sleep(Duration::from_millis(3500));
    let server = Server::start_on(&data, &[]);
    wait_for("runs after the restart", Duration::from_secs(20), || {
        runs(&server, "tick")
            .iter()
            .filter(|r| r["scheduled_ms"].as_i64().unwrap() > last_before + 3000)
            .any(|r| r["state"] == "succeeded")
    });
    let all = runs(&server, "tick");
    let ticks = per_tick(&all);
    assert!(
        ticks.values().all(|n| *n == 1),
        "a scheduled time ran twice: {ticks:?}"
    );
    // While the server was down (about 3.5 s), at most the latest missed
    // time ran once after the restart: the others have no record at all.
    let missing = (last_before / 1000 + 1..last_before / 1000 + 4)
        .filter(|s| !ticks.contains_key(&(s * 1000)))
        .count();
    assert!(missing >= 1, "missed times were all run: {ticks:?}");
    // Whatever a dead server left running ended as interrupted, never
    // run a second time.
    for r in &all {
        assert!(
            r["state"] != "running" || r["scheduled_ms"].as_i64().unwrap() > last_before,
            "{r:#}"
        );
    }
}

#[test]
fn a_run_still_going_makes_the_next_one_skip() {
    let server = Server::start();
    let app = cron_app(
        "sleeper",
        "[cron.slow]\nschedule = \"* * * * * *\"\ncommand = \"sleep 2.5; echo slow done\"\n\n\
         [cron.quick]\nschedule = \"* * * * * *\"\ncommand = \"echo quick\"\n",
    );
    server.deploy(&app, &[]);
    wait_for(
        "a finished slow run and a skip",
        Duration::from_secs(30),
        || {
            let slow = runs(&server, "slow");
            slow.iter().any(|r| r["state"] == "succeeded")
                && slow.iter().any(|r| r["state"] == "skipped")
        },
    );
    let slow = runs(&server, "slow");
    let skipped = slow.iter().find(|r| r["state"] == "skipped").unwrap();
    assert!(
        skipped["error"]
            .as_str()
            .unwrap()
            .contains("was still running"),
        "{skipped:#}"
    );
    let done = slow.iter().find(|r| r["state"] == "succeeded").unwrap();
    let took = done["finished_ms"].as_i64().unwrap() - done["started_ms"].as_i64().unwrap();
    assert!(took >= 2500, "{done:#}");
    // Another entry of the app is not held back by the slow one.
    let quick = runs(&server, "quick");
    assert!(
        quick.iter().filter(|r| r["state"] == "succeeded").count() >= 2,
        "{quick:#?}"
    );
    assert!(quick.iter().all(|r| r["state"] != "skipped"), "{quick:#?}");

    // `cron run` runs it now, through the queue.
    let said = server.wharf(&["cron", "run", "quick"]);
    assert!(
        said.status.success(),
        "{}",
        String::from_utf8_lossy(&said.stderr)
    );
    assert!(String::from_utf8_lossy(&said.stderr).contains("queued quick of sleeper as job"));
    let out = server.wharf(&["cron", "run", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no cron entry `nope`"));
}
