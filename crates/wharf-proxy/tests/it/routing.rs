//! Route resolution and backend selection.

use std::collections::HashMap;

use wharf_proxy::{BackendSet, RoutingTable};

use crate::support::*;

fn table() -> RoutingTable {
    let r = |name: &str, host: Option<&str>, prefix: &str| {
        let mut r = route(name, host, prefix, BackendSet::default());
        r.process = name.to_owned();
        r
    };
    RoutingTable::new(vec![
        r("any-root", None, "/"),
        r("any-api", None, "/api"),
        r("shop-root", Some("shop.example.com"), "/"),
        r("shop-api", Some("Shop.Example.com"), "/api/"),
        r("shop-api-v2", Some("shop.example.com"), "/api/v2"),
        r("blog", Some("blog.example.com:8080"), ""),
    ])
}

fn check(table: &RoutingTable, host: Option<&str>, path: &str, expected: Option<&str>) {
    let got = table.resolve(host, path).map(|r| r.process.as_str());
    assert_eq!(got, expected, "host={host:?} path={path:?}");
}

#[test]
fn resolves_by_host_then_longest_prefix() {
    let t = table();
    for (host, path, want) in [
        (Some("shop.example.com"), "/", "shop-root"),
        (Some("shop.example.com"), "/cart", "shop-root"),
        (Some("SHOP.example.COM:443"), "/api", "shop-api"),
        (Some("shop.example.com"), "/api/x", "shop-api"),
        (Some("shop.example.com"), "/apix", "shop-root"),
        (Some("shop.example.com"), "/api/v2", "shop-api-v2"),
        (
            Some("shop.example.com"),
            "/api/v2/users?id=1",
            "shop-api-v2",
        ),
        (Some("shop.example.com"), "/api/v20", "shop-api"),
        (Some("shop.example.com."), "/api", "shop-api"),
        (Some("blog.example.com"), "/anything", "blog"),
        (Some("other.example.com"), "/api/x", "any-api"),
        (Some("other.example.com"), "/apix", "any-root"),
        (None, "/", "any-root"),
        (None, "/api", "any-api"),
        (Some("127.0.0.1:8080"), "/", "any-root"),
        (Some("[::1]:8080"), "/api", "any-api"),
    ] {
        check(&t, host, path, Some(want));
    }
}

#[test]
fn no_hostless_route_means_no_match() {
    let t = RoutingTable::new(vec![route(
        "a",
        Some("a.test"),
        "/app",
        BackendSet::default(),
    )]);
    check(&t, Some("a.test"), "/", None);
    check(&t, Some("a.test"), "/application", None);
    check(&t, Some("b.test"), "/app", None);
    check(&t, None, "/app", None);
    check(&t, Some("a.test"), "/app/x", Some("web"));
    check(&RoutingTable::default(), Some("x"), "/", None);
}

#[test]
fn routes_sorted_most_specific_first() {
    let t = table();
    let order: Vec<_> = t.routes().iter().map(|r| r.process.as_str()).collect();
    assert_eq!(
        order,
        [
            "shop-api-v2",
            "shop-api",
            "shop-root",
            "blog",
            "any-api",
            "any-root"
        ]
    );
    assert_eq!(
        t.routes()[1].host.as_deref(),
        Some("shop.example.com"),
        "hosts are normalized"
    );
}

#[tokio::test]
async fn weighted_pick_value_type() {
    use wharf_proxy::WeightedPick;
    let mut registry = prometheus_client::registry::Registry::default();
    let proxy = wharf_proxy::Proxy::new(test_config(), &mut registry);
    let a = proxy.backend("a", "127.0.0.1:1".parse().unwrap(), "app", 1);
    let b = proxy.backend("b", "127.0.0.1:2".parse().unwrap(), "app", 2);
    let set = groups(vec![
        (1, 0, vec![a.clone()]),
        (2, 100, vec![b.clone()]),
        (3, 50, vec![]),
    ]);
    let w = WeightedPick::new(&set);
    assert_eq!(w.total(), 100, "weight-0 and empty groups take nothing");
    let picks: HashMap<usize, usize> = (0..1000u32).fold(HashMap::new(), |mut m, r| {
        *m.entry(w.pick(r).unwrap()).or_default() += 1;
        m
    });
    assert_eq!(picks, HashMap::from([(1, 1000)]));
    assert_eq!(
        WeightedPick::new(&groups(vec![(1, 0, vec![a])])).pick(0),
        None
    );
}
