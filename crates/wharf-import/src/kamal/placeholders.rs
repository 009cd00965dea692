//! Hosts that were never filled in: the server address and the proxy host
//! `kamal init` (and `rails new`) write as examples, reserved example
//! domains, and proxy hosts computed by ERB the import cannot run. Such a
//! file deploys nowhere under Kamal either, so importing it is an error
//! rather than a `wharf.toml` routed at a host nobody reaches.

use crate::ImportError;
use crate::common::Warnings;
use crate::yaml::Node;

/// The first placeholder host of the file, as an error.
pub fn check(w: &Warnings, root: &Node) -> Result<(), ImportError> {
    if let Some(servers) = root.get("servers") {
        let mut lists: Vec<(String, &Node)> = Vec::new();
        match (servers.as_seq(), servers.as_map()) {
            (Some(_), _) => lists.push(("servers".into(), servers)),
            (_, Some(roles)) => {
                for r in roles {
                    let key = format!("servers.{}", r.key);
                    if let Some(proxy) = r.value.get("proxy") {
                        proxy_hosts(w, &format!("{key}.proxy"), proxy)?;
                    }
                    match r.value.get("hosts") {
                        Some(hosts) => lists.push((format!("{key}.hosts"), hosts)),
                        None => lists.push((key, &r.value)),
                    }
                }
            }
            _ => {}
        }
        for (key, list) in lists {
            for (i, host) in list.as_seq().unwrap_or_default().iter().enumerate() {
                if host.as_str() == Some("192.168.0.1") {
                    return Err(ImportError::Placeholder {
                        location: w.location(host.pos),
                        key: format!("{key}[{i}]"),
                        host: "192.168.0.1".into(),
                        why: "the example address `kamal init` writes, so this file was never set up to deploy anywhere",
                    });
                }
            }
        }
    }
    if let Some(proxy) = root.get("proxy") {
        proxy_hosts(w, "proxy", proxy)?;
    }
    Ok(())
}

fn proxy_hosts(w: &Warnings, key: &str, proxy: &Node) -> Result<(), ImportError> {
    let mut hosts: Vec<(String, &Node)> = Vec::new();
    if let Some(h) = proxy.get("host") {
        hosts.push((format!("{key}.host"), h));
    }
    for (i, h) in proxy
        .get("hosts")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        hosts.push((format!("{key}.hosts[{i}]"), h));
    }
    for (k, node) in hosts {
        let Some(text) = node.as_str() else { continue };
        for host in text.split(',').map(str::trim) {
            if let Some(why) = placeholder(host) {
                return Err(ImportError::Placeholder {
                    location: w.location(node.pos),
                    key: k,
                    host: host.to_owned(),
                    why,
                });
            }
        }
    }
    Ok(())
}

/// Why `host` is a placeholder rather than a host to route.
pub fn placeholder(host: &str) -> Option<&'static str> {
    if host.contains("<%") {
        return Some(
            "ERB that Kamal evaluates when it deploys and the import cannot, so the host to route is unknown",
        );
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let reserved = ["example.com", "example.net", "example.org"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || host.ends_with(".example")
        || host.ends_with(".invalid");
    reserved.then_some(
        "a reserved example domain (like the `app.example.com` that `kamal init` writes): no DNS points it at your server and no certificate can be issued for it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert!(placeholder("app.example.com").is_some());
        assert!(placeholder("example.org").is_some());
        assert!(placeholder("shop.example").is_some());
        assert!(placeholder("<%= ENV[\"APP_HOST\"] %>").is_some());
        assert!(placeholder("myexample.com").is_none());
        assert!(placeholder("shop.acme.test").is_none());
        assert!(placeholder("hey.com").is_none());
    }
}
