//! Canary benchmark (not a test): how fast does wharf pull back a bad
//! release, and what does it cost the clients?
//!
//! Starts `wharf server` on a fresh data dir, deploys the hello example as
//! release 1, puts a constant open-loop load on the proxy (RATE req/s over
//! keep-alive connections), then deploys release 2 as a canary at 10 % with
//! `HELLO_FAILURE_RATE=0.2` and the default analysis rules. Reports the time
//! from the canary step starting to the rollback decision (from the deploy's
//! own progress lines) and the share of all client requests that failed in
//! the incident window (canary start to decision + 1 s).
//!
//! Usage: `bench_canary <wharf-bin> <hello-bin> [rate] [weight] [failure-rate]`
//! (see `bench/canary/run.sh`).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Sample, open_loop};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_canary <wharf-bin> <hello-bin> [rate] [weight] [failure-rate]";
    let wharf = PathBuf::from(args.first().expect(usage));
    let hello = PathBuf::from(args.get(1).expect(usage));
    let rate: u32 = args.get(2).map_or(200, |r| r.parse().expect(usage));
    let weight: u32 = args.get(3).map_or(10, |w| w.parse().expect(usage));
    let failure: f64 = args.get(4).map_or(0.2, |f| f.parse().expect(usage));

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("wharf.toml"),
        format!(
            "name = \"bench\"\n\n[processes.web]\ncommand = \"{}\"\ninstances = 2\nhttp = {{ path = \"/\" }}\n\
             health = {{ path = \"/up\", interval = \"200ms\", timeout = \"1s\", threshold = 2 }}\n\n\
             [deploy]\nstrategy = \"canary\"\nsteps = [{{ weight = {weight}, pause = \"5m\" }}]\n",
            hello.display()
        ),
    )
    .unwrap();

    // Stopped with its instances when the benchmark ends, however it ends.
    let (server, proxy) = common::start_server(&wharf, &data, tmp.path());
    let cli = |args: &[&str]| common::cli(&wharf, &data, tmp.path(), args);
    let out = cli(&["deploy", app.to_str().unwrap()]).output().unwrap();
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
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let start = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = runtime.spawn(open_loop(proxy, rate, start, samples.clone(), stop.clone()));

    std::thread::sleep(Duration::from_secs(5));
    let env = format!("HELLO_FAILURE_RATE={failure}");
    let mut deploy = cli(&["deploy", app.to_str().unwrap(), "--env", &env])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut canary_at, mut decided_at) = (None, None);
    for line in BufReader::new(deploy.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let t = start.elapsed();
        if line.contains("- canary: step 1") {
            canary_at = Some(t);
        }
        if line.contains("- roll back: ") {
            decided_at = Some(t);
        }
        if line.contains("rolled back") || line.starts_with("error") {
            println!("deploy said: {line}");
        }
    }
    let rolled_back = !deploy.wait().unwrap().success();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    runtime.block_on(load).unwrap();
    drop(server);

    let samples = samples.lock().unwrap();
    let (Some(canary_at), Some(decided_at)) = (canary_at, decided_at) else {
        println!(
            "no rollback happened (rolled_back={rolled_back}); see {}",
            tmp.path().display()
        );
        std::process::exit(1);
    };
    let window_end = decided_at + Duration::from_secs(1);
    let in_window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= canary_at && s.sent <= window_end)
        .collect();
    let failed = in_window.iter().filter(|s| s.failed()).count();
    let total_failed = samples.iter().filter(|s| s.failed()).count();
    let detect = decided_at - canary_at;
    println!();
    println!("| measure | value | target |");
    println!("| --- | ---: | ---: |");
    println!(
        "| load | {rate} req/s, canary weight {weight}%, canary failing {:.0}% | |",
        failure * 100.0
    );
    println!(
        "| canary start → rollback decision | {:.2} s | ≤ 5 s |",
        detect.as_secs_f64()
    );
    println!(
        "| failed / all requests in the incident window | {failed} / {} = {:.2} % | ≤ 1 % |",
        in_window.len(),
        100.0 * failed as f64 / in_window.len().max(1) as f64
    );
    println!(
        "| failed / all requests over the whole run | {total_failed} / {} = {:.2} % | |",
        samples.len(),
        100.0 * total_failed as f64 / samples.len().max(1) as f64
    );
}
