//! Release images: builds (tags, several images, the build cache, the
//! Dockerfile's options), prebuilt images, and prune.

use crate::support::*;

#[tokio::test]
async fn unreachable_engine_names_the_socket_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = DockerRuntimeOptions::new(dir.path().join("data"), 1024);
    options.socket = Some(dir.path().join("no/docker.sock"));
    let err = DockerRuntime::connect(options).await.unwrap_err();
    let msg = err.to_string();
    let socket = format!("unix://{}", dir.path().join("no/docker.sock").display());
    assert!(
        msg.starts_with(&format!("could not reach the Docker engine at {socket}: ")),
        "{msg}"
    );
    assert!(msg.contains("is dockerd running"), "{msg}");
    assert!(msg.contains("Set DOCKER_HOST"), "{msg}");
}

#[tokio::test]
async fn prepare_release_builds_tags_and_removes_images() {
    let env = Env::new("build", DockerNetwork::AppBridge).await;
    let mut logs = env.rt.log_lines();
    let dir = env.release(1, hello_binary(), HELLO_DOCKERFILE).await;
    assert_eq!(
        dir,
        env.rt
            .data_dir()
            .join(format!("apps/{}/releases/1", env.app))
    );
    let image = std::fs::read_to_string(dir.join("image")).unwrap();
    assert!(image.starts_with("sha256:"), "{image}");
    let tag = format!("wharf/{}:r1", env.app);
    let inspected = docker().await.inspect_image(&tag).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(image.trim()));
    // Build output is logged as process "build".
    let line = wait_line(&mut logs, &format!("{}-r1-build", env.app), |l| {
        l.line.contains("COPY hello /hello")
    })
    .await;
    assert_eq!(line.process, "build");
    let tail = env
        .rt
        .tail_logs(&env.app, Some("build"), 100)
        .await
        .unwrap();
    assert!(
        tail.iter().any(|l| l.line.contains("COPY hello")),
        "{tail:?}"
    );

    // A failing Dockerfile: the error has the engine's message and the output.
    let src = env.source("bad", hello_binary(), "FROM scratch\nCOPY missing.txt /x\n");
    let err = env
        .rt
        .prepare_release(&common::source(&env.app, 2, &src))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("could not build image wharf/{}:r2 from ", env.app)),
        "{err}"
    );
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains("COPY missing.txt /x"), "{err}");
    assert!(!env.rt.release_dir(&env.app, 2).exists());

    // No Dockerfile at all.
    let empty = env.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = env
        .rt
        .prepare_release(&common::source(&env.app, 3, &empty))
        .await
        .unwrap_err()
        .to_string();
    let expected = format!("no Dockerfile at {}: ", empty.join("Dockerfile").display());
    assert!(err.starts_with(&expected), "{err}");

    env.rt.remove_release(&env.app, 1).await.unwrap();
    assert!(!dir.exists());
    assert!(docker().await.inspect_image(&tag).await.is_err());
    // Removing again is fine.
    env.rt.remove_release(&env.app, 1).await.unwrap();
}

