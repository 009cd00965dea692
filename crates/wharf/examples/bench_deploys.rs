//! Zero-downtime benchmark (not a test): do clients see any failed request
//! while an app is deployed and rolled back over and over, and what does
//! `docker-compose up -d` do to them in the same situation?
//!
//! Builds a `FROM scratch` image of the static `hello` example under
//! `runtime = "docker"` (2 instances), starts `wharf server` on a fresh data
//! dir, deploys release 1, puts a constant open-loop load on the proxy (RATE
//! req/s over 16 keep-alive connections), then runs DEPLOYS deploys (each
//! with a new `HELLO_MESSAGE`) with a `wharf rollback` after every
//! DEPLOYS/ROLLBACKS-th one, and counts the requests that failed (connect
//! error, reset, timeout or non-2xx). Then the contrast: the same image as
//! one docker-compose service with a published port, the same load on that
//! port, and `docker-compose up -d --force-recreate` as many times (each
//! with a new `HELLO_MESSAGE`). Prints a markdown table of both.
//!
//! Everything the run creates (the compose project, the wharf server and
//! its containers, images `wharf/benchdeploy:*`, network
//! `wharf-benchdeploy`) is removed when it ends, pass or panic.
//!
//! Usage: `bench_deploys <wharf-bin> <static-hello-bin> [deploys=50]
//! [rollbacks=10] [rate=200] [recreates=deploys+rollbacks]` (see
//! `bench/deploys/run.sh`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RemoveVolumeOptions,
};
use common::{Sample, Server, open_loop};

const APP: &str = "benchdeploy";
const COMPOSE_IMAGE: &str = "benchdeploy-compose:latest";
const DOCKERFILE: &str =
    "FROM scratch\nCOPY hello /hello\nENV HELLO_HOST=0.0.0.0\nCMD [\"/hello\"]\n";
