//! `wharf certs [--json]`: every TLS host's certificate.

use anyhow::Result;
use wharf_server::client::Client;

use crate::cli::CertsArgs;
use crate::output;

pub async fn run(client: &Client, args: CertsArgs) -> Result<()> {
    let certs = client.certs().await?;
    if args.json {
        output::json(&certs);
        return Ok(());
    }
    if certs.is_empty() {
        output::note("no certificates yet: a route with `tls` gets one at its deploy");
        return Ok(());
    }
    let when = |secs: Option<i64>| {
        secs.and_then(|s| u64::try_from(s).ok())
            .map(|s| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
                )
                .to_string()
            })
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            let state = match (&c.last_error, c.ordering, c.not_after) {
                (_, true, _) => "ordering".to_owned(),
                (Some(e), false, _) => format!(
                    "retry at {}: {}",
                    when(c.next_attempt),
                    e.lines().next().unwrap_or_default()
                ),
                (None, false, Some(_)) => "ok".to_owned(),
                (None, false, None) => "none yet".to_owned(),
            };
            vec![
                c.host.clone(),
                c.source.clone(),
                c.issuer.clone().unwrap_or_else(|| "-".into()),
                when(c.not_after),
                state,
            ]
        })
        .collect();
    output::data(&output::table(
        &["HOST", "SOURCE", "ISSUER", "EXPIRES", "STATE"],
        &rows,
    ));
    Ok(())
}
