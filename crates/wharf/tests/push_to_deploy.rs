//! Push to deploy, end to end with the real binary, git and a local
//! double of the forge's commit-status API (`support::forge`, speaking
//! GitHub's statuses API as documented: `POST
//! /repos/{owner}/{repo}/statuses/{sha}`, `Authorization: Bearer`).
//!
//! A bare repository on the machine is the origin; the test commits,
//! pushes, then POSTs a signed GitHub-shaped (or Gitea-shaped) push to the
//! server's https API.
//!
//! - A push is fetched, its CI run, deployed, and its statuses posted; a
//!   failing step means no deploy and a `failure` status.
//! - Of two quick pushes only the newer deploys.
//! - kill -9 mid-pipeline, then a restart: it converges, deployed once.
//! - Under docker with `[ci] image = "build"`, the steps run in containers
//!   of the commit's image, which its deploy then reuses.
//! - `wharf ci --signoff` posts `signoff` = success for a clean, pushed
//!   HEAD whose steps passed, and refuses otherwise.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::forge::StatusDouble;
use support::hooks::{Api, push_body_from};
use support::{Server, live_release, wharf_bin};

/// Runs git in `dir` as a fixed author; panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository standing for `https://github.com/acme/shop.git` (git
/// rewrites that URL to it), and a checkout of it on `main`.
fn origin_and_checkout(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let origin = root.join("acme/shop.git");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "-q", "--bare", "-b", "main"]);
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["config", "user.name", "Ada"]);
    git(&work, &["config", "user.email", "ada@example.com"]);
    git(
        &work,
        &[
            "config",
            &format!("url.{}.insteadOf", origin.display()),
            "https://github.com/acme/shop.git",
        ],
    );
    git(
        &work,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/acme/shop.git",
        ],
    );
    (origin, work)
}

fn write_app(work: &Path, ci_step: &str) {
    std::fs::write(
        work.join("wharf.toml"),
        format!(
            r#"name = "shop"

[processes.web]
command = "{bin}"
http = {{ path = "/" }}
health = {{ path = "/up", interval = "100ms" }}

[deploy]
branch = "main"
drain_timeout = "1s"

[ci]
steps = [{{ name = "Check", run = "{ci_step}" }}]
"#,
            bin = support::hello_bin().display()
        ),
    )
    .unwrap();
}

