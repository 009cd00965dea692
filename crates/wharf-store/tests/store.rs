//! Integration tests of the store on a real SQLite file.

#![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

use wharf_store::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("wharf.db")).unwrap();
    (dir, store)
}

#[test]
fn releases_are_numbered_per_app() {
    let (_d, s) = store();
    let a = s.upsert_app("a", "/src/a").unwrap();
    let b = s.upsert_app("b", "/src/b").unwrap();
    assert_eq!(s.create_release(a.id, None, "{}", None).unwrap().number, 1);
    assert_eq!(
        s.create_release(a.id, Some("abc"), "{}", Some("h1"))
            .unwrap()
            .number,
        2
    );
    assert_eq!(s.create_release(b.id, None, "{}", None).unwrap().number, 1);
    let numbers: Vec<i64> = s.releases(a.id).unwrap().iter().map(|r| r.number).collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(s.release(&a, 2).unwrap().revision.as_deref(), Some("abc"));
    assert!(matches!(
        s.release(&a, 9),
        Err(StoreError::NoSuchRelease { number: 9, .. })
    ));
}

#[test]
fn one_deploy_at_a_time_per_app() {
    let (_d, s) = store();
    let a = s.upsert_app("a", "/src/a").unwrap();
    let b = s.upsert_app("b", "/src/b").unwrap();
    let d1 = s.begin_deploy(&a, DeployKind::Deploy, None, None).unwrap();
    s.transition(d1.id, "starting", None).unwrap();
    let err = s
        .begin_deploy(&a, DeployKind::Rollback, None, Some(1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "a deploy of a is already running (deploy {}, now starting); wait for it to finish",
            d1.id
        )
    );
    // Another app is not blocked.
    s.begin_deploy(&b, DeployKind::Deploy, None, None).unwrap();
    s.finish_deploy(d1.id, DeployOutcome::Failed, Some("boom"))
        .unwrap();
    s.begin_deploy(&a, DeployKind::Deploy, None, None).unwrap();
}

#[test]
fn switch_moves_the_serving_release_with_the_transition() {
    let (dir, s) = store();
    let a = s.upsert_app("a", "/src/a").unwrap();
    let r = s.create_release(a.id, None, "{}", None).unwrap();
    let d = s
        .begin_deploy(&a, DeployKind::Deploy, None, Some(r.number))
        .unwrap();
    s.transition(d.id, "starting", Some("2 instances")).unwrap();
    s.switch(d.id, a.id, r.number).unwrap();
    drop(s);
    // Reopen: what was committed is there, as after a crash.
    let s = Store::open(&dir.path().join("wharf.db")).unwrap();
    assert_eq!(s.app("a").unwrap().current_release, Some(1));
    let states: Vec<String> = s
        .transitions(d.id)
        .unwrap()
        .into_iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(states, ["pending", "starting", "switched"]);
    assert_eq!(s.unfinished_deploys().unwrap().len(), 1);
    s.finish_deploy(d.id, DeployOutcome::Succeeded, None)
        .unwrap();
    assert!(s.unfinished_deploys().unwrap().is_empty());
    let d = s.deploy(d.id).unwrap().unwrap();
    assert_eq!(d.outcome, Some(DeployOutcome::Succeeded));
    assert_eq!(d.state, "succeeded");
}

#[test]
fn instances_and_events() {
    let (_d, s) = store();
    let a = s.upsert_app("a", "/src/a").unwrap();
    let new = NewInstance {
        id: "a-r1-web-1",
        app_id: a.id,
        release: 1,
        process: "web",
        idx: 1,
        port: 4000,
    };
    s.insert_instance(&new).unwrap();
    s.set_instance_pid("a-r1-web-1", Some(42)).unwrap();
    s.set_instance_state("a-r1-web-1", InstanceState::Healthy)
        .unwrap();
    let live = s.live_instances(Some(a.id)).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].pid, live[0].state),
        (Some(42), InstanceState::Healthy)
    );
    s.set_instance_state("a-r1-web-1", InstanceState::Stopped)
        .unwrap();
    assert!(s.live_instances(None).unwrap().is_empty());

    for i in 0..5 {
        s.add_event(Some(a.id), None, EventLevel::Info, &format!("e{i}"))
            .unwrap();
    }
    let msgs: Vec<String> = s
        .events(Some(a.id), 3)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(msgs, ["e2", "e3", "e4"]);
}

#[test]
fn schema_version_is_latest() {
    let (_d, s) = store();
    assert_eq!(s.schema_version().unwrap(), 9);
}

