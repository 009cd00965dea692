//! Progressive delivery: canary steps and the blue-green bake, with live
//! analysis and automatic rollback.
//!
//! * **canary** — after the new release is healthy, each step of
//!   `[deploy] steps` gives it a share of the traffic (one table swap per
//!   weight change, recorded in the store first), while a [`Judge`] compares
//!   its recent requests with the stable release's every
//!   `analysis.interval`. A step with a pause moves on when the pause ends;
//!   one without waits for [`Control::Promote`]. After the last step the
//!   new release takes all traffic through the normal switch.
//! * **blue-green with `bake`** — the switch happens at once, but the old
//!   release's instances keep running for `bake` while the new one is
//!   judged; a failure switches back to the still-warm old instances.
//! * A failed check beyond tolerance, or [`Control::Abort`], rolls back:
//!   the new release leaves the table in one swap, its instances stop, the
//!   deploy fails with the numbers that decided it, and `notify` (if set)
//!   gets a JSON POST.
//!
//! The stable release's stats are the baseline for the relative rules; the
//! proxy keeps both releases' sliding windows.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use wharf_config::{AnalysisSettings, CanaryStep, Strategy};
use wharf_proxy::stats::WindowStats;
use wharf_store::{EventLevel, ReleaseMetricsRow};

use crate::analysis::{Judge, Rules, Verdict, Violation};
use crate::deploy::{Run, humantime_fmt};
use crate::live::LiveRelease;
use crate::progress::Progress;
use crate::step::{Step, failpoint};
use crate::{DeployError, Engine};

/// A hand on a canary in progress (`wharf promote`, `wharf abort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Go to the next step now (or to 100% after the last one).
    Promote,
    /// Roll the new release back now.
    Abort,
}

/// Recent traffic of one release, as `wharf status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseTraffic {
    pub release: i64,
    /// Share of new requests, 0-100.
    pub weight: u32,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl ReleaseTraffic {
    fn new(release: i64, weight: u32, s: &WindowStats) -> ReleaseTraffic {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        ReleaseTraffic {
            release,
            weight,
            requests: s.requests,
            errors: s.errors,
            error_rate: s.error_rate(),
            p50_ms: ms(s.p50()),
            p99_ms: ms(s.p99()),
        }
    }
}

/// Where a canary or bake stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressiveStatus {
    pub deploy: i64,
    /// `canary` or `bake`.
    pub strategy: String,
    /// 1-based step, and the number of steps (bake: 1 of 1).
    pub step: usize,
    pub steps: usize,
    /// Waiting for `wharf promote`.
    pub waiting_for_promote: bool,
    pub stable: ReleaseTraffic,
    pub candidate: ReleaseTraffic,
    /// The last check, in words.
    pub last_check: Option<String>,
}

/// Per app, while a canary or bake runs.
#[derive(Debug)]
pub(crate) struct InProgress {
    control: mpsc::UnboundedSender<Control>,
    status: Option<ProgressiveStatus>,
}

/// How and why, for a rollback by `wharf abort`.
const ABORTED: (&str, &str) = ("by hand (`wharf abort`)", "aborted");

/// Where traffic goes when a new release is rolled back.
enum Back {
    /// Canary: drop its group; the stable release takes everything again.
    DropCanary,
    /// Bake: switch back to the old release's still-warm instances.
    SwitchTo(Arc<LiveRelease>),
}

/// How an observation period ended.
enum Observed {
    /// The pause ran out (or, for a bake, the bake did).
    Elapsed,
    Promoted,
    Aborted,
    Failed(Vec<Violation>),
}

/// The analysis rules of a release's config.
fn rules(a: &AnalysisSettings) -> Rules {
    Rules {
        max_error_rate: a.max_error_rate,
        max_error_rate_increase: a.max_error_rate_increase,
        min_errors: a.min_errors,
        max_p99_ratio: a.max_p99_ratio,
        p99_floor: a.p99_floor,
        min_requests: a.min_requests,
        failures_tolerated: a.failures_tolerated,
        interval: a.interval,
    }
}

