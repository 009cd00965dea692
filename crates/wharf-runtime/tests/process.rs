//! The `process` runtime against real child processes (`/bin/sh` scripts).

#![allow(clippy::unwrap_used)] // Test helpers: a failed step is a failed test.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::{Env, next_event, wait_file_contains, wait_line};
use wharf_runtime::{
    InstanceState, LogStream, RestartPolicy, Runtime, RuntimeError, RuntimeEvent, TaskSpec,
};

// ---------------------------------------------------------------- releases

#[tokio::test]
async fn prepare_release_copies_skips_and_keeps_modes() {
    let env = Env::new();
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::create_dir_all(src.join(".git")).unwrap();
    std::fs::create_dir_all(src.join("target/debug")).unwrap();
    std::fs::create_dir_all(src.join(".wharf")).unwrap();
    std::fs::create_dir_all(src.join("assets/target")).unwrap();
    std::fs::create_dir_all(src.join("vendor/dep/.git")).unwrap();
    std::fs::write(src.join("app.txt"), "v1").unwrap();
    std::fs::write(src.join(".git/HEAD"), "ref").unwrap();
    std::fs::write(src.join("target/debug/big"), "x").unwrap();
    std::fs::write(src.join(".wharf/state"), "x").unwrap();
    std::fs::write(src.join("assets/target/keep.txt"), "kept").unwrap();
    std::fs::write(src.join("vendor/dep/.git/HEAD"), "x").unwrap();
    common::write_script(&src.join("bin/run"), "echo hi");
    std::fs::write(src.join("secret"), "s").unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("app.txt", src.join("link")).unwrap();
    // A loop: must be copied as a link, not followed.
    std::os::unix::fs::symlink(".", src.join("loop")).unwrap();

    let dir = env
        .rt
        .prepare_release(&common::source("shop", 3, &src))
        .await
        .unwrap();
    assert_eq!(dir, env.rt.data_dir().join("apps/shop/releases/3"));
    assert_eq!(std::fs::read_to_string(dir.join("app.txt")).unwrap(), "v1");
    assert!(!dir.join(".git").exists());
    assert!(!dir.join("target").exists());
    assert!(!dir.join(".wharf").exists());
    assert!(!dir.join("vendor/dep/.git").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("assets/target/keep.txt")).unwrap(),
        "kept"
    );
    let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("bin/run"), 0o755);
    assert_eq!(mode("secret"), 0o600);
    assert_eq!(
        std::fs::read_link(dir.join("link")).unwrap(),
        std::path::Path::new("app.txt")
    );
    assert_eq!(
        std::fs::read_link(dir.join("loop")).unwrap(),
        std::path::Path::new(".")
    );
    // The copied script runs.
    let out = std::process::Command::new(dir.join("bin/run"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi\n");

    // A later edit of the source does not change the release.
    std::fs::write(src.join("app.txt"), "v2").unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("app.txt")).unwrap(), "v1");

    // Re-preparing replaces it, leaving no temporary directories.
    std::fs::write(dir.join("stale"), "from a crashed run").unwrap();
    let again = env
        .rt
        .prepare_release(&common::source("shop", 3, &src))
        .await
        .unwrap();
    assert_eq!(again, dir);
    assert_eq!(std::fs::read_to_string(dir.join("app.txt")).unwrap(), "v2");
    assert!(!dir.join("stale").exists());
    let names: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["3".to_owned()]);

    env.rt.remove_release("shop", 3).await.unwrap();
    assert!(!dir.exists());
    env.rt.remove_release("shop", 3).await.unwrap();
}

#[tokio::test]
async fn prepare_release_with_the_data_dir_inside_the_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.txt"), "x").unwrap();
    let rt = wharf_runtime::process::ProcessRuntime::new(
        wharf_runtime::process::ProcessRuntimeOptions {
            data_dir: dir.path().join("state"),
            log_max_bytes: 1 << 20,
        },
    )
    .unwrap();
    let release = rt
        .prepare_release(&common::source("app", 1, dir.path()))
        .await
        .unwrap();
    assert!(release.join("app.txt").exists());
    assert!(!release.join("state").exists());
}