/// A release whose processes have images of their own: each is built (or
/// tagged) with the release, an instance runs its process's image, a
/// directory is copied out of it (asset bridging), and removing the
/// release removes them all.
#[tokio::test]
async fn a_release_of_several_images_is_made_and_removed_together() {
    let env = Env::new("images", DockerNetwork::AppBridge).await;
    let src = env.source("src", hello_binary(), HELLO_DOCKERFILE);
    std::fs::create_dir_all(src.join("assets/css")).unwrap();
    std::fs::write(src.join("assets/css/app-1.css"), "one").unwrap();
    std::fs::write(
        src.join("api.Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nCOPY assets /srv/assets\nCMD [\"/hello\"]\n",
    )
    .unwrap();
    // A "prebuilt" image: release 1's app image, made by an earlier release.
    let base = env.release(9, hello_binary(), HELLO_DOCKERFILE).await;
    let prebuilt = std::fs::read_to_string(base.join("image")).unwrap();
    let mut source = common::source(&env.app, 1, &src);
    source.app_image = false;
    source.processes = BTreeMap::from([
        (
            "api".to_owned(),
            ImageSource::Build(DockerBuild {
                dockerfile: "api.Dockerfile".into(),
                ..DockerBuild::default()
            }),
        ),
        (
            "proxy".to_owned(),
            ImageSource::Prebuilt(prebuilt.trim().to_owned()),
        ),
    ]);
    let dir = env.rt.prepare_release(&source).await.unwrap();
    assert!(
        !dir.join("image").exists(),
        "no process runs the app's image"
    );
    let tags = [
        format!("wharf/{}:r1-api", env.app),
        format!("wharf/{}:r1-proxy", env.app),
    ];
    for tag in &tags {
        assert!(docker().await.inspect_image(tag).await.is_ok(), "{tag}");
    }

    let assets = env.dir.path().join("assets-out");
    env.rt
        .copy_out(&env.app, &dir, "api", "/srv/assets", &assets)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(assets.join("css/app-1.css")).unwrap(),
        "one"
    );
    // A path the image does not have gives an empty directory.
    let none = env.dir.path().join("none");
    env.rt
        .copy_out(&env.app, &dir, "proxy", "/nothing", &none)
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(&none).unwrap().count(), 0);

    let spec = env.spec(&dir, "api", "");
    let name = format!("wharf-{}", spec.id);
    env.rt.start(spec).await.unwrap();
    let api_image = std::fs::read_to_string(dir.join("processes/api/image")).unwrap();
    assert_eq!(
        inspect(&name).await.image.as_deref(),
        Some(api_image.trim())
    );
    env.rt.shutdown().await;

    env.rt.remove_release(&env.app, 1).await.unwrap();
    assert!(!dir.exists());
    for tag in &tags {
        assert!(
            docker().await.inspect_image(tag).await.is_err(),
            "{tag} is left"
        );
    }
    // The prebuilt image is release 9's too: it stays.
    assert!(docker().await.inspect_image(prebuilt.trim()).await.is_ok());
    env.rt.remove_network(&env.app).await.unwrap();
}

/// A rebuild of unchanged sources (the next release of the same tree) is a
/// full cache hit: every step of the engine's own output says "Using
/// cache", no step runs a container, and the image is the same.
#[tokio::test]
async fn an_unchanged_rebuild_is_a_full_cache_hit() {
    let env = Env::new("cache", DockerNetwork::AppBridge).await;
    // A first layer of its own: the engine's cache is shared with the
    // other tests' builds, which must not be taken for this one's.
    let src = env.source(
        "src",
        busybox(),
        "FROM scratch\nCOPY marker /marker\nCOPY busybox /bin/busybox\nENV A=1\nCMD [\"/bin/busybox\", \"true\"]\n",
    );
    std::fs::write(src.join("marker"), &env.app).unwrap();
    let first = env
        .rt
        .prepare_release(&env.source_of(1, &src))
        .await
        .unwrap();
    let mut logs = env.rt.log_lines();
    let second = env
        .rt
        .prepare_release(&env.source_of(2, &src))
        .await
        .unwrap();
    let image = |dir: &Path| std::fs::read_to_string(dir.join("image")).unwrap();
    assert_eq!(
        image(&first),
        image(&second),
        "an unchanged rebuild makes the same image"
    );
    let lines: Vec<String> = drain(&mut logs)
        .into_iter()
        .filter(|l| l.app == env.app && l.process == "build" && l.release == 2)
        .map(|l| l.line)
        .collect();
    let steps = lines.iter().filter(|l| l.starts_with("Step ")).count();
    let cached = lines.iter().filter(|l| l.contains("Using cache")).count();
    // FROM scratch is no cached layer; every other step (the labels too).
    assert!(steps >= 6, "{lines:#?}");
    assert_eq!(cached, steps - 1, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("Running in")),
        "{lines:#?}"
    );

    // One changed file: the steps from its COPY on are built again.
    std::fs::write(src.join("marker"), format!("{} changed", env.app)).unwrap();
    let third = env
        .rt
        .prepare_release(&env.source_of(3, &src))
        .await
        .unwrap();
    assert_ne!(image(&third), image(&second));
}

