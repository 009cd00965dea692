//! Accessories: built from the app's source, named volumes.

use crate::support::*;

/// The output of accessory `name` so far.
async fn accessory_output(env: &Env, name: &str) -> Vec<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    env.rt
        .accessory_logs(&env.app, name, 100, false, tx)
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        lines.push(line.line);
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accessory_built_from_the_app_source() {
    let env = Env::new("accbuild", DockerNetwork::AppBridge).await;
    let dockerfile = format!(
        "{BUSYBOX_DOCKERFILE}COPY version /version\n\
         CMD [\"/bin/sh\", \"-c\", \"cat /version; trap 'exit 0' TERM; while :; do sleep 0.1; done\"]\n"
    );
    let src = env.source("app", busybox(), &dockerfile);
    std::fs::write(src.join("version"), "v1\n").unwrap();
    let tag = format!("wharf/{}:accessory-kv", env.app);
    let container = format!("wharf-{}-kv", env.app);
    let mut spec = AccessorySpec {
        app: env.app.clone(),
        name: "kv".to_owned(),
        image: String::new(),
        build: Some(AccessoryBuild {
            dir: src.clone(),
            build: DockerBuild::default(),
            rebuild: false,
        }),
        command: None,
        env: BTreeMap::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        aliases: Vec::new(),
        health: None,
        limits: Limits::default(),
    };
    let mut logs = env.rt.log_lines();

    // No image yet: built, tagged, labelled, its output logged as the
    // accessory's build.
    let status = env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(
        (status.state.as_str(), status.image.as_str()),
        ("running", tag.as_str())
    );
    let built = docker().await.inspect_image(&tag).await.unwrap();
    let labels = built.config.unwrap().labels.unwrap();
    assert_eq!(labels["wharf.accessory"], "kv");
    assert_eq!(labels["wharf.app"], env.app);
    assert!(!labels.contains_key("wharf.release"));
    let first = inspect(&container).await;
    assert_eq!(first.image, built.id);
    assert_eq!(accessory_output(&env, "kv").await, ["v1"]);
    let build_log = format!("{}-kv-build", env.app);
    assert!(
        drain(&mut logs)
            .iter()
            .any(|l| l.instance == build_log && l.line.contains("Successfully tagged"))
    );
    let file =
        std::fs::read_to_string(env.rt.logs_dir(&env.app).join("accessory-kv-build.log")).unwrap();
    assert!(file.contains("COPY version /version"), "{file}");

    // A deploy's boot does not rebuild: the source changed, the container
    // stays.
    std::fs::write(src.join("version"), "v2\n").unwrap();
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id, first.id);

    // `wharf accessory boot` rebuilds, and the new image replaces the
    // container; rebuilding an unchanged source leaves it alone.
    spec.build.as_mut().unwrap().rebuild = true;
    env.rt.boot_accessory(&spec).await.unwrap();
    let second = inspect(&container).await;
    assert_ne!(second.id, first.id);
    assert_ne!(second.image, first.image);
    assert_eq!(accessory_output(&env, "kv").await, ["v2"]);
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id, second.id);

    // A build that fails is the boot's error, and the running one stays.
    std::fs::write(src.join("Dockerfile"), "FROM scratch\nCOPY missing /x\n").unwrap();
    let err = env.rt.boot_accessory(&spec).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "could not build image {tag} from {}",
            src.display()
        )),
        "{err}"
    );
    assert_eq!(inspect(&container).await.id, second.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accessory_with_a_named_volume_keeps_its_data() {
    let env = Env::new("acc", DockerNetwork::AppBridge).await;
    let workdir = env.busybox_release(1).await;
    let image = format!("wharf/{}:r1", env.app);
    let port = free_port();
    let command = r#"/bin/sh -c 'echo booted $TOKEN; mkdir -p /data/www; [ -f /data/www/index.html ] || echo first boot $TOKEN > /data/www/index.html; httpd -p 8080 -h /data/www; trap "exit 0" TERM; while :; do sleep 0.1; done'"#;
    let spec = AccessorySpec {
        app: env.app.clone(),
        name: "store".to_owned(),
        image: image.clone(),
        build: None,
        command: Some(command.to_owned()),
        env: BTreeMap::from([("TOKEN".to_owned(), "v1".to_owned())]),
        ports: vec![PortMapping {
            host_ip: "127.0.0.1".to_owned(),
            host_port: port,
            container_port: 8080,
            protocol: "tcp".to_owned(),
        }],
        volumes: vec![VolumeMount {
            source: VolumeSource::Named("data".to_owned()),
            target: "/data".to_owned(),
            read_only: false,
        }],
        aliases: Vec::new(),
        health: Some(AccessoryHealth {
            command: "wget -q -O /dev/null http://127.0.0.1:8080/index.html".to_owned(),
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            retries: 3,
            start_timeout: Duration::from_secs(20),
        }),
        limits: Limits {
            memory_bytes: Some(32 * 1024 * 1024),
            cpus: None,
        },
    };
    let container = format!("wharf-{}-store", env.app);
    let volume = format!("wharf-{}-data", env.app);
    let status = env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(status.state, "running");
    assert_eq!(status.health.as_deref(), Some("healthy"));
    assert_eq!(status.container, container);
    let info = inspect(&container).await;
    let created = info.id.clone().unwrap();
    let labels = info.config.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels["wharf.accessory"], "store");
    assert!(
        labels.values().all(|v| !v.contains("v1")),
        "env value in a label: {labels:?}"
    );
    let host = info.host_config.unwrap();
    assert_eq!(host.memory, Some(32 * 1024 * 1024));
    assert_eq!(
        host.restart_policy.unwrap().name.unwrap().to_string(),
        "unless-stopped"
    );
    let volume_labels = docker().await.inspect_volume(&volume).await.unwrap().labels;
    assert_eq!(volume_labels["wharf.accessory"], "store");

    // Published on the host, and reachable by name from the app's network.
    let (status_code, _, body) = tokio::task::spawn_blocking(move || http_get(port, "/index.html"))
        .await
        .unwrap();
    assert_eq!((status_code, body.as_str()), (200, "first boot v1\n"));
    let fetch = "wget -q -O - http://store:8080/index.html";
    let outcome = env
        .rt
        .run_task(env.task(&workdir, fetch, &[]))
        .await
        .unwrap();
    assert_eq!(outcome.tail, vec!["first boot v1"], "{outcome:?}");

    // Booting it again unchanged leaves it alone.
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id.unwrap(), created);
    // Stopped, then started again by a boot.
    env.rt.stop_accessory(&env.app, "store").await.unwrap();
    let stopped = env.rt.accessory_status(&env.app, "store").await.unwrap();
    assert_eq!(stopped.state, "exited");
    env.rt.boot_accessory(&spec).await.unwrap();
    assert_eq!(inspect(&container).await.id.unwrap(), created);

    // A changed env recreates the container; the volume keeps the file.
    let mut changed = spec.clone();
    changed.env.insert("TOKEN".to_owned(), "v2".to_owned());
    let status = env.rt.boot_accessory(&changed).await.unwrap();
    assert_eq!(status.health.as_deref(), Some("healthy"));
    assert_ne!(inspect(&container).await.id.unwrap(), created);
    let outcome = env
        .rt
        .run_task(env.task(&workdir, fetch, &[]))
        .await
        .unwrap();
    assert_eq!(outcome.tail, vec!["first boot v1"], "{outcome:?}");
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    env.rt
        .accessory_logs(&env.app, "store", 10, false, tx)
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        lines.push(line.line);
    }
    assert_eq!(lines, vec!["booted v2"]);

    // Never a leftover, never pruned.
    assert!(
        env.rt
            .kill_leftovers(None, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    env.rt.stop_accessory(&env.app, "store").await.unwrap();
    let report = env.rt.prune(&[]).await.unwrap();
    assert!(report.containers.is_empty(), "{report:?}");
    assert!(container_exists(&container).await);

    // One that exits while starting: the error has its output.
    let mut bad = spec.clone();
    bad.name = "bad".to_owned();
    bad.ports.clear();
    bad.volumes.clear();
    bad.health = None;
    bad.command = Some("/bin/sh -c 'echo cannot start; exit 4'".to_owned());
    let err = env.rt.boot_accessory(&bad).await.unwrap_err().to_string();
    assert!(
        err.contains("exited with code 4 while starting, and was stopped"),
        "{err}"
    );
    assert!(err.contains("cannot start"), "{err}");
    // Stopped, not left to the engine's restart loop; its output is kept.
    let status = env.rt.accessory_status(&env.app, "bad").await.unwrap();
    assert_eq!(status.state, "exited", "{status:?}");
    assert!(
        accessory_output(&env, "bad")
            .await
            .contains(&"cannot start".to_owned())
    );
    env.rt
        .remove_accessory(&env.app, "bad", true)
        .await
        .unwrap();

    // Removal: the container, and with `volumes` its named volume.
    env.rt
        .remove_accessory(&env.app, "store", true)
        .await
        .unwrap();
    let status = env.rt.accessory_status(&env.app, "store").await.unwrap();
    assert_eq!(status.state, "missing");
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let err = env
        .rt
        .accessory_logs(&env.app, "store", 10, false, tx)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no container"), "{err}");
    assert!(docker().await.inspect_volume(&volume).await.is_err());
}
