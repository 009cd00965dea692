//! `wharf status [--json]`.

use anyhow::Result;
use wharf_server::client::Client;

use crate::cli::AppArgs;
use crate::output;

pub async fn run(client: &Client, args: AppArgs) -> Result<()> {
    let mut status = client.status().await?;
    if let Some(app) = &args.app {
        status.apps.retain(|a| &a.name == app);
        if status.apps.is_empty() {
            return Err(crate::Exit::Usage(format!("no app named {app} on this server")).into());
        }
    }
    if args.json {
        output::json(&status);
        return Ok(());
    }
    let https = status
        .server
        .https
        .map(|a| format!(" · https {a}"))
        .unwrap_or_default();
    let mut out = format!(
        "server pid {} · proxy http://{}{https} · metrics http://{}/metrics · data {}",
        status.server.pid,
        status.server.proxy,
        status.server.admin,
        status.server.data_dir.display()
    );
    for app in &status.apps {
        let state = match (app.release, app.state.as_str(), &app.state_detail) {
            (Some(r), _, _) => format!("release {r} serving"),
            (None, "restoring", Some(d)) => d.clone(),
            (None, _, Some(d)) => format!("not serving: {}", d.lines().next().unwrap_or_default()),
            (None, _, None) => "not serving".to_owned(),
        };
        out.push_str(&format!("\n\n{}: {state}", app.name));
        match app.maintenance.as_deref() {
            None => {}
            Some("") => out.push_str(" · in maintenance (503)"),
            Some(m) => out.push_str(&format!(" · in maintenance (503: {m})")),
        }
        if let Some((id, kind, state)) = &app.deploying {
            out.push_str(&format!(" · {kind} {id} in progress ({state})"));
        }
        if let Some(d) = &app.last_deploy {
            let release = d
                .release
                .map_or_else(String::new, |r| format!(" of release {r}"));
            out.push_str(&format!(
                "\n  last {} {}{release}: {}",
                d.kind, d.id, d.outcome
            ));
            if let Some(e) = &d.error {
                out.push_str(&format!(" — {}", e.lines().next().unwrap_or_default()));
            }
        }
        if let Some(p) = &app.progressive {
            let wait = if p.waiting_for_promote {
                " · waiting for `wharf promote`"
            } else {
                ""
            };
            out.push_str(&format!(
                "\n  {} (deploy {}): step {} of {}, release {} at {}%{wait}",
                p.strategy, p.deploy, p.step, p.steps, p.candidate.release, p.candidate.weight
            ));
            if let Some(check) = &p.last_check {
                out.push_str(&format!("\n  last check: {check}"));
            }
        }
        for t in &app.traffic {
            let pct =
                |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}ms"));
            out.push_str(&format!(
                "\n  release {} ({}%): {} requests in 30s, errors {}, p50 {}, p99 {}",
                t.release,
                t.weight,
                t.requests,
                pct(t.error_rate),
                ms(t.p50_ms),
                ms(t.p99_ms)
            ));
        }
        for r in &app.routes {
            let groups: Vec<String> = r
                .groups
                .iter()
                .map(|(rel, w, n)| format!("release {rel} weight {w} ({n} healthy)"))
                .collect();
            out.push_str(&format!(
                "\n  route {}{} -> {}: {}",
                r.host.as_deref().unwrap_or("*"),
                r.path_prefix,
                r.process,
                groups.join(", ")
            ));
        }
        let rows: Vec<Vec<String>> = app
            .instances
            .iter()
            .map(|i| {
                vec![
                    i.id.clone(),
                    i.release.to_string(),
                    i.process.clone(),
                    i.state.clone(),
                    i.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                    format!("127.0.0.1:{}", i.port),
                    output::ago(i.started_ms),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out.push('\n');
            for line in output::table(
                &[
                    "INSTANCE", "RELEASE", "PROCESS", "STATE", "PID", "ADDRESS", "STARTED",
                ],
                &rows,
            )
            .lines()
            {
                out.push_str(&format!("\n  {line}"));
            }
        }
    }
    output::data(&out);
    Ok(())
}