#[tokio::test]
async fn build_honours_dockerfile_context_target_args_and_version() {
    let env = Env::new("buildopts", DockerNetwork::AppBridge).await;
    let secret = format!("s3cr3t-{}-value", std::process::id());
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(src.join("docker")).unwrap();
    std::fs::create_dir_all(src.join("ctx")).unwrap();
    std::fs::copy(busybox(), src.join("ctx/busybox")).unwrap();
    // Outside the context dir; the stages after `final` would fail.
    std::fs::write(
        src.join("docker/app.Dockerfile"),
        "FROM scratch AS base\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         FROM base AS final\nARG SECRET\nENV SECRET=$SECRET\n\
         RUN echo \"building with $SECRET\"\n\
         CMD [\"/bin/sh\", \"-c\", \"echo secret=$SECRET\"]\n\
         FROM base AS failing\nARG SECRET\nRUN echo \"leaking $SECRET\"; exit 3\n\
         FROM base AS broken\nCOPY missing.txt /x\n",
    )
    .unwrap();
    let mut source = env.source_of(1, &src);
    source.version = "v1.0+build/7".to_owned();
    source.build = DockerBuild {
        dockerfile: "docker/app.Dockerfile".into(),
        context: "ctx".into(),
        target: Some("final".to_owned()),
        args: BTreeMap::from([("SECRET".to_owned(), secret.clone())]),
    };
    let mut logs = env.rt.log_lines();
    let dir = env.rt.prepare_release(&source).await.unwrap();
    let image = std::fs::read_to_string(dir.join("image")).unwrap();
    let tag = format!("wharf/{}:v1.0-build-7", env.app);
    assert_eq!(
        std::fs::read_to_string(dir.join("tag")).unwrap().trim(),
        tag
    );
    let inspected = docker().await.inspect_image(&tag).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(image.trim()));
    let config = inspected.config.unwrap();
    let labels = config.labels.unwrap();
    assert!(
        !labels.contains_key("wharf.release") && !labels.contains_key("wharf.app"),
        "only the data dir: a release number would make every rebuild a cache miss, \
         and every label is one more step after a changed file: {labels:?}"
    );
    assert_eq!(
        labels["wharf.data-dir"],
        env.rt.data_dir().to_string_lossy()
    );
    assert!(
        config.env.unwrap().contains(&format!("SECRET={secret}")),
        "the build arg did not reach the image"
    );

    // The output streamed as process "build", the secret masked everywhere.
    let streamed = drain(&mut logs);
    assert!(
        streamed
            .iter()
            .any(|l| l.process == "build" && l.line.contains("building with ***")),
        "{streamed:?}"
    );
    let logged = env
        .rt
        .tail_logs(&env.app, Some("build"), 1000)
        .await
        .unwrap();
    assert!(logged.iter().any(|l| l.line.contains("building with ***")));
    for line in streamed.iter().chain(&logged) {
        assert!(!line.line.contains(&secret), "secret in {line:?}");
    }
    let file =
        std::fs::read_to_string(env.rt.logs_dir(&env.app).join("release-1-build.log")).unwrap();
    assert!(!file.contains(&secret));

    // Inside the image the arg is there.
    let outcome = env.rt.run_task(env.task(&dir, "", &[])).await.unwrap();
    assert_eq!(outcome.tail, vec![format!("secret={secret}")]);

    // A failing stage: neither the error nor the logs show the value.
    let mut failing = source.clone();
    failing.release = 2;
    failing.build.target = Some("failing".to_owned());
    let err = env.prepare_error(&failing).await;
    assert!(err.contains("leaking ***"), "{err}");
    assert!(!err.contains(&secret), "{err}");
    assert!(!env.rt.release_dir(&env.app, 2).exists());

    // A Dockerfile that is not there is named in the error.
    let mut missing = source.clone();
    missing.release = 3;
    missing.build.dockerfile = "nope/Dockerfile".into();
    let err = env.prepare_error(&missing).await;
    assert!(
        err.starts_with(&format!(
            "no Dockerfile at {}: ",
            src.join("nope/Dockerfile").display()
        )),
        "{err}"
    );

    // The ignore file decides what the engine sees: the context's
    // `.dockerignore`, unless the Dockerfile has its own.
    std::fs::write(src.join("ctx/big.bin"), vec![0_u8; 1 << 20]).unwrap();
    std::fs::write(src.join("ctx/.dockerignore"), "*\n!busybox\n").unwrap();
    let mut ignoring = source.clone();
    ignoring.release = 4;
    env.rt.prepare_release(&ignoring).await.unwrap();
    let own = src.join("docker/app.Dockerfile.dockerignore");
    std::fs::write(&own, "# not for this image\nbusybox\n").unwrap();
    ignoring.release = 5;
    let err = env.prepare_error(&ignoring).await;
    assert!(err.contains("stat busybox: file does not exist"), "{err}");
    assert!(!env.rt.release_dir(&env.app, 5).exists());
    std::fs::write(&own, "busybox\n[a-\n").unwrap();
    let err = env.prepare_error(&ignoring).await;
    assert!(
        err.starts_with(&format!("build ignore file {}:2: ", own.display())),
        "{err}"
    );
}

