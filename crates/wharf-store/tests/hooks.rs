//! Webhook deliveries on a real SQLite file: recorded with their pipeline
//! job in one transaction, duplicates by key and by body refused without a
//! second job, a full queue recording nothing, refusals counted in one
//! row per app and forge. Time is injected, never slept.

#![allow(clippy::unwrap_used)] // a failure here is a test failure

use wharf_jobs::{JobKind, JobState, QueueLimits};
use wharf_store::*;

const T0: i64 = 1_700_000_000_000;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("wharf.db")).unwrap();
    (dir, store)
}

fn push<'a>(key: &'a str, body: &'a str) -> NewDelivery<'a> {
    NewDelivery {
        app: "shop",
        forge: "github",
        delivery_key: key,
        body_sha256: body,
        event: "push",
        ref_name: Some("refs/heads/main"),
        commit: Some("0123456789abcdef0123456789abcdef01234567"),
        repo: Some("acme/shop"),
        outcome: HookOutcome::Queued,
        detail: None,
    }
}

const PIPELINE: &str = r#"{"kind":"pipeline","commit":"0123456789abcdef0123456789abcdef01234567"}"#;

fn pipeline() -> NewJob<'static> {
    NewJob::new("shop", JobKind::Pipeline, PIPELINE)
}

fn recorded(outcome: DeliveryOutcome) -> DeliveryRow {
    match outcome {
        DeliveryOutcome::Recorded { delivery, .. } => *delivery,
        other => panic!("expected recorded, got {other:?}"),
    }
}

