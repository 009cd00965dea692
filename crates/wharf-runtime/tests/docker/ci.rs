//! CI steps in containers of the build image (`[ci] image = "build"`).

use crate::support::*;

/// What a CI run said, by step.
#[derive(Default)]
struct CiLines(Vec<(String, String)>);

impl wharf_ci::Sink for CiLines {
    fn output(&mut self, step: &str, line: &str) {
        self.0.push((step.to_owned(), line.to_owned()));
    }
}

impl CiLines {
    fn of(&self, step: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(s, _)| s == step)
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

fn ci_step(name: &str, run: &str) -> wharf_config::CiStep {
    wharf_config::CiStep::Run(wharf_config::CiRun {
        name: name.to_owned(),
        run: run.to_owned(),
    })
}

/// `[ci] image = "build"`: the checkout's image is built as a release's
/// (the same image id a deploy of it then gets, from cache), and each step
/// runs in a new container of it, in the image's WORKDIR, with the step's
/// env, its stdout and stderr read as one stream, its exit code reported;
/// a cancelled step's container is stopped; no container is left.
#[tokio::test]
async fn ci_steps_run_in_containers_of_the_build_image() {
    let env = Env::new("ci", DockerNetwork::AppBridge).await;
    let src = env.source(
        "ci",
        busybox(),
        "FROM scratch\nCOPY marker /app/marker\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         WORKDIR /app\nCMD [\"/bin/sh\"]\n",
    );
    // First, and this test's own: the engine's cache picks among equal
    // layers other tests build meanwhile, and could pick another each time.
    std::fs::write(src.join("marker"), format!("{}\n", env.app)).unwrap();
    let mut logs = env.rt.log_lines();
    let launcher = env
        .rt
        .ci_launcher(&wharf_runtime::CiSource {
            app: env.app.clone(),
            dir: src.clone(),
            version: "abc123".into(),
            build: DockerBuild::default(),
        })
        .await
        .unwrap();
    assert_eq!(
        launcher.describe(),
        format!("a container of wharf/{}:ci-abc123", env.app)
    );
    assert!(
        drain(&mut logs)
            .iter()
            .any(|l| l.process == "ci-build" && l.line.contains("Step")),
        "the build's output is logged as ci-build"
    );

    let steps = [
        ci_step(
            "Where",
            "pwd; cat marker; echo \"CI=$CI TOKEN=$TOKEN\"; echo to stderr >&2",
        ),
        ci_step("Fails", "echo failing; exit 3"),
    ];
    let mut opts = wharf_ci::Options::new("/nonexistent-on-the-host");
    opts.launcher = Some(launcher.clone());
    opts.env = vec![("TOKEN".into(), "s3cret-value".into())];
    opts.secrets = vec!["s3cret-value".into()];
    let mut lines = CiLines::default();
    let report = wharf_ci::run(&steps, &opts, &mut lines).await.unwrap();
    assert_eq!(
        lines.of("Where"),
        [
            "/app",
            env.app.as_str(),
            "CI=true TOKEN=[masked]",
            "to stderr"
        ]
    );
    assert_eq!(lines.of("Fails"), ["failing"]);
    assert!(!report.ok);
    assert_eq!(report.steps[0].status, wharf_ci::Status::Passed);
    assert_eq!(report.steps[1].status, wharf_ci::Status::Failed);
    assert_eq!(report.steps[1].exit_code, Some(3));

    // A deploy of the same checkout builds the same image, from cache.
    let workdir = env
        .rt
        .prepare_release(&common::source(&env.app, 1, &src))
        .await
        .unwrap();
    let release_image = std::fs::read_to_string(workdir.join("image")).unwrap();
    let ci_image = docker()
        .await
        .inspect_image(&format!("wharf/{}:ci-abc123", env.app))
        .await
        .unwrap()
        .id
        .unwrap();
    assert_eq!(release_image.trim(), ci_image);

    // Cancelled while it runs: the container is stopped, the step
    // interrupted, well before its sleep ends.
    let steps = [ci_step("Slow", "echo started; sleep 60")];
    let mut opts = wharf_ci::Options::new("/");
    opts.launcher = Some(launcher);
    opts.stop_timeout = Duration::from_secs(1);
    let cancel = opts.cancel.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cancel.cancel();
    });
    let mut lines = CiLines::default();
    let report = wharf_ci::run(&steps, &opts, &mut lines).await.unwrap();
    assert!(report.interrupted, "{report:?}");
    assert_eq!(report.steps[0].status, wharf_ci::Status::Interrupted);
    assert_eq!(lines.of("Slow"), ["started"]);
    assert!(started.elapsed() < Duration::from_secs(20));

    // Every step's container is gone.
    let filters = HashMap::from([("label", vec![format!("wharf.app={}", env.app)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let left = docker().await.list_containers(Some(options)).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