/// Load before the first operation and after the last one.
const SETTLE: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_deploys <wharf-bin> <static-hello-bin> [deploys=50] [rollbacks=10] \
                 [rate=200] [recreates=deploys+rollbacks]";
    let wharf = PathBuf::from(args.first().expect(usage));
    let hello = PathBuf::from(args.get(1).expect(usage));
    let deploys: u32 = args.get(2).map_or(50, |a| a.parse().expect(usage));
    let rollbacks: u32 = args.get(3).map_or(10, |a| a.parse().expect(usage));
    let rate: u32 = args.get(4).map_or(200, |a| a.parse().expect(usage));
    let recreates: Option<u32> = args.get(5).map(|a| a.parse().expect(usage));
    assert!(deploys > 0 && rate > 0, "{usage}");

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Containers are labelled with the canonical data dir.
    let data = data.canonicalize().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(&hello, app.join("hello")).unwrap();
    std::fs::write(app.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(
        app.join("wharf.toml"),
        format!(
            "name = \"{APP}\"\nruntime = \"docker\"\n\n[processes.web]\ninstances = 2\n\
             http = {{ path = \"/\" }}\n\
             health = {{ path = \"/up\", interval = \"200ms\", timeout = \"1s\", threshold = 2 }}\n\n\
             [deploy]\ndrain_timeout = \"5s\"\nretain = 3\n"
        ),
    )
    .unwrap();
    let compose_file = app.join("docker-compose.yml");
    let project = format!("{APP}{}", std::process::id());

    println!(
        "load average before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    // Declared before the server and the compose project so that it tears
    // them down whatever happens below.
    let mut guard = Guard {
        server: None,
        compose: None,
        data: data.clone(),
    };

    // --- wharf -------------------------------------------------------------
    let (server, proxy) = common::start_server(&wharf, &data, tmp.path());
    guard.server = Some(server);
    let cli = |args: &[&str]| -> Output {
        common::cli(&wharf, &data, tmp.path(), args)
            .output()
            .unwrap()
    };
    let app_str = app.to_str().unwrap();
    eprintln!("== wharf: first deploy (builds the image)");
    let out = cli(&["deploy", app_str, "--json"]);
    assert!(
        out.status.success(),
        "first deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let every = (deploys / rollbacks.max(1)).max(1);
    let mut plan = Vec::new();
    let mut planned_rollbacks = 0;
    for i in 1..=deploys {
        plan.push(Op::Deploy(i));
        if planned_rollbacks < rollbacks && i % every == 0 {
            planned_rollbacks += 1;
            plan.push(Op::Rollback(planned_rollbacks));
        }
    }
    let recreates = recreates.unwrap_or(deploys + planned_rollbacks);
    eprintln!(
        "== wharf: {deploys} deploys, {planned_rollbacks} rollbacks under {rate} req/s on {proxy}"
    );
    let wharf_run = measure(&runtime, proxy, rate, &plan, |op| {
        let out = match op {
            Op::Deploy(i) => cli(&[
                "deploy",
                app_str,
                "--json",
                "--env",
                &format!("HELLO_MESSAGE=deploy-{i}"),
            ]),
            Op::Rollback(_) => cli(&["rollback", "--json"]),
            Op::Recreate(_) => unreachable!(),
        };
        let release = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["release"].as_i64());
        match (out.status.success(), release) {
            (true, Some(r)) => Ok(format!("release {r}")),
            _ => Err(format!(
                "exit {}: {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 5)
            )),
        }
    });
    // SIGTERM now, so wharf's containers are gone before the contrast.
    guard.server = None;
    guard.remove_wharf_objects();

    // --- docker-compose ---------------------------------------------------
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &compose_file,
        format!(
            "version: \"3\"\nservices:\n  web:\n    build: .\n    image: {COMPOSE_IMAGE}\n    \
             environment:\n      PORT: \"3000\"\n      HELLO_HOST: \"0.0.0.0\"\n      \
             HELLO_MESSAGE: \"${{HELLO_MESSAGE:-0}}\"\n    \
             ports:\n      - \"127.0.0.1:{port}:3000\"\n"
        ),
    )
    .unwrap();
    let compose = |args: &[&str], message: &str| -> Output {
        Command::new("docker-compose")
            .arg("-f")
            .arg(&compose_file)
            .args(["-p", &project])
            .args(args)
            .env("HELLO_MESSAGE", message)
            .output()
            .expect("running docker-compose")
    };
    eprintln!("== docker-compose: up -d --build (project {project})");
    guard.compose = Some((compose_file.clone(), project.clone()));
    let out = compose(&["up", "-d", "--build"], "0");
    assert!(
        out.status.success(),
        "docker-compose up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_answer(published, Duration::from_secs(60)),
        "the compose service does not answer on {published}"
    );
    let plan: Vec<Op> = (1..=recreates).map(Op::Recreate).collect();
    eprintln!("== docker-compose: {recreates} recreates under {rate} req/s on {published}");
    let compose_run = measure(&runtime, published, rate, &plan, |op| {
        let Op::Recreate(i) = op else { unreachable!() };
        let out = compose(&["up", "-d", "--force-recreate"], &format!("recreate-{i}"));
        if !out.status.success() {
            return Err(format!(
                "exit {}: {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 5)
            ));
        }
        // Done when the new container answers, as a wharf deploy is done
        // when the new release serves.
        if wait_answer(published, Duration::from_secs(60)) {
            Ok("answers".into())
        } else {
            Err("no answer within 60 s".into())
        }
    });
    eprintln!("== docker-compose: down --rmi all -v");
    let out = compose(&["down", "--rmi", "all", "-v"], "0");
    if out.status.success() {
        guard.compose = None;
    } else {
        eprintln!(
            "docker-compose down failed (the guard retries): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(guard);

    // --- report -------------------------------------------------------------
    println!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!();
    println!(
        "| system | operations | requests | failed | failed % | median time / op | max time / op |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let wharf_ops = format!(
        "{} deploys + {} rollbacks",
        wharf_run.count(|o| matches!(o, Op::Deploy(_))),
        wharf_run.count(|o| matches!(o, Op::Rollback(_)))
    );
    wharf_run.row("wharf (docker runtime)", &wharf_ops);
    compose_run.row(
        "docker-compose up -d --force-recreate",
        &format!("{} recreates", compose_run.ops.len()),
    );
    println!();
    let (dm, dx) = stats(&wharf_run.times(|o| matches!(o, Op::Deploy(_))));
    let (rm, rx) = stats(&wharf_run.times(|o| matches!(o, Op::Rollback(_))));
    println!(
        "wharf deploys: median {dm:.2} s, max {dx:.2} s; rollbacks: median {rm:.2} s, max {rx:.2} s"
    );
    if recreates != deploys + planned_rollbacks {
        println!(
            "note: compose was recreated {recreates} times, not {} (fewer to save time)",
            deploys + planned_rollbacks
        );
    }
    let (wf, cf) = (wharf_run.failed(), compose_run.failed());
    let ratio = if wf == 0 {
        if cf == 0 {
            "neither failed a request".to_owned()
        } else {
            format!("compose failed {cf} requests, wharf none")
        }
    } else {
        format!(
            "compose failed {:.1}× as many requests per operation as wharf",
            (cf as f64 / compose_run.ops.len().max(1) as f64)
                / (wf as f64 / wharf_run.ops.len().max(1) as f64)
        )
    };
    let (wm, _) = stats(&wharf_run.times(|_| true));
    let (cm, _) = stats(&compose_run.times(|_| true));
    println!(
        "ratio: {ratio}; median time per operation wharf/compose = {:.2}",
        wm / cm.max(f64::EPSILON)
    );
    println!(
        "compose outage per recreate (first to last failed request): median {:.2} s, max {:.2} s",
        stats(&compose_run.outages()).0,
        stats(&compose_run.outages()).1
    );
    println!();
    wharf_run.failures("wharf");
    compose_run.failures("compose");
    let failed_ops = wharf_run.ops.iter().filter(|o| o.result.is_err()).count()
        + compose_run.ops.iter().filter(|o| o.result.is_err()).count();
    if failed_ops > 0 {
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Deploy(u32),
    Rollback(u32),
    Recreate(u32),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Deploy(i) => write!(f, "deploy {i}"),
            Op::Rollback(i) => write!(f, "rollback {i}"),
            Op::Recreate(i) => write!(f, "recreate {i}"),
        }
    }
}

/// One operation of a run: what, when (since the load's start), and how it
/// ended.
#[derive(Debug)]
struct Done {
    op: Op,
    start: Duration,
    end: Duration,
    result: Result<String, String>,
}

/// A finished run: its operations and every request of its load.
#[derive(Debug)]
struct Run {
    ops: Vec<Done>,
    samples: Vec<Sample>,
}

/// Runs `plan` with `run` one operation after the other under an open-loop
/// load of `rate` req/s on `addr`, from `SETTLE` before the first to
/// `SETTLE` after the last.
fn measure(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    rate: u32,
    plan: &[Op],
    mut run: impl FnMut(Op) -> Result<String, String>,
) -> Run {
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let load = runtime.spawn(open_loop(addr, rate, start, samples.clone(), stop.clone()));
    std::thread::sleep(SETTLE);
    let mut ops = Vec::new();
    for &op in plan {
        let t0 = start.elapsed();
        let result = run(op);
        let t1 = start.elapsed();
        let failed_so_far = samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.failed())
            .count();
        eprintln!(
            "  {op}: {:.2} s, {} (failed requests so far: {failed_so_far})",
            (t1 - t0).as_secs_f64(),
            match &result {
                Ok(r) => r.clone(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        ops.push(Done {
            op,
            start: t0,
            end: t1,
            result,
        });
    }
    std::thread::sleep(SETTLE);
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(load).unwrap();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Run { ops, samples }
}

impl Run {
    fn failed(&self) -> usize {
        self.samples.iter().filter(|s| s.failed()).count()
    }

    fn count(&self, which: impl Fn(&Op) -> bool) -> usize {
        self.ops.iter().filter(|d| which(&d.op)).count()
    }

    fn times(&self, which: impl Fn(&Op) -> bool) -> Vec<f64> {
        self.ops
            .iter()
            .filter(|d| which(&d.op))
            .map(|d| (d.end - d.start).as_secs_f64())
            .collect()
    }

    fn row(&self, system: &str, ops: &str) {
        let (median, max) = stats(&self.times(|_| true));
        let total = self.samples.len();
        let failed = self.failed();
        println!(
            "| {system} | {ops} | {total} | {failed} | {:.3} % | {median:.2} s | {max:.2} s |",
            100.0 * failed as f64 / total.max(1) as f64
        );
    }

    /// The operation a request sent at `t` ran under, or where it fell.
    fn during(&self, t: Duration) -> String {
        match self.ops.iter().find(|d| t >= d.start && t <= d.end) {
            Some(d) => d.op.to_string(),
            None => match self.ops.iter().rev().find(|d| d.end < t) {
                Some(d) => format!("after {}", d.op),
                None => "before the first operation".into(),
            },
        }
    }

    /// Per operation with failed requests: from the first to the last
    /// failed request sent during it, in seconds.
    fn outages(&self) -> Vec<f64> {
        self.ops
            .iter()
            .filter_map(|d| {
                let failed: Vec<Duration> = self
                    .samples
                    .iter()
                    .filter(|s| s.failed() && s.sent >= d.start && s.sent <= d.end)
                    .map(|s| s.sent)
                    .collect();
                let (first, last) = (failed.iter().min()?, failed.iter().max()?);
                Some((*last - *first).as_secs_f64())
            })
            .collect()
    }

    /// Prints failed operations, then failed requests by operation and by
    /// error (at most 20 lines each).
    fn failures(&self, name: &str) {
        for d in self.ops.iter().filter(|d| d.result.is_err()) {
            println!("{name}: {} failed: {:?}", d.op, d.result);
        }
        // (where, failed requests, first one sent), in time order.
        let mut by_op: Vec<(String, usize, Duration)> = Vec::new();
        let mut by_error: HashMap<String, usize> = HashMap::new();
        for s in &self.samples {
            if let Some(e) = &s.error {
                let where_ = self.during(s.sent);
                match by_op.iter_mut().find(|(w, _, _)| *w == where_) {
                    Some((_, n, _)) => *n += 1,
                    None => by_op.push((where_, 1, s.sent)),
                }
                *by_error.entry(e.clone()).or_default() += 1;
            }
        }
        if by_op.is_empty() {
            println!("{name}: no failed requests");
            return;
        }
        println!(
            "{name}: failed requests in {} of {} operations; by operation (first failure since load start):",
            by_op.len(),
            self.ops.len()
        );
        for (w, n, t) in by_op.iter().take(20) {
            println!("  {w}: {n} (first at {:.2} s)", t.as_secs_f64());
        }
        if by_op.len() > 20 {
            println!("  … {} more", by_op.len() - 20);
        }
        let mut by_error: Vec<_> = by_error.into_iter().collect();
        by_error.sort_by_key(|e| std::cmp::Reverse(e.1));
        println!("{name}: by error:");
        for (e, n) in by_error.iter().take(20) {
            println!("  {n} × {e}");
        }
    }
}

/// (median, max) of `v`; zeros when empty.
fn stats(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    (median, v[v.len() - 1])
}

/// Whether `GET /up` on `addr` answers 2xx within `within`, trying every
/// 50 ms.
fn wait_answer(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let probe = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /up HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)?;
        Ok(answer.starts_with(b"HTTP/1.1 2"))
    };
    while Instant::now() < deadline {
        if probe().unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Tears down, however the benchmark ends: the compose project (`down
/// --rmi all -v`), the wharf server (SIGTERM: it stops its containers),
/// then whatever of wharf's is left in the engine (containers of the data
/// dir, images `wharf/benchdeploy:*`, volumes `wharf-benchdeploy-*`, network
/// `wharf-benchdeploy`) and of the compose project.
#[derive(Debug)]
struct Guard {
    server: Option<Server>,
    /// The compose file and project, while the project may exist.
    compose: Option<(PathBuf, String)>,
    data: PathBuf,
}

impl Guard {
    /// Removes wharf's objects from the engine (the server must be
    /// stopped first, or it would restart its containers).
    fn remove_wharf_objects(&self) {
        if let Err(e) = engine_cleanup(&self.data, None) {
            eprintln!("cleaning wharf's containers, images and network failed: {e}");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let project = self.compose.take().map(|(file, project)| {
            let status = Command::new("docker-compose")
                .arg("-f")
                .arg(&file)
                .args(["-p", &project, "down", "--rmi", "all", "-v"])
                .env("HELLO_MESSAGE", "0")
                .output();
            if !status.as_ref().is_ok_and(|o| o.status.success()) {
                eprintln!("docker-compose down failed; removing the project with the engine API");
            }
            project
        });
        self.server = None;
        if let Err(e) = engine_cleanup(&self.data, project.as_deref()) {
            eprintln!("cleaning the engine failed: {e}");
        }
    }
}

/// Removes from the engine what the run left: containers labelled with
/// `data` (wharf's), images `wharf/benchdeploy:*`, volumes
/// `wharf-benchdeploy-*`, network `wharf-benchdeploy`, and, given a compose
/// project, its containers, network and image.
fn engine_cleanup(data: &Path, project: Option<&str>) -> Result<(), bollard::errors::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the cleanup");
    rt.block_on(async {
        let docker = Docker::connect_with_local_defaults()?;
        let mut labels = vec![format!("wharf.data-dir={}", data.display())];
        if let Some(p) = project {
            labels.push(format!("com.docker.compose.project={p}"));
        }
        let remove = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        for label in labels {
            let filters = HashMap::from([("label".to_string(), vec![label])]);
            let list = docker
                .list_containers(Some(
                    ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await?;
            for c in list {
                if let Some(id) = c.id {
                    let _ = docker.remove_container(&id, Some(remove.clone())).await;
                }
            }
        }
        let mut references = vec![format!("wharf/{APP}")];
        if project.is_some() {
            references.push(COMPOSE_IMAGE.to_owned());
        }
        for reference in references {
            let filters = HashMap::from([("reference".to_string(), vec![reference])]);
            let images = docker
                .list_images(Some(
                    ListImagesOptionsBuilder::new().filters(&filters).build(),
                ))
                .await?;
            for image in images {
                let _ = docker
                    .remove_image(
                        &image.id,
                        Some(RemoveImageOptionsBuilder::new().force(true).build()),
                        None,
                    )
                    .await;
            }
        }
        let volumes = docker
            .list_volumes(Some(ListVolumesOptionsBuilder::new().build()))
            .await?
            .volumes
            .unwrap_or_default();
        for v in volumes {
            if v.name.starts_with(&format!("wharf-{APP}-")) {
                let _ = docker
                    .remove_volume(&v.name, None::<RemoveVolumeOptions>)
                    .await;
            }
        }
        let _ = docker.remove_network(&format!("wharf-{APP}")).await;
        if let Some(p) = project {
            let _ = docker.remove_network(&format!("{p}_default")).await;
        }
        Ok(())
    })
}