fn duplicate_of(outcome: DeliveryOutcome) -> DeliveryRow {
    match outcome {
        DeliveryOutcome::Duplicate { first } => *first,
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

#[test]
fn a_push_is_recorded_with_its_job_in_one_go() {
    let (_d, s) = store();
    let job = pipeline();
    let row = recorded(
        s.record_delivery(
            &push("guid-1", "aa"),
            Some((&job, QueueLimits::default())),
            T0,
        )
        .unwrap(),
    );
    assert_eq!(row.outcome, HookOutcome::Queued);
    assert_eq!(row.received_ms, T0);
    assert_eq!(row.ref_name.as_deref(), Some("refs/heads/main"));
    let job_id = row.job_id.expect("the delivery names its job");
    let job = s.job(job_id).unwrap().unwrap();
    assert_eq!(
        (job.kind, job.state, job.args.as_str()),
        (JobKind::Pipeline, JobState::Queued, PIPELINE)
    );
    assert_eq!(s.deliveries("shop", 10).unwrap(), vec![row]);
    assert!(s.deliveries("blog", 10).unwrap().is_empty());
}

#[test]
fn a_redelivery_and_a_resent_body_are_duplicates_and_queue_nothing() {
    let (_d, s) = store();
    let job = pipeline();
    let limits = QueueLimits::default();
    let first = recorded(
        s.record_delivery(&push("guid-1", "aa"), Some((&job, limits)), T0)
            .unwrap(),
    );

    // The forge's redelivery: same id (and body).
    let dup = duplicate_of(
        s.record_delivery(&push("guid-1", "aa"), Some((&job, limits)), T0 + 1)
            .unwrap(),
    );
    assert_eq!((dup.id, dup.job_id), (first.id, first.job_id));
    assert_eq!(dup.outcome, HookOutcome::Queued);
    assert_eq!((dup.repeats, dup.last_repeat_ms), (1, Some(T0 + 1)));

    // A captured body re-sent under a new id.
    let dup = duplicate_of(
        s.record_delivery(&push("guid-forged", "aa"), Some((&job, limits)), T0 + 2)
            .unwrap(),
    );
    assert_eq!((dup.id, dup.repeats), (first.id, 2));

    // The same id with another body (a forged id reuse) is a duplicate too.
    let dup = duplicate_of(
        s.record_delivery(&push("guid-1", "bb"), Some((&job, limits)), T0 + 3)
            .unwrap(),
    );
    assert_eq!(dup.id, first.id);

    assert_eq!(s.jobs(Some("shop"), 10).unwrap().len(), 1, "one job only");
    assert_eq!(s.deliveries("shop", 10).unwrap().len(), 1);
}

#[test]
fn keys_are_per_app_and_forge() {
    let (_d, s) = store();
    let job = pipeline();
    let limits = QueueLimits::default();
    recorded(
        s.record_delivery(&push("guid-1", "aa"), Some((&job, limits)), T0)
            .unwrap(),
    );
    let other_forge = NewDelivery {
        forge: "gitea",
        ..push("guid-1", "aa")
    };
    recorded(s.record_delivery(&other_forge, None, T0).unwrap());
    let blog_job = NewJob::new("blog", JobKind::Pipeline, PIPELINE);
    let other_app = NewDelivery {
        app: "blog",
        ..push("guid-1", "aa")
    };
    recorded(
        s.record_delivery(&other_app, Some((&blog_job, limits)), T0)
            .unwrap(),
    );
    assert_eq!(s.jobs(None, 10).unwrap().len(), 2);
}

#[test]
fn ignored_deliveries_are_recorded_without_a_job() {
    let (_d, s) = store();
    let cases = [
        (HookOutcome::Ping, "ping", None, "k1", "b1"),
        (
            HookOutcome::IgnoredBranch,
            "push",
            Some("refs/heads/feature"),
            "k2",
            "b2",
        ),
        (HookOutcome::IgnoredEvent, "issues", None, "k3", "b3"),
        (
            HookOutcome::IgnoredDeleted,
            "push",
            Some("refs/heads/main"),
            "k4",
            "b4",
        ),
        (HookOutcome::Invalid, "push", None, "k5", "b5"),
    ];
    for (i, (outcome, event, ref_name, key, body)) in cases.into_iter().enumerate() {
        let new = NewDelivery {
            event,
            ref_name,
            commit: None,
            outcome,
            detail: Some("why"),
            ..push(key, body)
        };
        let row = recorded(s.record_delivery(&new, None, T0 + i as i64).unwrap());
        assert_eq!((row.outcome, row.job_id), (outcome, None));
        assert_eq!(row.detail.as_deref(), Some("why"));
    }
    assert!(s.jobs(None, 10).unwrap().is_empty());
    // Newest first.
    let listed: Vec<HookOutcome> = s
        .deliveries("shop", 10)
        .unwrap()
        .into_iter()
        .map(|d| d.outcome)
        .collect();
    assert_eq!(
        listed,
        [
            HookOutcome::Invalid,
            HookOutcome::IgnoredDeleted,
            HookOutcome::IgnoredEvent,
            HookOutcome::IgnoredBranch,
            HookOutcome::Ping
        ]
    );
    assert_eq!(s.deliveries("shop", 2).unwrap().len(), 2);
}

#[test]
fn a_full_queue_records_nothing_so_a_retry_is_not_a_duplicate() {
    let (_d, s) = store();
    let job = pipeline();
    let tight = QueueLimits {
        per_app: 1,
        total: 10,
    };
    // The app's one waiting place is taken by a job a pipeline does not
    // replace.
    let run = NewJob::new("shop", JobKind::Run, "{}");
    assert!(matches!(
        s.enqueue(&run, tight, T0).unwrap(),
        Enqueued::Queued { .. }
    ));
    let full = s
        .record_delivery(&push("guid-1", "aa"), Some((&job, tight)), T0 + 1)
        .unwrap();
    assert!(matches!(full, DeliveryOutcome::Full(_)), "{full:?}");
    assert!(s.deliveries("shop", 10).unwrap().is_empty());
    assert_eq!(s.jobs(Some("shop"), 10).unwrap().len(), 1);

    // Room again: the retry of guid-1 goes in.
    let roomy = QueueLimits::default();
    let row = recorded(
        s.record_delivery(&push("guid-1", "aa"), Some((&job, roomy)), T0 + 2)
            .unwrap(),
    );
    assert!(row.job_id.is_some());
}

#[test]
fn a_newer_push_s_job_follows_the_queue_policy() {
    let (_d, s) = store();
    let job = pipeline();
    let limits = QueueLimits::default();
    let first = recorded(
        s.record_delivery(&push("guid-1", "aa"), Some((&job, limits)), T0)
            .unwrap(),
    );
    // Whatever the policy decides for the second pipeline (today: it
    // replaces the waiting one), it is decided in the delivery's
    // transaction and reported with it.
    match s
        .record_delivery(&push("guid-2", "bb"), Some((&job, limits)), T0 + 1)
        .unwrap()
    {
        DeliveryOutcome::Recorded {
            delivery,
            superseded,
            ..
        } => {
            assert_ne!(delivery.job_id, first.job_id);
            for old in superseded {
                assert_eq!(s.job(old).unwrap().unwrap().state, JobState::Superseded);
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn enqueue_alone_still_dedups_and_commits() {
    let (_d, s) = store();
    let new = pipeline().with_dedup_key("delivery-1");
    let first = match s.enqueue(&new, QueueLimits::default(), T0).unwrap() {
        Enqueued::Queued { job, .. } => job.id,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        s.enqueue(&new, QueueLimits::default(), T0 + 1).unwrap(),
        Enqueued::Duplicate { existing_id: first }
    );
    assert_eq!(s.jobs(None, 10).unwrap().len(), 1);
}

#[test]
fn refusals_are_counted_in_one_row_per_app_and_forge() {
    let (_d, s) = store();
    for i in 0..1000 {
        s.record_refusal("shop", "github", &format!("bad signature {i}"), T0 + i)
            .unwrap();
    }
    s.record_refusal("shop", "gitlab", "no secret", T0 + 5)
        .unwrap();
    let rows = s.refusals("shop").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].forge.as_str(),
            rows[0].count,
            rows[0].first_ms,
            rows[0].last_ms
        ),
        ("github", 1000, T0, T0 + 999)
    );
    assert_eq!(rows[0].last_reason, "bad signature 999");
    assert_eq!((rows[1].forge.as_str(), rows[1].count), ("gitlab", 1));
    assert!(s.refusals("blog").unwrap().is_empty());
    // Nothing of them is a delivery.
    assert!(s.deliveries("shop", 10).unwrap().is_empty());
}

#[test]
fn deliveries_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wharf.db");
    {
        let s = Store::open(&path).unwrap();
        recorded(s.record_delivery(&push("guid-1", "aa"), None, T0).unwrap());
    }
    let s = Store::open(&path).unwrap();
    duplicate_of(
        s.record_delivery(&push("guid-1", "aa"), None, T0 + 1)
            .unwrap(),
    );
}

#[test]
fn long_event_names_and_details_are_cut() {
    let (_d, s) = store();
    let long = "x".repeat(10_000);
    let new = NewDelivery {
        event: &long,
        detail: Some(&long),
        outcome: HookOutcome::IgnoredEvent,
        ..push("k", "b")
    };
    let row = recorded(s.record_delivery(&new, None, T0).unwrap());
    assert_eq!(row.event.len(), 100);
    assert_eq!(row.detail.map(|d| d.len()), Some(2000));
}