#[tokio::test]
async fn prepare_release_rejects_bad_input() {
    let env = Env::new();
    // Commands may be compound.
    let compound = env
        .rt
        .run_task(task(
            &env,
            "migrate",
            "echo one && echo two; exit 4",
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert_eq!(compound.code, Some(4));
    assert_eq!(compound.tail, vec!["one", "two"]);

    let missing = env.dir.path().join("nope");
    let err = env
        .rt
        .prepare_release(&common::source("shop", 1, &missing))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::NotADirectory { .. }), "{err}");
    let file = env.dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(
        env.rt
            .prepare_release(&common::source("shop", 1, &file))
            .await,
        Err(RuntimeError::NotADirectory { .. })
    ));
    for bad in ["", "..", "a/b"] {
        let err = env
            .rt
            .prepare_release(&common::source(bad, 1, env.dir.path()))
            .await
            .unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidName { .. }), "{err}");
    }
}

// ---------------------------------------------------------------- instances

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_gets_port_and_env_and_its_output_is_logged() {
    let env = Env::new();
    let work = env.workdir(&[(
        "show.sh",
        r#"echo "port=$PORT app=$WHARF_APP rel=$WHARF_RELEASE proc=$WHARF_PROCESS inst=$WHARF_INSTANCE data=$WHARF_DATA_DIR"
echo "foo=$FOO manifest=${CARGO_MANIFEST_DIR:-unset} path=${PATH:+set}"
echo "to stderr" >&2
exec sleep 300"#,
    )]);
    let mut spec = env.spec("shop", "web", 0, "./show.sh", &work);
    spec.env = BTreeMap::from([("FOO".to_owned(), "bar baz".to_owned())]);
    spec.port = 41234;
    let mut events = env.rt.events();
    let mut lines = env.rt.log_lines();
    let pid = env.rt.start(spec.clone()).await.unwrap();
    assert_eq!(env.rt.state(&spec.id), InstanceState::Running { pid });
    assert_eq!(env.rt.instances(), vec![spec.id.clone()]);
    match next_event(&mut events, &spec.id).await {
        RuntimeEvent::Started {
            pid: p, start_time, ..
        } => {
            assert_eq!(p, pid);
            assert!(start_time > 0);
        }
        other => panic!("{other:?}"),
    }

    let data = env.rt.data_dir().display().to_string();
    // stdout and stderr are separate pipes: their relative order is not fixed.
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(wait_line(&mut lines, &spec.id, |_| true).await);
    }
    let find = |prefix: &str| {
        got.iter()
            .find(|l| l.line.starts_with(prefix))
            .unwrap_or_else(|| panic!("{got:?}"))
    };
    let first = find("port=");
    assert_eq!(
        first.line,
        format!("port=41234 app=shop rel=1 proc=web inst=shop-r1-web-0 data={data}")
    );
    assert_eq!(
        (first.app.as_str(), first.release, first.process.as_str()),
        ("shop", 1, "web")
    );
    assert_eq!(first.stream, LogStream::Stdout);
    // Nothing of the server's env leaks in but PATH & co.
    assert_eq!(find("foo=").line, "foo=bar baz manifest=unset path=set");
    let err = find("to ");
    assert_eq!(err.stream, LogStream::Stderr);

    let file = env.log_path("shop", "shop-r1-web-0.log");
    let text = wait_file_contains(&file, "to stderr").await;
    let stored: Vec<&str> = text.lines().collect();
    assert_eq!(stored.len(), 3, "{text}");
    assert!(
        stored.iter().any(|l| l.ends_with(" stderr to stderr")),
        "{text}"
    );
    let port_line = stored
        .iter()
        .find(|l| l.contains(" stdout port=41234 "))
        .unwrap();
    let (ms, _) = port_line.split_once(' ').unwrap();
    assert!(ms.parse::<u64>().unwrap() > 1_600_000_000_000);

    // Starting the same id twice is refused.
    let again = env.rt.start(spec.clone()).await.unwrap_err();
    assert!(
        matches!(again, RuntimeError::AlreadyRunning { .. }),
        "{again}"
    );

    env.rt.stop(&spec.id).await.unwrap();
    assert_eq!(
        next_event(&mut events, &spec.id).await,
        RuntimeEvent::Stopped {
            id: spec.id.clone(),
            killed: false
        }
    );
    assert_eq!(env.rt.state(&spec.id), InstanceState::Stopped);
    assert!(env.rt.instances().is_empty());
    // Gone, group included.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid));
    // Unknown ids are fine.
    env.rt.stop("nope").await.unwrap();
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[tokio::test]
async fn start_errors_name_what_failed() {
    let env = Env::new();
    let spec = env.spec("shop", "web", 0, "sleep 1", &env.dir.path().join("missing"));
    let err = env.rt.start(spec.clone()).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("shop-r1-web-0"), "{err}");
    assert_eq!(env.rt.state(&spec.id), InstanceState::Stopped);
    assert!(env.rt.instances().is_empty());
    let mut bad = spec;
    bad.id = "../x".into();
    assert!(matches!(
        env.rt.start(bad).await,
        Err(RuntimeError::InvalidName { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_is_restarted_with_backoff() {
    let env = Env::new();
    let work = env.workdir(&[("crash.sh", "echo up; exit 3")]);
    let spec = env.spec("shop", "web", 0, "./crash.sh", &work);
    let mut events = env.rt.events();
    env.rt.start(spec.clone()).await.unwrap();
    let id = spec.id.clone();
    let mut last_exit = None;
    let mut pids = Vec::new();
    for expected in [100u64, 200, 400, 800] {
        match next_event(&mut events, &id).await {
            RuntimeEvent::Started { pid, .. } => {
                if let Some(at) = last_exit {
                    // Restarted no earlier than the previous backoff.
                    let waited = Instant::now().duration_since(at);
                    assert!(
                        waited >= Duration::from_millis(expected / 2 - 10),
                        "{waited:?}"
                    );
                }
                pids.push(pid);
            }
            other => panic!("{other:?}"),
        }
        let exited = next_event(&mut events, &id).await;
        assert_eq!(
            exited,
            RuntimeEvent::Exited {
                id: id.clone(),
                code: Some(3),
                signal: None,
                restart_in: Some(Duration::from_millis(expected))
            }
        );
        last_exit = Some(Instant::now());
        assert!(matches!(
            env.rt.state(&id),
            InstanceState::Restarting { .. } | InstanceState::Running { .. }
        ));
    }
    pids.dedup();
    assert_eq!(pids.len(), 4);

    env.rt.stop(&id).await.unwrap();
    // Possibly a start that raced the stop, then the stop; never more starts after.
    loop {
        match next_event(&mut events, &id).await {
            RuntimeEvent::Stopped { killed, .. } => {
                assert!(!killed);
                break;
            }
            RuntimeEvent::Started { .. } | RuntimeEvent::Exited { .. } => {}
        }
    }
    assert_eq!(env.rt.state(&id), InstanceState::Stopped);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(events.try_recv().is_err(), "events after stop");
    let text = std::fs::read_to_string(env.log_path("shop", "shop-r1-web-0.log")).unwrap();
    assert!(
        text.lines().filter(|l| l.ends_with("stdout up")).count() >= 4,
        "{text}"
    );
}

/// Waits until `id` is no longer supervised.
async fn wait_unsupervised(env: &Env, id: &str) {
    let deadline = Instant::now() + common::WAIT;
    while env.rt.instances().iter().any(|i| i == id) {
        assert!(Instant::now() < deadline, "{id} still supervised");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_never_ends_stopped_after_the_first_exit() {
    let env = Env::new();
    let work = env.workdir(&[("crash.sh", "echo up; exit 3")]);
    let mut spec = env.spec("shop", "web", 0, "./crash.sh", &work);
    spec.restart = RestartPolicy::Never;
    let id = spec.id.clone();
    let mut events = env.rt.events();
    env.rt.start(spec).await.unwrap();
    assert!(matches!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Started { .. }
    ));
    assert_eq!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Exited {
            id: id.clone(),
            code: Some(3),
            signal: None,
            restart_in: None
        }
    );
    assert_eq!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Stopped {
            id: id.clone(),
            killed: false
        }
    );
    assert_eq!(env.rt.state(&id), InstanceState::Stopped);
    wait_unsupervised(&env, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(events.try_recv().is_err(), "events after the end");
    // Stopping an ended instance is fine, and it can be started again.
    env.rt.stop(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_failure_restarts_failures_only() {
    let env = Env::new();
    // Fails twice (counting runs in a file), then exits 0.
    let work = env.workdir(&[(
        "flaky.sh",
        "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; \
         if [ $n -lt 3 ]; then exit 5; fi; exit 0",
    )]);
    let mut spec = env.spec("shop", "worker", 0, "./flaky.sh", &work);
    spec.restart = RestartPolicy::OnFailure;
    let id = spec.id.clone();
    let mut events = env.rt.events();
    env.rt.start(spec).await.unwrap();
    let mut exits = Vec::new();
    loop {
        match next_event(&mut events, &id).await {
            RuntimeEvent::Started { .. } => {}
            RuntimeEvent::Exited {
                code, restart_in, ..
            } => exits.push((code, restart_in)),
            RuntimeEvent::Stopped { killed, .. } => {
                assert!(!killed);
                break;
            }
        }
    }
    assert_eq!(
        exits,
        vec![
            (Some(5), Some(Duration::from_millis(100))),
            (Some(5), Some(Duration::from_millis(200))),
            (Some(0), None),
        ]
    );
    assert_eq!(env.rt.state(&id), InstanceState::Stopped);
    wait_unsupervised(&env, &id).await;

    // A kill by signal is a failure: restarted.
    let mut spec = env.spec("shop", "worker", 1, "kill -9 $$", &work);
    spec.restart = RestartPolicy::OnFailure;
    let id = spec.id.clone();
    env.rt.start(spec).await.unwrap();
    loop {
        if let RuntimeEvent::Exited {
            signal, restart_in, ..
        } = next_event(&mut events, &id).await
        {
            assert_eq!(signal, Some(9));
            assert_eq!(restart_in, Some(Duration::from_millis(100)));
            break;
        }
    }
    env.rt.stop(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_trying_when_the_command_cannot_start() {
    let env = Env::new();
    let work = env.dir.path().join("vanishing");
    std::fs::create_dir_all(&work).unwrap();
    // Exits after removing its own work dir: restarts cannot spawn any more.
    let spec = env.spec("shop", "web", 0, r#"sh -c 'rm -rf "$PWD"; exit 1'"#, &work);
    let mut events = env.rt.events();
    env.rt.start(spec.clone()).await.unwrap();
    let id = spec.id.clone();
    assert!(matches!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Started { .. }
    ));
    let exited = |code, ms| RuntimeEvent::Exited {
        id: id.clone(),
        code,
        signal: None,
        restart_in: Some(Duration::from_millis(ms)),
    };
    assert_eq!(next_event(&mut events, &id).await, exited(Some(1), 100));
    assert_eq!(next_event(&mut events, &id).await, exited(None, 200));
    assert_eq!(next_event(&mut events, &id).await, exited(None, 400));
    assert!(matches!(env.rt.state(&id), InstanceState::Restarting { restarts } if restarts >= 3));
    env.rt.stop(&id).await.unwrap();
    assert_eq!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Stopped {
            id: id.clone(),
            killed: false
        }
    );
    assert_eq!(env.rt.state(&id), InstanceState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_sigterm_then_sigkill() {
    let env = Env::new();
    let work = env.workdir(&[
        (
            "polite.sh",
            "trap 'echo got TERM; exit 0' TERM\necho ready\nwhile :; do sleep 0.05; done",
        ),
        (
            "stubborn.sh",
            "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done",
        ),
    ]);
    let mut polite = env.spec("shop", "polite", 0, "./polite.sh", &work);
    polite.stop_timeout = Duration::from_secs(10);
    let mut stubborn = env.spec("shop", "stubborn", 0, "./stubborn.sh", &work);
    stubborn.stop_timeout = Duration::from_millis(700);
    let mut events = env.rt.events();
    // next_event skips other instances' events: one receiver per instance.
    let mut stubborn_events = env.rt.events();
    let mut lines = env.rt.log_lines();
    let mut stubborn_lines = env.rt.log_lines();
    env.rt.start(polite.clone()).await.unwrap();
    env.rt.start(stubborn.clone()).await.unwrap();
    wait_line(&mut lines, &polite.id, |l| l.line == "ready").await;
    wait_line(&mut stubborn_lines, &stubborn.id, |l| l.line == "ready").await;

    let t = Instant::now();
    env.rt.stop(&polite.id).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(matches!(
        next_event(&mut events, &polite.id).await,
        RuntimeEvent::Started { .. }
    ));
    // Not an "exit": a stop.
    assert_eq!(
        next_event(&mut events, &polite.id).await,
        RuntimeEvent::Stopped {
            id: polite.id.clone(),
            killed: false
        }
    );
    wait_file_contains(&env.log_path("shop", "shop-r1-polite-0.log"), "got TERM").await;

    let t = Instant::now();
    env.rt.stop(&stubborn.id).await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(matches!(
        next_event(&mut stubborn_events, &stubborn.id).await,
        RuntimeEvent::Started { .. }
    ));
    assert_eq!(
        next_event(&mut stubborn_events, &stubborn.id).await,
        RuntimeEvent::Stopped {
            id: stubborn.id.clone(),
            killed: true
        }
    );
    assert!(env.rt.instances().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_run_in_parallel_and_shutdown_stops_all() {
    let env = Env::new();
    let work = env.workdir(&[(
        "stubborn.sh",
        "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done",
    )]);
    let mut lines = env.rt.log_lines();
    let mut specs = Vec::new();
    for i in 0..4 {
        let mut spec = env.spec("shop", "web", i, "./stubborn.sh", &work);
        spec.stop_timeout = Duration::from_millis(1000);
        env.rt.start(spec.clone()).await.unwrap();
        specs.push(spec);
    }
    let mut ready = std::collections::HashSet::new();
    while ready.len() < specs.len() {
        let line = wait_line(&mut lines, "", |_| true).await;
        ready.insert(line.instance);
    }
    let t = Instant::now();
    let (a, b) = tokio::join!(env.rt.stop(&specs[0].id), env.rt.stop(&specs[1].id));
    a.unwrap();
    b.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(1900),
        "stops ran one after the other: {:?}",
        t.elapsed()
    );
    assert_eq!(env.rt.instances().len(), 2);
    let t = Instant::now();
    env.rt.shutdown().await;
    assert!(
        t.elapsed() < Duration::from_millis(1900),
        "shutdown ran stops one after the other: {:?}",
        t.elapsed()
    );
    assert!(env.rt.instances().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_rotate_at_the_size_cap() {
    let env = Env::with_log_cap(1000);
    let work = env.workdir(&[(
        "chatty.sh",
        "i=0\nwhile [ $i -lt 100 ]; do echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); done\necho done\nexec sleep 300",
    )]);
    let spec = env.spec("shop", "web", 0, "./chatty.sh", &work);
    env.rt.start(spec.clone()).await.unwrap();
    let current = env.log_path("shop", "shop-r1-web-0.log");
    let text = wait_file_contains(&current, "stdout done").await;
    let rotated = env.log_path("shop", "shop-r1-web-0.log.1");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(text.len() <= 1000, "{}", text.len());
    assert!(old.len() <= 1000 && old.len() > 900, "{}", old.len());
    assert!(!old.contains("line 0 "), "the first rotation was replaced");
    // Whole lines on both sides of the rotation.
    assert!(old.ends_with('\n') && text.ends_with('\n'));
    // tail_logs reads across the current file and `.1`.
    let tail = env.rt.tail_logs("shop", None, 1000).await.unwrap();
    assert_eq!(tail.len(), old.lines().count() + text.lines().count());
    assert_eq!(tail.last().unwrap().line, "done");
    let nums: Vec<u32> = tail
        .iter()
        .filter_map(|l| {
            l.line
                .strip_prefix("line ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    env.rt.shutdown().await;
}

// ---------------------------------------------------------------- tasks

fn task(env: &Env, name: &str, command: &str, timeout: Duration) -> TaskSpec {
    TaskSpec {
        app: "shop".into(),
        release: 3,
        name: name.into(),
        command: command.into(),
        workdir: env.workdir(&[]),
        env: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
        volumes: Vec::new(),
        timeout,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_task_reports_exit_codes_and_tail() {
    let env = Env::new();
    let mut lines = env.rt.log_lines();
    let ok = env
        .rt
        .run_task(task(
            &env,
            "release",
            r#"sh -c 'echo "$GREETING port=${PORT:-none} inst=$WHARF_INSTANCE"; i=1; while [ $i -le 60 ]; do echo line $i; i=$((i+1)); done'"#,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert!(ok.success(), "{ok:?}");
    assert_eq!((ok.code, ok.signal, ok.timed_out), (Some(0), None, false));
    assert_eq!(ok.tail.len(), 50);
    assert_eq!(ok.tail.first().unwrap(), "line 11");
    assert_eq!(ok.tail.last().unwrap(), "line 60");
    let first = wait_line(&mut lines, "shop-r3-release", |_| true).await;
    assert_eq!(first.line, "hi port=none inst=shop-r3-release");
    assert_eq!(first.process, "release");
    let file = std::fs::read_to_string(env.log_path("shop", "release-3-release.log")).unwrap();
    assert_eq!(file.lines().count(), 61);

    let failed = env
        .rt
        .run_task(task(
            &env,
            "migrate",
            "sh -c 'echo failing >&2; exit 7'",
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert!(!failed.success());
    assert_eq!(
        (failed.code, failed.signal, failed.timed_out),
        (Some(7), None, false)
    );
    assert_eq!(failed.tail, vec!["failing"]);

    let killed = env
        .rt
        .run_task(task(&env, "migrate", "kill -9 $$", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!((killed.code, killed.signal), (None, Some(9)));

    let missing = env
        .rt
        .run_task(task(
            &env,
            "migrate",
            "./does-not-exist",
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert_eq!(missing.code, Some(127));
    assert!(
        missing.tail.iter().any(|l| l.contains("does-not-exist")),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_task_times_out() {
    let env = Env::new();
    let t = Instant::now();
    let outcome = env
        .rt
        .run_task(task(
            &env,
            "release",
            "sh -c 'echo started; sleep 30'",
            Duration::from_millis(300),
        ))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(outcome.timed_out);
    assert!(!outcome.success());
    assert_eq!(outcome.tail, vec!["started"]);
    assert_eq!(outcome.signal, Some(15), "{outcome:?}");

    // One that ignores SIGTERM is killed 5 s later.
    let t = Instant::now();
    let outcome = env
        .rt
        .run_task(task(
            &env,
            "release",
            "trap '' TERM; sleep 30",
            Duration::from_millis(200),
        ))
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(9),
        "{took:?}"
    );
    assert!(outcome.timed_out);
    assert_eq!(outcome.signal, Some(9));
}

// ---------------------------------------------------------------- leftovers

fn spawn_marked(data_dir: &std::path::Path, instance: &str, script: &str) -> std::process::Child {
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .env("WHARF_DATA_DIR", data_dir)
        .env("WHARF_INSTANCE", instance)
        .env("WHARF_APP", instance.split("-r").next().unwrap_or(instance))
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leftovers_finds_and_kills_only_our_leftovers() {
    let env = Env::new();
    let data = env.rt.data_dir().to_owned();
    let other_data = env.dir.path().join("other");
    std::fs::create_dir_all(&other_data).unwrap();
    let mut ghost = spawn_marked(&data, "shop-r1-web-0", "sleep 300; echo never");
    let mut stubborn = spawn_marked(
        &data,
        "shop-r1-web-1",
        "trap '' TERM; sleep 300; echo never",
    );
    let mut stranger = spawn_marked(&other_data, "shop-r1-web-0", "sleep 300; echo never");
    // A prefix of our data dir is not our data dir.
    let mut prefixed = spawn_marked(&data.join("sub"), "x", "sleep 300; echo never");
    // One of our own, currently supervised.
    let work = env.workdir(&[]);
    let mine = env.spec("shop", "web", 2, "sleep 300", &work);
    let mine_pid = env.rt.start(mine.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Another app's leftover is left to that app's recovery.
    let mut blog = spawn_marked(&data, "blog-r1-web-0", "sleep 300; echo never");
    let found = env
        .rt
        .kill_leftovers(Some("blog"), Duration::from_millis(800))
        .await
        .unwrap();
    // Its shell, and the shell's `sleep` if it was forked by then.
    assert!(found.iter().any(|f| f.pid == blog.id()), "{found:?}");
    assert!(
        found
            .iter()
            .all(|f| f.instance.as_deref() == Some("blog-r1-web-0")),
        "only blog's leftover: {found:?}"
    );
    wait_exit(&mut blog, Duration::from_secs(5)).expect("blog's leftover still running");
    assert!(
        ghost.try_wait().unwrap().is_none(),
        "shop's leftover was killed"
    );

    let t = Instant::now();
    let found = env
        .rt
        .kill_leftovers(Some("shop"), Duration::from_millis(800))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "the stubborn one needs the grace period"
    );
    let pids: Vec<u32> = found.iter().map(|f| f.pid).collect();
    assert!(pids.contains(&ghost.id()), "{found:?}");
    assert!(pids.contains(&stubborn.id()), "{found:?}");
    assert!(!pids.contains(&stranger.id()));
    assert!(!pids.contains(&prefixed.id()));
    assert!(!pids.contains(&mine_pid));
    assert!(!pids.contains(&std::process::id()));
    let ghost_found = found.iter().find(|f| f.pid == ghost.id()).unwrap();
    assert_eq!(ghost_found.instance.as_deref(), Some("shop-r1-web-0"));

    use std::os::unix::process::ExitStatusExt;
    let status = wait_exit(&mut ghost, Duration::from_secs(5)).expect("ghost still running");
    assert_eq!(status.signal(), Some(15));
    let status = wait_exit(&mut stubborn, Duration::from_secs(5)).expect("stubborn still running");
    assert_eq!(status.signal(), Some(9));
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "another data dir's process was killed"
    );
    assert!(prefixed.try_wait().unwrap().is_none());
    assert_eq!(
        env.rt.state(&mine.id),
        InstanceState::Running { pid: mine_pid }
    );

    // Nothing left the second time.
    assert!(
        env.rt
            .kill_leftovers(None, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );

    stranger.kill().unwrap();
    prefixed.kill().unwrap();
    let _ = stranger.wait();
    let _ = prefixed.wait();
    env.rt.shutdown().await;
}

// ---------------------------------------------------------------- tail_logs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_logs_merges_and_filters_by_process() {
    let env = Env::new();
    let work = env.workdir(&[(
        "talk.sh",
        "i=1\nwhile [ $i -le 5 ]; do echo \"$WHARF_PROCESS $i\"; i=$((i+1)); sleep 0.02; done\nexec sleep 300",
    )]);
    let web0 = env.spec("shop", "web", 0, "./talk.sh", &work);
    let web1 = env.spec("shop", "web", 1, "./talk.sh", &work);
    let worker = env.spec("shop", "worker", 0, "./talk.sh", &work);
    let other_app = env.spec("shopping", "web", 0, "./talk.sh", &work);
    for spec in [&web0, &web1, &worker, &other_app] {
        env.rt.start(spec.clone()).await.unwrap();
    }
    for (spec, word) in [
        (&web0, "web"),
        (&web1, "web"),
        (&worker, "worker"),
        (&other_app, "web"),
    ] {
        let file = env.log_path(&spec.app, &format!("{}.log", spec.id));
        wait_file_contains(&file, &format!("{word} 5")).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut t = task(&env, "release", "echo from-task", Duration::from_secs(10));
    t.release = 1;
    env.rt.run_task(t).await.unwrap();

    let all = env.rt.tail_logs("shop", None, 100).await.unwrap();
    assert_eq!(all.len(), 16);
    assert!(
        all.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "not oldest first"
    );
    assert!(all.iter().all(|l| l.app == "shop"));
    assert_eq!(all.last().unwrap().line, "from-task");
    assert_eq!(all.last().unwrap().instance, "shop-r1-release");

    let web = env.rt.tail_logs("shop", Some("web"), 100).await.unwrap();
    assert_eq!(web.len(), 10);
    assert!(
        web.iter()
            .all(|l| l.process == "web" && l.line.starts_with("web "))
    );
    assert_eq!(web.iter().filter(|l| l.instance == web1.id).count(), 5);
    // Per instance, still in order.
    let web0_lines: Vec<&str> = web
        .iter()
        .filter(|l| l.instance == web0.id)
        .map(|l| l.line.as_str())
        .collect();
    assert_eq!(
        web0_lines,
        vec!["web 1", "web 2", "web 3", "web 4", "web 5"]
    );

    let last3 = env.rt.tail_logs("shop", Some("worker"), 3).await.unwrap();
    let texts: Vec<&str> = last3.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(texts, vec!["worker 3", "worker 4", "worker 5"]);

    let task_lines = env.rt.tail_logs("shop", Some("release"), 10).await.unwrap();
    assert_eq!(task_lines.len(), 1);
    assert!(
        env.rt
            .tail_logs("shop", Some("nope"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        env.rt
            .tail_logs("unknown-app", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(env.rt.tail_logs("shop", None, 0).await.unwrap().is_empty());
    env.rt.shutdown().await;
}