fn wharf_ci(work: &Path, double: &StatusDouble, args: &[&str]) -> Output {
    Command::new(wharf_bin())
        .arg("ci")
        .arg("--dir")
        .arg(work)
        .args(args)
        .env("WHARF_FORGE_TOKEN", "ghp_signofftoken")
        .env("WHARF_FORGE_API", double.url())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn signoff_posts_success_for_a_clean_pushed_head_and_refuses_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let (_origin, work) = origin_and_checkout(tmp.path());
    let double = StatusDouble::start();
    write_app(&work, "echo checked");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);

    // Not pushed yet.
    let out = wharf_ci(&work, &double, &["--signoff"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no signoff: HEAD has no branch to push to"),
        "{stderr}"
    );
    git(&work, &["push", "-q", "-u", "origin", "main"]);

    // Uncommitted changes.
    std::fs::write(work.join("notes.txt"), "wip").unwrap();
    let out = wharf_ci(&work, &double, &["--signoff"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("uncommitted changes"), "{stderr}");
    std::fs::remove_file(work.join("notes.txt")).unwrap();
    assert!(double.requests().is_empty());

    // Clean and pushed: signed off.
    let out = wharf_ci(&work, &double, &["--signoff"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let sha = git(&work, &["rev-parse", "HEAD"]);
    assert!(
        stderr.contains(&format!("signed off {}", &sha[..12])),
        "{stderr}"
    );
    let posted = double.requests();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let p = &posted[0];
    assert_eq!(p.method, "POST");
    assert_eq!(p.path, format!("/repos/acme/shop/statuses/{sha}"));
    assert_eq!(p.header("authorization"), Some("Bearer ghp_signofftoken"));
    assert_eq!(p.body["state"], "success", "{:#}", p.body);
    assert_eq!(p.body["context"], "signoff");
    assert_eq!(p.body["description"], "Ada signed off");

    // A failing step: no signoff.
    write_app(&work, "exit 3");
    git(&work, &["commit", "-q", "-am", "two"]);
    git(&work, &["push", "-q"]);
    let out = wharf_ci(&work, &double, &["--signoff"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no signoff: CI failed"), "{stderr}");
    assert_eq!(double.requests().len(), 1);
}

/// A server with an https API whose statuses go to `double`, the app
/// `shop` deployed once from `work` (so it exists and watches `main`), its
/// hook secret (returned) and forge token set.
fn server_for(data: &Path, work: &Path, double: &StatusDouble) -> (Server, String) {
    server_for_app(data, work, double, "shop")
}

/// A server with the app in `work` deployed, a hook secret (returned) and
/// a forge token for `app`.
fn server_for_app(data: &Path, work: &Path, double: &StatusDouble, app: &str) -> (Server, String) {
    let server = Server::start_args(
        data,
        &[],
        &["--api", "127.0.0.1:0", "--forge-api", &double.url()],
    );
    assert_eq!(server.deploy_dir(work, &[]), 1);
    let out = server.wharf(&["hooks", "secret", app]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut child = server
        .cmd(&["hooks", "secret", app, "--forge-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ghp_pipelinetoken\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (server, secret)
}

/// Commits the app with `ci_step` as its CI step and pushes it: the commit.
fn push(work: &Path, ci_step: &str, message: &str) -> String {
    write_app(work, ci_step);
    commit_and_push(work, message)
}

/// Commits the tree (with `message` as its `VERSION`) and pushes it.
fn commit_and_push(work: &Path, message: &str) -> String {
    std::fs::write(work.join("VERSION"), message).unwrap();
    git(work, &["add", "."]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["push", "-q", "-u", "origin", "main"]);
    git(work, &["rev-parse", "HEAD"])
}

fn job(server: &Server, id: i64) -> serde_json::Value {
    let view: serde_json::Value =
        serde_json::from_str(&server.ok(&["job", "show", &id.to_string(), "--json"])).unwrap();
    view["job"].clone()
}

fn wait_job_end(server: &Server, id: i64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let j = job(server, id);
        if !matches!(j["state"].as_str(), Some("queued" | "running")) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not end: {j:#}\n{}",
            server.ok(&["job", "logs", &id.to_string()])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The commits of the releases the app has, oldest first.
fn released_commits(server: &Server) -> Vec<String> {
    let releases: Vec<serde_json::Value> =
        serde_json::from_str(&server.ok(&["releases", "--app", "shop", "--json"])).unwrap();
    let mut commits: Vec<(i64, String)> = releases
        .iter()
        .filter_map(|r| {
            let source = r["source"].as_str()?;
            let commit = source.strip_prefix("git ")?.rsplit(' ').next()?;
            Some((r["number"].as_i64()?, commit.to_owned()))
        })
        .collect();
    commits.sort();
    commits.into_iter().map(|(_, c)| c).collect()
}

/// (context, state) of each status posted for `sha`, in order.
fn statuses(double: &StatusDouble, sha: &str) -> Vec<(String, String)> {
    double
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/statuses/{sha}")))
        .map(|r| {
            (
                r.body["context"].as_str().unwrap_or_default().to_owned(),
                r.body["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A signed GitHub push: wharf fetches the commit from the origin, runs
/// its CI, deploys it, and posts the pipeline's and the deploy's statuses
/// to GitHub's statuses API; `wharf ci runs` and `wharf ci logs` show it.
/// A push whose CI fails (sent by Gitea this time) is not deployed and
/// gets a `failure` status in Gitea's words and auth header.
#[test]
fn a_push_is_fetched_tested_deployed_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, work) = origin_and_checkout(tmp.path());
    let double = StatusDouble::start();
    push(&work, "echo first", "one");
    let (server, secret) = server_for(&tmp.path().join("data"), &work, &double);
    let api = Api::new(&server);
    let origin_url = origin.display().to_string();

    let sha = push(
        &work,
        "echo ci ran for $WHARF_COMMIT on $WHARF_BRANCH",
        "two",
    );
    let body = push_body_from(&origin_url, "main", &sha, "two");
    let answer = api.github("push", "delivery-2", &body, &secret);
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert!(answer.took < Duration::from_secs(1), "{:?}", answer.took);
    let id = answer.body["job"].as_i64().unwrap();
    let ended = wait_job_end(&server, id);
    assert_eq!(
        ended["state"],
        "succeeded",
        "{ended:#}\n{}",
        server.ok(&["job", "logs", &id.to_string()])
    );
    assert_eq!(live_release(&server), 2);
    assert_eq!(released_commits(&server).last(), Some(&sha));

    let runs = server.ok(&["ci", "runs", "shop"]);
    assert!(
        runs.contains(&sha[..12]) && runs.contains("succeeded"),
        "{runs}"
    );
    let logs = server.ok(&["ci", "logs", &id.to_string(), "Check"]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(lines[0].starts_with("ci Check: echo ci ran for"), "{logs}");
    assert_eq!(lines[1], format!("ci ran for {sha} on main"), "{logs}");
    assert!(lines[2].starts_with("✅ Check passed in "), "{logs}");
    let all = server.ok(&["ci", "logs", &id.to_string()]);
    assert!(
        all.contains("fetch") && all.contains("switch traffic"),
        "{all}"
    );

    let posted = statuses(&double, &sha);
    assert_eq!(
        posted,
        [
            ("wharf/pipeline".to_owned(), "pending".to_owned()),
            ("wharf/pipeline".to_owned(), "pending".to_owned()),
            ("wharf/deploy".to_owned(), "pending".to_owned()),
            ("wharf/deploy".to_owned(), "success".to_owned()),
            ("wharf/pipeline".to_owned(), "success".to_owned()),
        ]
    );
    for r in double.requests() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/repos/acme/shop/statuses/{sha}"));
        assert_eq!(r.header("authorization"), Some("Bearer ghp_pipelinetoken"));
        assert_eq!(
            r.body["target_url"],
            format!("https://{}/v1/jobs/{id}", server.api.unwrap())
        );
    }

    // CI fails: nothing deployed; Gitea hears `failure` for the pipeline.
    let bad = push(&work, "echo broken; exit 3", "three");
    let body = push_body_from(&origin_url, "main", &bad, "three");
    let answer = api.gitea("shop", "push", "gitea-3", &body, &secret);
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["job"].as_i64().unwrap();
    let ended = wait_job_end(&server, id);
    assert_eq!(ended["state"], "failed", "{ended:#}");
    assert!(
        ended["error"].as_str().unwrap().contains("CI of")
            && ended["error"]
                .as_str()
                .unwrap()
                .contains("(Check); not deployed"),
        "{ended:#}"
    );
    assert_eq!(live_release(&server), 2);
    assert!(!released_commits(&server).contains(&bad));
    let posted = statuses(&double, &bad);
    assert_eq!(
        posted.last(),
        Some(&("wharf/pipeline".to_owned(), "failure".to_owned()))
    );
    assert!(
        posted.iter().all(|(c, _)| c != "wharf/deploy"),
        "{posted:?}"
    );
    let gitea = double
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(&bad))
        .unwrap();
    assert_eq!(gitea.path, format!("/repos/acme/shop/statuses/{bad}"));
    assert_eq!(
        gitea.header("authorization"),
        Some("token ghp_pipelinetoken")
    );
}

/// Two pushes in quick succession: the older one's pipeline is cancelled
/// in its CI (or superseded while it waits) and never deployed; the newer
/// one deploys.
#[test]
fn of_two_quick_pushes_only_the_newer_deploys() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, work) = origin_and_checkout(tmp.path());
    let double = StatusDouble::start();
    push(&work, "echo first", "one");
    let (server, secret) = server_for(&tmp.path().join("data"), &work, &double);
    let api = Api::new(&server);
    let origin_url = origin.display().to_string();

    let older = push(&work, "sleep 5", "two");
    let newer = push(&work, "echo quick", "three");
    let a = api.github(
        "push",
        "d-older",
        &push_body_from(&origin_url, "main", &older, "two"),
        &secret,
    );
    assert_eq!(a.status, 202, "{}", a.body);
    let b = api.github(
        "push",
        "d-newer",
        &push_body_from(&origin_url, "main", &newer, "three"),
        &secret,
    );
    assert_eq!(b.status, 202, "{}", b.body);
    let (a, b) = (
        a.body["job"].as_i64().unwrap(),
        b.body["job"].as_i64().unwrap(),
    );
    let newer_end = wait_job_end(&server, b);
    assert_eq!(newer_end["state"], "succeeded", "{newer_end:#}");
    let older_end = wait_job_end(&server, a);
    assert!(
        matches!(
            older_end["state"].as_str(),
            Some("cancelled" | "superseded")
        ),
        "{older_end:#}"
    );
    let commits = released_commits(&server);
    assert_eq!(commits.last(), Some(&newer), "{commits:?}");
    assert!(!commits.contains(&older), "{commits:?}");
    assert_eq!(live_release(&server), 2);
}

/// kill -9 while a pipeline runs its CI, then a restart: the pipeline is
/// resumed (its CI runs again) and deploys once.
#[test]
fn a_pipeline_cut_by_kill_9_converges_without_a_double_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (origin, work) = origin_and_checkout(tmp.path());
    let double = StatusDouble::start();
    push(&work, "echo first", "one");
    let (mut server, secret) = server_for(&data, &work, &double);
    let api = Api::new(&server);
    let sha = push(&work, "echo testing; sleep 3; echo tested", "two");
    let body = push_body_from(&origin.display().to_string(), "main", &sha, "two");
    let answer = api.github("push", "d-kill", &body, &secret);
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["job"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .ok(&["job", "logs", &id.to_string()])
        .contains("testing")
    {
        assert!(Instant::now() < deadline, "CI never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill9();

    let server = Server::start_args(
        &data,
        &[],
        &["--api", "127.0.0.1:0", "--forge-api", &double.url()],
    );
    let ended = wait_job_end(&server, id);
    assert_eq!(
        ended["state"],
        "succeeded",
        "{ended:#}\n{}",
        server.ok(&["job", "logs", &id.to_string()])
    );
    assert_eq!(ended["attempts"], 2, "{ended:#}");
    let commits = released_commits(&server);
    assert_eq!(
        commits.iter().filter(|c| **c == sha).count(),
        1,
        "{commits:?}"
    );
    assert_eq!(live_release(&server), 2);
}

/// The docker app of `ci_in_the_build_image…`: busybox (a shell for the
/// steps) and the static hello; the checkout goes to `/src` in the image.
/// Its `wharf.toml` (with the app's unique name) is the first layer, so no
/// other test's image shares a cached layer with it.
fn write_docker_app(work: &Path, name: &str, ci_step: &str) {
    std::fs::copy("/bin/busybox", work.join("busybox"))
        .expect("this test needs a static /bin/busybox (Debian: apt-get install busybox-static)");
    std::fs::copy(support::docker::static_hello(), work.join("hello")).unwrap();
    std::fs::write(
        work.join("Dockerfile"),
        "FROM scratch\nCOPY wharf.toml /src/wharf.toml\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY hello /hello\nWORKDIR /src\nCOPY VERSION /src/VERSION\n\
         ENV HELLO_HOST=0.0.0.0\nCMD [\"/hello\"]\n",
    )
    .unwrap();
    std::fs::write(
        work.join("wharf.toml"),
        format!(
            r#"name = "{name}"
runtime = "docker"

[processes.web]
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms", timeout = "1s" }}
stop_timeout = "5s"

[deploy]
branch = "main"
health_timeout = "20s"
drain_timeout = "1s"

[ci]
image = "build"
steps = [{{ name = "Check", run = "{ci_step}" }}]
"#
        ),
    )
    .unwrap();
}

/// `[ci] image = "build"` under docker: a push's steps run in a container
/// of the commit's image (in its WORKDIR, with the commit's files, not on
/// the host), the deploy of green CI reuses that very image, and no step
/// container is left; a failing step in the container means no deploy.
#[test]
fn ci_in_the_build_image_runs_in_containers_under_docker() {
    let _serial = support::docker::serial();
    let name = format!("d{}-ci", std::process::id());
    let guard = support::docker::Cleanup::new(&[&name], &[]);
    let (origin, work) = origin_and_checkout(guard.scratch());
    let double = StatusDouble::start();
    write_docker_app(&work, &name, "echo first");
    commit_and_push(&work, "one");
    let (server, secret) = server_for_app(&guard.data, &work, &double, &name);
    let api = Api::new(&server);
    let origin_url = origin.display().to_string();

    write_docker_app(
        &work,
        &name,
        "echo in $(pwd) with $(cat VERSION) CI=$CI for $WHARF_COMMIT",
    );
    let sha = commit_and_push(&work, "two");
    let body = push_body_from(&origin_url, "main", &sha, "two");
    let answer = api.gitea(&name, "push", "docker-2", &body, &secret);
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["job"].as_i64().unwrap();
    let ended = wait_job_end(&server, id);
    let logs = server.ok(&["job", "logs", &id.to_string()]);
    assert_eq!(ended["state"], "succeeded", "{ended:#}\n{logs}");
    assert!(
        logs.contains(&format!("build image wharf/{name}:ci-{}", &sha[..12])),
        "{logs}"
    );
    assert!(logs.contains("Step 1/"), "the image build's output: {logs}");
    let check = server.ok(&["ci", "logs", &id.to_string(), "Check"]);
    assert!(
        check.contains(&format!("in /src with two CI=true for {sha}")),
        "the step ran in the image's WORKDIR: {check}"
    );
    assert_eq!(live_release(&server), 2);
    let short = &sha[..12];
    let ci_image = guard.engine.image_id(&format!("wharf/{name}:ci-{short}"));
    let deployed = guard.engine.image_id(&format!("wharf/{name}:{short}"));
    assert!(ci_image.is_some(), "{:?}", guard.engine.app_images(&name));
    assert_eq!(ci_image, deployed, "the deploy reuses the CI image");
    let ci_containers: Vec<_> = guard
        .engine
        .containers(&guard.data)
        .into_iter()
        .filter(|(_, (_, labels, _))| labels.contains_key("wharf.ci"))
        .collect();
    assert!(ci_containers.is_empty(), "{ci_containers:?}");

    // A step failing in its container: not deployed, `failure` posted.
    write_docker_app(&work, &name, "echo broken in $(pwd); exit 3");
    let bad = commit_and_push(&work, "three");
    let body = push_body_from(&origin_url, "main", &bad, "three");
    let answer = api.gitea(&name, "push", "docker-3", &body, &secret);
    let id = answer.body["job"].as_i64().unwrap();
    let ended = wait_job_end(&server, id);
    assert_eq!(ended["state"], "failed", "{ended:#}");
    let check = server.ok(&["ci", "logs", &id.to_string(), "Check"]);
    assert!(check.contains("broken in /src"), "{check}");
    assert!(check.contains("Check failed"), "{check}");
    assert_eq!(live_release(&server), 2);
    assert_eq!(
        statuses(&double, &bad).last(),
        Some(&("wharf/pipeline".to_owned(), "failure".to_owned()))
    );
}