#[test]
fn canary_progress_and_release_metrics() {
    let (_d, s) = store();
    let a = s.upsert_app("a", "/src/a").unwrap();
    let d = s
        .begin_deploy(&a, DeployKind::Deploy, None, Some(2))
        .unwrap();
    assert_eq!((d.strategy.as_str(), d.weight), ("blue-green", None));
    s.set_deploy_strategy(d.id, "canary").unwrap();
    s.set_weight(d.id, "canary", 10, "step 1 of 2: 10%")
        .unwrap();
    s.set_verdict(d.id, r#"{"verdict":"continue"}"#).unwrap();
    let d = s.deploy(d.id).unwrap().unwrap();
    assert_eq!(
        (d.strategy.as_str(), d.weight, d.state.as_str()),
        ("canary", Some(10), "canary")
    );
    assert_eq!(d.verdict.as_deref(), Some(r#"{"verdict":"continue"}"#));

    let bucket = |ms, requests, errors| ReleaseMetricsRow {
        release: 2,
        bucket_ms: ms,
        requests,
        errors,
        p50_ms: Some(1.0),
        p99_ms: Some(9.0),
    };
    s.add_release_metrics(a.id, &bucket(10_000, 100, 1))
        .unwrap();
    s.add_release_metrics(a.id, &bucket(10_000, 50, 2)).unwrap();
    s.add_release_metrics(a.id, &bucket(20_000, 10, 0)).unwrap();
    let rows = s.release_metrics(a.id, 2, 0).unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.bucket_ms, r.requests, r.errors))
            .collect::<Vec<_>>(),
        [(10_000, 150, 3), (20_000, 10, 0)]
    );
    assert!(s.release_metrics(a.id, 1, 0).unwrap().is_empty());
}

#[test]
fn remove_app_forgets_everything_of_that_app_only() {
    let (_d, s) = store();
    let a = s.upsert_app("a", "/src/a").unwrap();
    let b = s.upsert_app("b", "/src/b").unwrap();
    for app in [&a, &b] {
        let r = s.create_release(app.id, None, "{}", Some("h")).unwrap();
        let d = s
            .begin_deploy(app, DeployKind::Deploy, None, Some(r.number))
            .unwrap();
        s.insert_instance(&NewInstance {
            id: &format!("{}-r1-web-1", app.name),
            app_id: app.id,
            release: 1,
            process: "web",
            idx: 1,
            port: 4000,
        })
        .unwrap();
        s.switch(d.id, app.id, r.number).unwrap();
        s.finish_deploy(d.id, DeployOutcome::Succeeded, None)
            .unwrap();
        s.add_event(Some(app.id), Some(d.id), EventLevel::Info, "deployed")
            .unwrap();
        let bucket = ReleaseMetricsRow {
            release: 1,
            bucket_ms: 0,
            requests: 10,
            errors: 1,
            p50_ms: Some(1.0),
            p99_ms: Some(2.0),
        };
        s.add_release_metrics(app.id, &bucket).unwrap();
    }
    assert_eq!(
        s.release(&a, 1).unwrap().source_hash.as_deref(),
        Some("h"),
        "the source hash is kept with the release"
    );
    s.remove_app(a.id).unwrap();
    assert!(matches!(s.app("a"), Err(StoreError::NoSuchApp(_))));
    assert!(s.releases(a.id).unwrap().is_empty());
    assert!(s.instance("a-r1-web-1").unwrap().is_none());
    assert!(s.events(Some(a.id), 10).unwrap().is_empty());
    // b is untouched, and a's name can be used again.
    assert_eq!(s.app("b").unwrap().current_release, Some(1));
    assert_eq!(s.events(Some(b.id), 10).unwrap().len(), 1);
    assert!(s.instance("b-r1-web-1").unwrap().is_some());
    let again = s.upsert_app("a", "/src/a2").unwrap();
    assert_eq!(
        s.create_release(again.id, None, "{}", None).unwrap().number,
        1
    );
}

#[test]
fn maintenance_is_kept_with_the_app() {
    let (dir, s) = store();
    let a = s.upsert_app("a", "/src/a").unwrap();
    assert_eq!(a.maintenance, None);
    s.set_maintenance(a.id, Some("Back at 3pm")).unwrap();
    drop(s);
    let s = Store::open(&dir.path().join("wharf.db")).unwrap();
    assert_eq!(
        s.app("a").unwrap().maintenance.as_deref(),
        Some("Back at 3pm")
    );
    // A deploy's upsert keeps it.
    s.upsert_app("a", "/src/a2").unwrap();
    assert_eq!(
        s.app("a").unwrap().maintenance.as_deref(),
        Some("Back at 3pm")
    );
    s.set_maintenance(a.id, None).unwrap();
    assert_eq!(s.app("a").unwrap().maintenance, None);
}
