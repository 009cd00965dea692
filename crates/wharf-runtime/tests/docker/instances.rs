//! Instances and tasks: networks, published ports, restarts, one-off
//! tasks, leftovers, limits, exec, adoption after a crash.

use crate::support::*;

#[tokio::test]
async fn host_network_instance_serves_http_and_stops_gracefully() {
    let env = Env::new("host", DockerNetwork::Host).await;
    let workdir = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;
    let mut events = env.rt.events();
    let mut spec = env.spec(&workdir, "web", "");
    spec.env.insert(
        "HELLO_MESSAGE".to_owned(),
        "from the docker test".to_owned(),
    );
    let id = spec.id.clone();
    let port = spec.port;
    let pid = env.rt.start(spec).await.unwrap();
    assert!(pid > 1);
    assert_eq!(env.rt.state(&id), InstanceState::Running { pid });
    assert_eq!(env.rt.instances(), vec![id.clone()]);
    match next_event(&mut events, &id).await {
        RuntimeEvent::Started { pid: p, .. } => assert_eq!(p, pid),
        other => panic!("expected Started, got {other:?}"),
    }
    let (status, head, _) = tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-hello-release: 1"),
        "{head}"
    );
    let (_, _, body) = tokio::task::spawn_blocking(move || http_get(port, "/"))
        .await
        .unwrap();
    assert!(body.contains("from the docker test"), "{body}");
    assert!(body.contains(&id), "WHARF_INSTANCE not passed: {body}");

    let name = format!("wharf-{id}");
    let labels = docker()
        .await
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .config
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(labels["wharf.app"], env.app);
    assert_eq!(labels["wharf.instance"], id);
    assert_eq!(labels["wharf.process"], "web");
    assert_eq!(labels["wharf.release"], "1");
    assert_eq!(
        labels["wharf.data-dir"],
        env.rt.data_dir().to_string_lossy()
    );

    let started = Instant::now();
    env.rt.stop(&id).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Stopped {
            id: id.clone(),
            killed: false
        }
    );
    assert!(!container_exists(&name).await);
    assert_eq!(env.rt.state(&id), InstanceState::Stopped);
    let log = std::fs::read_to_string(env.rt.logs_dir(&env.app).join(format!("{id}.log"))).unwrap();
    assert!(log.contains("stdout hello: listening on"), "{log}");
    assert!(log.contains("stopped gracefully"), "{log}");
    // Unknown ids are fine.
    env.rt.stop(&id).await.unwrap();
}

#[tokio::test]
async fn bridge_instance_is_published_on_loopback_with_an_alias() {
    let env = Env::new("bridge", DockerNetwork::AppBridge).await;
    let workdir = env.release(1, tiny_binary(), TINY_DOCKERFILE).await;
    let mut spec = env.spec(&workdir, "web", "");
    spec.env.insert("GREETING".to_owned(), "ahoy".to_owned());
    let id = spec.id.clone();
    let port = spec.port;
    env.rt.start(spec).await.unwrap();
    let (status, _, body) = tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "greeting=ahoy\n");

    let name = format!("wharf-{id}");
    let info = docker()
        .await
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = info.host_config.unwrap();
    let binding = &host.port_bindings.unwrap()[&format!("{port}/tcp")];
    let binding = &binding.as_ref().unwrap()[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        binding.host_port.as_deref(),
        Some(port.to_string().as_str())
    );
    let networks = info.network_settings.unwrap().networks.unwrap();
    let endpoint = &networks[&format!("wharf-{}", env.app)];
    assert!(
        endpoint
            .aliases
            .as_ref()
            .is_some_and(|a| a.contains(&"web".to_owned())),
        "{endpoint:?}"
    );

    // A worker (not `http`) is on the network under its alias, and
    // publishes nothing.
    let mut worker = env.spec(&workdir, "worker", "");
    worker.id = format!("{}-r1-worker-0", env.app);
    worker.publish = false;
    let worker_name = format!("wharf-{}", worker.id);
    env.rt.start(worker).await.unwrap();
    let info = docker()
        .await
        .inspect_container(&worker_name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let bindings = info.host_config.unwrap().port_bindings.unwrap_or_default();
    assert!(
        bindings
            .values()
            .all(|b| b.as_ref().is_none_or(Vec::is_empty)),
        "{bindings:?}"
    );
    let networks = info.network_settings.unwrap().networks.unwrap();
    assert!(
        networks[&format!("wharf-{}", env.app)]
            .aliases
            .as_ref()
            .is_some_and(|a| a.contains(&"worker".to_owned()))
    );

    env.rt.shutdown().await;
    assert!(!container_exists(&name).await);
    assert!(env.rt.instances().is_empty());
    env.rt.remove_network(&env.app).await.unwrap();
}