impl Engine {
    /// Makes a healthy new release live according to its strategy.
    pub(crate) async fn go_live(
        self: &Arc<Self>,
        run: &mut Run,
        new: Arc<LiveRelease>,
    ) -> Result<usize, DeployError> {
        let stable = self.routes.serving(&run.app.name);
        match (&new.config.deploy.strategy, stable) {
            // Nothing to compare with on a first deploy: switch.
            (_, None) => self.switch_and_retire(run, new).await,
            (Strategy::Canary { steps }, Some(stable)) => {
                let steps = steps.clone();
                self.canary(run, stable, new, &steps).await
            }
            (Strategy::BlueGreen { bake }, Some(stable)) if !bake.is_zero() => {
                let bake = *bake;
                self.bake(run, stable, new, bake).await
            }
            (Strategy::BlueGreen { .. }, Some(_)) => self.switch_and_retire(run, new).await,
        }
    }

    async fn canary(
        self: &Arc<Self>,
        run: &mut Run,
        stable: Arc<LiveRelease>,
        new: Arc<LiveRelease>,
        steps: &[CanaryStep],
    ) -> Result<usize, DeployError> {
        let app = run.app.name.clone();
        self.store.set_deploy_strategy(run.deploy, "canary")?;
        let analysis = new.config.deploy.analysis.clone();
        let mut judge = Judge::new(rules(&analysis));
        let mut controls = self.open_controls(&app);
        for (i, step) in steps.iter().enumerate() {
            let pause = if i == 0 && run.pause {
                None
            } else {
                step.pause
            };
            let how_long = pause.map_or_else(
                || "until `wharf promote`".to_owned(),
                |p| format!("for {}", humantime_fmt(p)),
            );
            let detail = format!(
                "step {} of {}: {}% to release {} {how_long}",
                i + 1,
                steps.len(),
                step.weight,
                new.number
            );
            // Recorded before the table that applies it is swapped in.
            self.store
                .set_weight(run.deploy, Step::Canary.as_str(), step.weight, &detail)?;
            self.routes.set_canary(&app, new.clone(), step.weight);
            run.send(Progress::Step {
                step: Step::Canary,
                detail: Some(detail),
            });
            failpoint(Step::Canary, run.release).await;
            let at = (i + 1, steps.len());
            match self
                .observe(
                    run,
                    &stable,
                    &new,
                    step.weight,
                    &mut judge,
                    &analysis,
                    pause,
                    at,
                    &mut controls,
                )
                .await?
            {
                Observed::Elapsed | Observed::Promoted => {}
                Observed::Aborted => {
                    let (how, why) = ABORTED;
                    return self
                        .roll_back(run, &new, Back::DropCanary, how, why.into(), None)
                        .await;
                }
                Observed::Failed(v) => {
                    let why = reason(&v, &self.judge_numbers(&app, &stable, &new, &analysis));
                    return self
                        .roll_back(run, &new, Back::DropCanary, "automatically", why, Some(v))
                        .await;
                }
            }
        }
        self.close_controls(&app);
        self.switch_and_retire(run, new).await
    }

    async fn bake(
        self: &Arc<Self>,
        run: &mut Run,
        stable: Arc<LiveRelease>,
        new: Arc<LiveRelease>,
        bake: Duration,
    ) -> Result<usize, DeployError> {
        let app = run.app.name.clone();
        self.store.set_deploy_strategy(run.deploy, "blue-green")?;
        self.store.switch(run.deploy, run.app.id, new.number)?;
        run.switched = true;
        let old = self.routes.switch(&app, new.clone()).unwrap_or(stable);
        run.send(Progress::Step {
            step: Step::Switched,
            detail: Some(format!("release {} is serving", new.number)),
        });
        failpoint(Step::Switched, run.release).await;
        let detail = format!(
            "release {} kept warm for {} while release {} is analysed",
            old.number,
            humantime_fmt(bake),
            new.number
        );
        run.step(self, Step::Baking, Some(detail)).await?;
        let analysis = new.config.deploy.analysis.clone();
        let mut judge = Judge::new(rules(&analysis));
        let mut controls = self.open_controls(&app);
        match self
            .observe(
                run,
                &old,
                &new,
                100,
                &mut judge,
                &analysis,
                Some(bake),
                (1, 1),
                &mut controls,
            )
            .await?
        {
            Observed::Elapsed | Observed::Promoted => {
                self.close_controls(&app);
                self.retire(run, old).await
            }
            Observed::Aborted => {
                let (how, why) = ABORTED;
                self.roll_back(run, &new, Back::SwitchTo(old), how, why.into(), None)
                    .await
            }
            Observed::Failed(v) => {
                let why = reason(&v, &self.judge_numbers(&app, &old, &new, &analysis));
                self.roll_back(
                    run,
                    &new,
                    Back::SwitchTo(old),
                    "automatically",
                    why,
                    Some(v),
                )
                .await
            }
        }
    }