#[tokio::test]
async fn prebuilt_images_are_tagged_and_missing_ones_explained() {
    let env = Env::new("prebuilt", DockerNetwork::AppBridge).await;
    let first = env.busybox_release(1).await;
    let id = std::fs::read_to_string(first.join("image")).unwrap();
    let mut logs = env.rt.log_lines();

    let mut source = env.source_of(2, env.dir.path());
    source.version = "v2".to_owned();
    source.image = Some(format!("wharf/{}:r1", env.app));
    let dir = env.rt.prepare_release(&source).await.unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("image")).unwrap(), id);
    let v2 = format!("wharf/{}:v2", env.app);
    let inspected = docker().await.inspect_image(&v2).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(id.trim()));
    let line = wait_line(&mut logs, &format!("{}-r2-build", env.app), |_| true).await;
    assert!(line.line.contains("using prebuilt image"), "{line:?}");

    let missing = format!("wharf-missing-{}:nope", std::process::id());
    let mut source = env.source_of(3, env.dir.path());
    source.image = Some(missing.clone());
    let err = env.prepare_error(&source).await;
    assert!(
        err.starts_with(&format!(
            "image {missing} is not in the Docker engine and could not be pulled"
        )),
        "{err}"
    );
    assert!(err.contains("build or load it"), "{err}");
    assert!(!env.rt.release_dir(&env.app, 3).exists());

    // Release 2 shares release 1's image: only its tag goes.
    env.rt.remove_release(&env.app, 2).await.unwrap();
    assert!(docker().await.inspect_image(&v2).await.is_err());
    let r1 = format!("wharf/{}:r1", env.app);
    assert!(docker().await.inspect_image(&r1).await.is_ok());
    env.rt.remove_release(&env.app, 1).await.unwrap();
    assert!(docker().await.inspect_image(&r1).await.is_err());
    assert!(docker().await.inspect_image(id.trim()).await.is_err());
}

#[tokio::test]
async fn prune_removes_stopped_containers_and_images_not_kept() {
    let env = Env::new("prune", DockerNetwork::AppBridge).await;
    // Three different images (an unchanged rebuild would be one).
    for release in 1..=3 {
        let dockerfile = format!("{BUSYBOX_DOCKERFILE}ENV RELEASE={release}\n");
        env.release(release, busybox(), &dockerfile).await;
    }
    let image3 = std::fs::read_to_string(env.rt.release_dir(&env.app, 3).join("image")).unwrap();
    // A stopped container and a stopped accessory, both of this data dir.
    let docker = docker().await;
    let data_dir = env.rt.data_dir().to_string_lossy().into_owned();
    for (name, accessory) in [("old", false), ("acc", true)] {
        let mut labels = HashMap::from([
            ("wharf.data-dir".to_owned(), data_dir.clone()),
            ("wharf.app".to_owned(), env.app.clone()),
        ]);
        if accessory {
            labels.insert("wharf.accessory".to_owned(), name.to_owned());
        }
        let body = ContainerCreateBody {
            image: Some(image3.trim().to_owned()),
            labels: Some(labels),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!("wharf-{}-{name}", env.app))
            .build();
        docker.create_container(Some(options), body).await.unwrap();
    }

    let report = env.rt.prune(&[(env.app.clone(), 3)]).await.unwrap();
    let mut images = report.images.clone();
    images.sort();
    assert_eq!(
        images,
        vec![
            format!("wharf/{}:r1", env.app),
            format!("wharf/{}:r2", env.app)
        ]
    );
    assert_eq!(report.containers, vec![format!("wharf-{}-old", env.app)]);
    assert!(report.reclaimed_bytes > 0, "{report:?}");
    for release in 1..=2 {
        let tag = format!("wharf/{}:r{release}", env.app);
        assert!(docker.inspect_image(&tag).await.is_err());
    }
    assert!(container_exists(&format!("wharf-{}-acc", env.app)).await);

    // Release 4 runs release 3's image: keeping 4 keeps it, and only
    // release 3's tag goes.
    let mut source = env.source_of(4, env.dir.path());
    source.image = Some(format!("wharf/{}:r3", env.app));
    env.rt.prepare_release(&source).await.unwrap();
    let report = env.rt.prune(&[(env.app.clone(), 4)]).await.unwrap();
    assert_eq!(
        report.images,
        [format!("wharf/{}:r3", env.app)],
        "{report:?}"
    );
    assert!(docker.inspect_image(image3.trim()).await.is_ok());
    assert!(
        docker
            .inspect_image(&format!("wharf/{}:r4", env.app))
            .await
            .is_ok()
    );
}