/// A process without `http` (a database, an SMTP server) publishes its
/// `ports`; its named volume is created with wharf's labels, listed, and
/// removable only once no container uses it.
#[tokio::test]
async fn a_tcp_process_publishes_its_ports_and_mounts_its_volume() {
    let env = Env::new("tcp", DockerNetwork::AppBridge).await;
    let workdir = env.release(1, tiny_binary(), TINY_DOCKERFILE).await;
    let mut spec = env.spec(&workdir, "smtp", "");
    spec.publish = false;
    spec.container_port = Some(7000);
    let host_port = free_port();
    spec.ports = vec![PortMapping {
        host_ip: "127.0.0.1".to_owned(),
        host_port,
        container_port: 7000,
        protocol: "tcp".to_owned(),
    }];
    spec.volumes = vec![VolumeMount {
        source: VolumeSource::Named("spool".to_owned()),
        target: "/var/spool".to_owned(),
        read_only: false,
    }];
    env.rt.start(spec).await.unwrap();
    let (status, _, _) = tokio::task::spawn_blocking(move || http_get(host_port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200, "the published port does not answer");

    let volume = format!("wharf-{}-spool", env.app);
    let labels = docker().await.inspect_volume(&volume).await.unwrap().labels;
    assert_eq!(
        labels.get("wharf.volume").map(String::as_str),
        Some("spool")
    );
    assert_eq!(labels.get("wharf.app"), Some(&env.app));
    let listed = env.rt.volumes(&env.app).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].name.as_str(), listed[0].location.as_str()),
        ("spool", volume.as_str())
    );
    assert!(
        listed[0].size_bytes.is_some(),
        "run as root, the size is known"
    );

    let err = env.rt.remove_volume(&env.app, "spool").await.unwrap_err();
    assert!(
        err.to_string().contains("another container uses it"),
        "{err}"
    );
    env.rt.shutdown().await;
    assert!(env.rt.remove_volume(&env.app, "spool").await.unwrap());
    assert!(!env.rt.remove_volume(&env.app, "spool").await.unwrap());
    env.rt.remove_network(&env.app).await.unwrap();
}