    /// Judges `new` against `stable` every interval until the pause ends,
    /// a control arrives, or the judge says roll back.
    #[allow(clippy::too_many_arguments)]
    async fn observe(
        &self,
        run: &Run,
        stable: &LiveRelease,
        new: &LiveRelease,
        weight: u32,
        judge: &mut Judge,
        analysis: &AnalysisSettings,
        pause: Option<Duration>,
        (step, steps): (usize, usize),
        controls: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Observed, DeployError> {
        let app = &run.app.name;
        let deadline = pause.map(|p| tokio::time::Instant::now() + p);
        let mut tick = tokio::time::interval(analysis.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let (s, c) = self.judge_numbers(app, stable, new, analysis);
                    let verdict = judge.observe(&s, &c);
                    if let Ok(json) = serde_json::to_string(&verdict) {
                        self.store.set_verdict(run.deploy, &json)?;
                    }
                    let last_check = match &verdict {
                        Verdict::Continue { check } => check.to_string(),
                        Verdict::Rollback { .. } => verdict.to_string(),
                    };
                    self.set_status(app, ProgressiveStatus {
                        deploy: run.deploy,
                        strategy: if steps == 1 && weight == 100 { "bake".into() } else { "canary".into() },
                        step,
                        steps,
                        waiting_for_promote: deadline.is_none(),
                        stable: ReleaseTraffic::new(stable.number, 100 - weight.min(100), &s),
                        candidate: ReleaseTraffic::new(new.number, weight, &c),
                        last_check: Some(last_check),
                    });
                    if let Verdict::Rollback { violations, .. } = verdict {
                        return Ok(Observed::Failed(violations));
                    }
                }
                () = sleep_until(deadline) => return Ok(Observed::Elapsed),
                control = controls.recv() => match control {
                    Some(Control::Promote) => return Ok(Observed::Promoted),
                    Some(Control::Abort) => return Ok(Observed::Aborted),
                    None => {}
                },
            }
        }
    }

    /// The two windows the judge compares.
    fn judge_numbers(
        &self,
        app: &str,
        stable: &LiveRelease,
        new: &LiveRelease,
        a: &AnalysisSettings,
    ) -> (WindowStats, WindowStats) {
        let proxy = self.proxy();
        (
            proxy.release_stats(app, stable.number as u64, a.window),
            proxy.release_stats(app, new.number as u64, a.window),
        )
    }

    /// Takes traffic away from `new` in one table swap (recorded first),
    /// then stops its instances, and fails the deploy with `reason`.
    #[allow(clippy::too_many_arguments)]
    async fn roll_back(
        self: &Arc<Self>,
        run: &mut Run,
        new: &Arc<LiveRelease>,
        back: Back,
        how: &'static str,
        reason: String,
        violations: Option<Vec<Violation>>,
    ) -> Result<usize, DeployError> {
        let app = run.app.name.clone();
        self.close_controls(&app);
        let detail = format!("rolled back {how}: {reason}");
        self.store
            .set_weight(run.deploy, Step::RollingBack.as_str(), 0, &detail)?;
        let serving = match back {
            Back::DropCanary => {
                self.routes.clear_canary(&app);
                run.previous.unwrap_or_default()
            }
            Back::SwitchTo(old) => {
                let number = old.number;
                self.store.switch(run.deploy, run.app.id, number)?;
                self.routes.switch(&app, old);
                // The switch is undone: the new release never served for
                // good, and is failed and cleaned up like any other.
                run.switched = false;
                number
            }
        };
        run.send(Progress::Step {
            step: Step::RollingBack,
            detail: Some(format!("{how}: {reason}")),
        });
        self.retire_new(run, new).await;
        self.after_rollback(run, new.number, how, &reason, serving, violations)
            .await
    }

    /// Drains and stops a rolled-back release's instances.
    async fn retire_new(&self, run: &Run, new: &LiveRelease) {
        wharf_proxy::drain(&new.backends(), new.config.deploy.drain_timeout).await;
        let specs: Vec<_> = new.instances.iter().map(|i| i.spec.clone()).collect();
        self.stop_instances(&specs).await;
        self.refresh_instance_gauge(&run.app);
    }

    async fn after_rollback(
        &self,
        run: &Run,
        release: i64,
        how: &'static str,
        reason: &str,
        serving: i64,
        violations: Option<Vec<Violation>>,
    ) -> Result<usize, DeployError> {
        // The failure itself is recorded once, by `Engine::run`.
        self.close_controls(&run.app.name);
        if let (Some(violations), Some(url)) = (&violations, run.notify.as_deref()) {
            let body = serde_json::json!({
                "event": "rollback",
                "app": run.app.name,
                "release": release,
                "serving": serving,
                "deploy": run.deploy,
                "reason": reason,
                "violations": violations,
            });
            let outcome = match notify(url, &body).await {
                Ok(status) => format!("notified {url}: HTTP {status}"),
                Err(e) => format!("could not notify {url}: {e}"),
            };
            self.store.add_event(
                Some(run.app.id),
                Some(run.deploy),
                EventLevel::Info,
                &outcome,
            )?;
        }
        Err(DeployError::RolledBack {
            app: run.app.name.clone(),
            release,
            how,
            reason: reason.to_owned(),
            serving,
        })
    }

    fn open_controls(&self, app: &str) -> mpsc::UnboundedReceiver<Control> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut map = self.progressive.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            app.to_owned(),
            InProgress {
                control: tx,
                status: None,
            },
        );
        rx
    }

    fn close_controls(&self, app: &str) {
        self.progressive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(app);
    }

    fn set_status(&self, app: &str, status: ProgressiveStatus) {
        if let Some(p) = self
            .progressive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(app)
        {
            p.status = Some(status);
        }
    }

    /// Where the canary or bake of `app` stands, if one runs.
    pub fn progressive_status(&self, app: &str) -> Option<ProgressiveStatus> {
        self.progressive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(app)
            .and_then(|p| p.status.clone())
    }

    /// `wharf promote` / `wharf abort`.
    pub fn control(&self, app: &str, control: Control) -> Result<(), DeployError> {
        let map = self.progressive.lock().unwrap_or_else(|e| e.into_inner());
        let sent = map
            .get(app)
            .is_some_and(|p| p.control.send(control).is_ok());
        if sent {
            Ok(())
        } else {
            Err(DeployError::NoCanary {
                app: app.to_owned(),
            })
        }
    }

    /// Recent traffic of each routed release of `app` (for `wharf status`).
    pub fn traffic(&self, app: &str, window: Duration) -> Vec<ReleaseTraffic> {
        self.routes
            .routed(app)
            .into_iter()
            .map(|(release, weight)| {
                ReleaseTraffic::new(
                    release,
                    weight,
                    &self.proxy().release_stats(app, release as u64, window),
                )
            })
            .collect()
    }
}