#[tokio::test]
async fn a_crashed_container_is_reported_and_started_again() {
    let env = Env::new("crash", DockerNetwork::Host).await;
    let workdir = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;
    let mut events = env.rt.events();
    let spec = env.spec(&workdir, "web", "/hello");
    let id = spec.id.clone();
    let port = spec.port;
    let pid = env.rt.start(spec).await.unwrap();
    assert!(matches!(
        next_event(&mut events, &id).await,
        RuntimeEvent::Started { .. }
    ));
    tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();

    let restart_in = kill9_then_exited(pid, &mut events, &id).await;
    assert_eq!(restart_in, Some(Duration::from_millis(100)));
    let new_pid = match next_event(&mut events, &id).await {
        RuntimeEvent::Started { pid, .. } => pid,
        other => panic!("expected Started, got {other:?}"),
    };
    assert_ne!(new_pid, pid);
    assert_eq!(env.rt.state(&id), InstanceState::Running { pid: new_pid });
    let (status, _, _) = tokio::task::spawn_blocking(move || http_get(port, "/up"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    env.rt.stop(&id).await.unwrap();
    assert!(!container_exists(&format!("wharf-{id}")).await);
}

#[tokio::test]
async fn run_task_reports_exit_codes_output_and_timeouts() {
    let env = Env::new("task", DockerNetwork::AppBridge).await;
    let hello = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;

    // hello refuses a bad setting with exit code 2.
    let outcome = env
        .rt
        .run_task(env.task(&hello, "/hello", &[("HELLO_FAILURE_RATE", "abc")]))
        .await
        .unwrap();
    assert_eq!(outcome.code, Some(2));
    assert!(!outcome.success());
    assert!(
        outcome
            .tail
            .iter()
            .any(|l| l.contains("HELLO_FAILURE_RATE")),
        "{:?}",
        outcome.tail
    );
    let log = env.rt.logs_dir(&env.app).join("release-1-release.log");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("stderr hello: HELLO_FAILURE_RATE"), "{text}");

    // A server that outlives its timeout is stopped.
    let mut task = env.task(&hello, "", &[]);
    task.timeout = Duration::from_secs(1);
    let outcome = env.rt.run_task(task).await.unwrap();
    assert!(outcome.timed_out);
    assert!(!outcome.success());

    // An argv with quoting, exit codes 0 and 7.
    let tiny = {
        let src = env.source("tiny", tiny_binary(), TINY_DOCKERFILE);
        env.rt
            .prepare_release(&common::source(&env.app, 2, &src))
            .await
            .unwrap()
    };
    let outcome = env
        .rt
        .run_task(env.task(&tiny, "/tiny exit '0'", &[]))
        .await
        .unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.tail, vec!["tiny: exiting with 0"]);
    let outcome = env
        .rt
        .run_task(env.task(&tiny, "/tiny exit 7", &[]))
        .await
        .unwrap();
    assert_eq!(outcome.code, Some(7));

    // Shell syntax is refused up front.
    let err = env
        .rt
        .run_task(env.task(&tiny, "/tiny exit 0 && /tiny", &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("shell syntax"), "{err}");

    // No task container is left behind.
    let filters = HashMap::from([("label", vec![format!("wharf.app={}", env.app)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    assert!(
        docker()
            .await
            .list_containers(Some(options))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Creates and starts a labelled `tiny` container as an earlier server would have.
async fn leftover(image: &str, name: &str, data_dir: &Path, app: &str, instance: &str) {
    let docker = docker().await;
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(vec![format!("PORT={}", free_port())]),
        labels: Some(HashMap::from([
            (
                "wharf.data-dir".to_owned(),
                data_dir.to_string_lossy().into_owned(),
            ),
            ("wharf.app".to_owned(), app.to_owned()),
            ("wharf.instance".to_owned(), instance.to_owned()),
        ])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker.start_container(name, None).await.unwrap();
}

#[tokio::test]
async fn kill_leftovers_removes_only_this_data_dirs_containers() {
    let env = Env::new("leftovers", DockerNetwork::AppBridge).await;
    let workdir = env.release(1, tiny_binary(), TINY_DOCKERFILE).await;
    let image = std::fs::read_to_string(workdir.join("image")).unwrap();
    let image = image.trim();
    let other_dir = tempfile::tempdir().unwrap();
    let other_data = other_dir.path().canonicalize().unwrap();
    let _other_cleanup = Cleanup {
        app: env.app.clone(),
        data_dir: other_data.clone(),
    };
    let mine = format!("wharf-{}-old-0", env.app);
    let theirs = format!("wharf-{}-other-0", env.app);
    leftover(image, &mine, env.rt.data_dir(), &env.app, "old-0").await;
    leftover(image, &theirs, &other_data, &env.app, "other-0").await;
    // A live instance of this runtime is no leftover.
    let spec = env.spec(&workdir, "web", "");
    let live = spec.id.clone();
    env.rt.start(spec).await.unwrap();

    let found = env
        .rt
        .kill_leftovers(None, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].instance.as_deref(), Some("old-0"));
    assert!(found[0].pid > 1);
    assert!(!container_exists(&mine).await);
    assert!(container_exists(&theirs).await);
    assert!(matches!(env.rt.state(&live), InstanceState::Running { .. }));
    assert!(container_exists(&format!("wharf-{live}")).await);
    // Nothing left the second time.
    assert!(
        env.rt
            .kill_leftovers(None, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    env.rt.shutdown().await;
}

#[tokio::test]
async fn limits_exec_and_restart_policies() {
    let env = Env::new("limits", DockerNetwork::AppBridge).await;
    let workdir = env.busybox_release(1).await;
    let mut events = env.rt.events();
    let mut spec = env.spec(&workdir, "web", TICKER);
    spec.limits = Limits {
        memory_bytes: Some(64 * 1024 * 1024),
        cpus: Some(0.5),
    };
    let id = spec.id.clone();
    env.rt.start(spec).await.unwrap();
    let host = inspect(&env.container(&id)).await.host_config.unwrap();
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));

    // exec: both streams, line by line, as the instance's process; the code.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let argv = ["/bin/sh", "-c", "echo out; echo err >&2; echo more; exit 3"];
    let code = env
        .rt
        .exec(&id, argv.iter().map(|a| (*a).to_owned()).collect(), tx)
        .await
        .unwrap();
    assert_eq!(code, 3);
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        assert_eq!(line.process, "web");
        assert_eq!(line.instance, id);
        assert_eq!(line.app, env.app);
        lines.push((line.stream.as_str(), line.line));
    }
    lines.sort();
    assert_eq!(
        lines,
        vec![
            ("stderr", "err".to_owned()),
            ("stdout", "more".to_owned()),
            ("stdout", "out".to_owned()),
        ]
    );
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let err = env
        .rt
        .exec("nope-r1-web-0", vec!["/bin/true".to_owned()], tx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("instance nope-r1-web-0 is not running"),
        "{err}"
    );
    env.rt.stop(&id).await.unwrap();

    // Never: one Exited without a restart, then Stopped; the container goes.
    let mut once = env.spec(&workdir, "once", "/bin/sh -c 'exit 3'");
    once.restart = RestartPolicy::Never;
    let once_id = once.id.clone();
    env.rt.start(once).await.unwrap();
    let ended = |code| {
        vec![
            RuntimeEvent::Exited {
                id: once_id.clone(),
                code: Some(code),
                signal: None,
                restart_in: None,
            },
            RuntimeEvent::Stopped {
                id: once_id.clone(),
                killed: false,
            },
        ]
    };
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut events, &once_id).await {
            RuntimeEvent::Started { .. } => {}
            other => seen.push(other),
        }
    }
    assert_eq!(seen, ended(3));
    assert_eq!(env.rt.state(&once_id), InstanceState::Stopped);
    assert!(!container_exists(&env.container(&once_id)).await);

    // OnFailure: exit 0 ends it too.
    let mut done = env.spec(&workdir, "once", "/bin/sh -c 'exit 0'");
    done.restart = RestartPolicy::OnFailure;
    env.rt.start(done).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut events, &once_id).await {
            RuntimeEvent::Started { .. } => {}
            other => seen.push(other),
        }
    }
    assert_eq!(seen, ended(0));
}

#[test]
fn a_second_runtime_adopts_the_containers_of_a_crashed_one() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (env, spec) = rt.block_on(async {
        let env = Env::new("adopt", DockerNetwork::AppBridge).await;
        let workdir = env.busybox_release(1).await;
        let spec = env.spec(&workdir, "web", TICKER);
        (env, spec)
    });
    let data_dir = env.rt.data_dir().to_owned();

    // The "crashed" server: its own tokio runtime, dropped with its tasks
    // while the container runs on.
    let first = spec.clone();
    let old_pid = std::thread::spawn(move || {
        let crashed = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let pid = crashed.block_on(async {
            let old = connect(&data_dir, DockerNetwork::AppBridge).await;
            // Dropped with its runtime: nothing stops the container.
            old.start(first).await.unwrap()
        });
        drop(crashed);
        pid
    })
    .join()
    .unwrap();

    rt.block_on(async {
        let id = spec.id.clone();
        let name = env.container(&id);
        assert!(inspect(&name).await.state.unwrap().running.unwrap());
        // Not what the caller would start: not adopted.
        let mut other_port = spec.clone();
        other_port.port = free_port();
        assert_eq!(env.rt.adopt(other_port).await.unwrap(), None);
        let mut other_release = spec.clone();
        other_release.release = 2;
        assert_eq!(env.rt.adopt(other_release).await.unwrap(), None);
        assert!(env.rt.instances().is_empty());

        let mut logs = env.rt.log_lines();
        let mut events = env.rt.events();
        let pid = env.rt.adopt(spec.clone()).await.unwrap();
        assert_eq!(pid, Some(old_pid));
        assert_eq!(env.rt.state(&id), InstanceState::Running { pid: old_pid });
        assert!(matches!(
            next_event(&mut events, &id).await,
            RuntimeEvent::Started { pid, .. } if pid == old_pid
        ));
        // Its output flows into this runtime's broadcast and log file.
        let line = wait_line(&mut logs, &id, |l| l.line.starts_with("tick ")).await;
        assert_eq!(line.process, "web");
        let log = env.rt.logs_dir(&env.app).join(format!("{id}.log"));
        common::wait_file_contains(&log, &format!("stdout {}", line.line)).await;
        // Adopted means live: no leftover.
        assert!(
            env.rt
                .kill_leftovers(None, Duration::from_secs(1))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(container_exists(&name).await);

        // Its exit is noticed and it is started again, by this runtime.
        let restart_in = kill9_then_exited(old_pid, &mut events, &id).await;
        assert!(restart_in.is_some());
        // The old run's output is all in by `Exited` (reaped first), and
        // the new run starts after the backoff: drop the old lines now, as
        // the new run's first ones may arrive before its `Started` does.
        drain(&mut logs);
        assert!(matches!(
            next_event(&mut events, &id).await,
            RuntimeEvent::Started { .. }
        ));
        // Up (its TERM trap set) before it is stopped.
        wait_line(&mut logs, &id, |l| l.line == "tick 0").await;
        env.rt.stop(&id).await.unwrap();
        assert!(!container_exists(&name).await);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("stdout bye"), "{text}");
    });
    rt.block_on(async move { drop(env) });
}