/// The sentence that explains a rollback: every broken rule with its numbers.
fn reason(violations: &[Violation], (stable, canary): &(WindowStats, WindowStats)) -> String {
    let rules: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!(
        "{} (new release: {} requests, {} errors; stable: {} requests, {} errors)",
        rules.join("; "),
        canary.requests,
        canary.errors,
        stable.requests,
        stable.errors
    )
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// POSTs `body` as JSON to an `http://` URL; returns the status code.
async fn notify(url: &str, body: &serde_json::Value) -> Result<u16, String> {
    use http_body_util::{BodyExt, Full};
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// notify URLs are supported so far".into());
    }
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, host.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "wharf")
            .body(Full::new(bytes::Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Ok::<u16, String>(status)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out after 5s".to_owned())?
}

/// Keeps each routed release's requests in the store at 10 s resolution.
pub(crate) async fn record_release_metrics(engine: Weak<Engine>) {
    const BUCKET: Duration = Duration::from_secs(10);
    let mut tick = tokio::time::interval(BUCKET);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let now = wharf_store::now_ms();
        let bucket_ms = now - now.rem_euclid(BUCKET.as_millis() as i64) - BUCKET.as_millis() as i64;
        let Ok(apps) = engine.store.apps() else {
            continue;
        };
        for app in apps {
            for t in engine.traffic(&app.name, BUCKET) {
                if t.requests == 0 {
                    continue;
                }
                let row = ReleaseMetricsRow {
                    release: t.release,
                    bucket_ms,
                    requests: t.requests as i64,
                    errors: t.errors as i64,
                    p50_ms: t.p50_ms,
                    p99_ms: t.p99_ms,
                };
                if let Err(e) = engine.store.add_release_metrics(app.id, &row) {
                    tracing::warn!(error = %e, "could not store release metrics");
                }
            }
        }
    }
}
