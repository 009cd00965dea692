//! Pipelines: a push to an app's watched branch, as a job. The runner
//! fetches the pushed commit with git (`fetch`), runs the app's `[ci]`
//! steps in that checkout if it has any (`ci`, each step a recorded job
//! step with its own log), and deploys the commit if every step passed
//! (the deploy's own steps follow). A newer push supersedes a waiting
//! pipeline and cancels a running one before its deploy switches, so a
//! superseded commit is never deployed.
//!
//! Each stage's outcome goes back to the forge as a commit status (the
//! pipeline's overall one, `wharf/pipeline`, and the deploy's,
//! `wharf/deploy`) when the app has a forge token: built by `wharf-forge`,
//! posted with retries by [`crate::statuses`]. A status that cannot be
//! posted is said in the job's log and does not fail the pipeline.
//!
//! The CI steps run on the host, in the checkout, or with `[ci] image =
//! "build"` in containers of the commit's image (built first, as its
//! deploy builds it: stage `ci image`), with the app's env and secrets
//! (masked in their output), `CI=true`, `WHARF_COMMIT` and `WHARF_BRANCH`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wharf_config::{AppConfig, CiImage};
use wharf_forge::{Forge, Status, StatusState};
use wharf_jobs::{JobEnd, JobId};
use wharf_runtime::CiSource;

use crate::{DeployError, DeployRequest, Engine, Progress, ProgressTx};

/// The forge token of an app, when one is set.
pub type ForgeTokens = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What pipelines need from the server.
#[derive(Clone)]
pub struct Pipelines {
    /// Where fetched commits are checked out (`<data>/sources`).
    pub sources: PathBuf,
    /// The forge API token of each app (kept by the server, mode 0600).
    pub forge_tokens: ForgeTokens,
    /// The forge API's base URL, instead of the one guessed from the
    /// clone URL (a self-hosted forge's API elsewhere).
    pub forge_api: Option<String>,
    /// This server as the forge's users reach it: statuses link to
    /// `{public_url}/v1/jobs/{id}`.
    pub public_url: Option<String>,
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines")
            .field("sources", &self.sources)
            .field("forge_api", &self.forge_api)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// What a pipeline job is given ([`crate::JobArgs::Pipeline`]), as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PipelineArgs {
    /// The forge that sent it (`github`, `gitlab`…), for statuses.
    pub forge: String,
    /// The repository's full name on the forge (`owner/name`).
    pub repo: String,
    pub clone_url: String,
    pub branch: String,
    pub commit: String,
    /// The forge's id of the webhook delivery that asked for it.
    pub delivery: String,
}

/// Where a pipeline's statuses go.
struct Reporter {
    forge: Forge,
    api: String,
    repo: String,
    sha: String,
    token: String,
    target_url: Option<String>,
}

impl Engine {
    /// Gives the engine what pipelines need. Once; later calls change nothing.
    pub fn set_pipelines(&self, pipelines: Pipelines) {
        let _ = self.pipelines.set(pipelines);
    }

    /// Runs pipeline job `job` of `app` (see the module doc).
    pub(crate) async fn pipeline_job(
        self: &Arc<Self>,
        (job, app): (JobId, &str),
        args: PipelineArgs,
        ptx: ProgressTx,
        cancel: watch::Receiver<bool>,
    ) -> JobEnd {
        let short: String = args.commit.chars().take(12).collect();
        let Some(settings) = self.pipelines.get().cloned() else {
            return fail(&ptx, "this server runs no pipelines (no sources directory)");
        };
        let reporter = self.reporter(app, &args, job, &settings, &ptx);
        let report = |state, context: &'static str, description: String| {
            post_status(reporter.as_ref(), state, context, description, &ptx)
        };
        report(
            StatusState::Running,
            "wharf/pipeline",
            format!("fetching {short}"),
        )
        .await;

        let _ = ptx.send(Progress::Stage {
            name: "fetch".into(),
            detail: Some(format!("{short} of {} ({})", args.branch, args.clone_url)),
        });
        let fetched =
            wharf_source::git::fetch(&settings.sources, &args.clone_url, &args.commit, true).await;
        let (dir, commit) = match fetched {
            Ok(x) => x,
            Err(e) => {
                let why = e.to_string();
                report(StatusState::Error, "wharf/pipeline", one_line(&why)).await;
                return fail(&ptx, &why);
            }
        };
        let config = match crate::deploy::request_config(&dir, &Default::default()) {
            Ok(c) if c.name == app => c,
            Ok(c) => {
                let why = format!(
                    "commit {short} describes app {:?} in its wharf.toml, not {app:?}",
                    c.name
                );
                report(StatusState::Failure, "wharf/pipeline", why.clone()).await;
                return fail(&ptx, &why);
            }
            Err(e) => {
                let why = format!("commit {short}: {e}");
                report(StatusState::Failure, "wharf/pipeline", one_line(&why)).await;
                return fail(&ptx, &why);
            }
        };

        if let Some(ci) = &config.ci {
            report(
                StatusState::Running,
                "wharf/pipeline",
                format!("CI of {short} running"),
            )
            .await;
            let _ = ptx.send(Progress::Stage {
                name: "ci".into(),
                detail: Some(format!("{} steps", wharf_ci::select::count(&ci.steps))),
            });
            let env = match crate::containers::app_env(&config) {
                Ok(env) => env,
                Err(e) => return fail(&ptx, &e.to_string()),
            };
            let mut opts = wharf_ci::Options::new(&dir);
            opts.secrets = config
                .secrets
                .keys()
                .filter_map(|key| env.get(key).cloned())
                .collect();
            opts.env = env.into_iter().collect();
            opts.env.push(("WHARF_COMMIT".into(), commit.clone()));
            opts.env.push(("WHARF_BRANCH".into(), args.branch.clone()));
            if ci.image == Some(CiImage::Build) {
                match self
                    .ci_image(&config, &dir, &short, &ptx, cancel.clone())
                    .await
                {
                    Ok(Some(launcher)) => opts.launcher = Some(launcher),
                    Ok(None) => return ci_cancelled(reporter.as_ref(), &short, &ptx).await,
                    Err(why) => {
                        report(StatusState::Failure, "wharf/pipeline", one_line(&why)).await;
                        return fail(&ptx, &why);
                    }
                }
            }
            opts.cancel = CancellationToken::new();
            let stop = tokio::spawn(cancel_on(cancel.clone(), opts.cancel.clone()));
            let mut sink = CiProgress { tx: ptx.clone() };
            let ran = wharf_ci::run(&ci.steps, &opts, &mut sink).await;
            stop.abort();
            let report_ci = match ran {
                Ok(r) => r,
                Err(e) => return fail(&ptx, &e.to_string()),
            };
            if report_ci.interrupted {
                return ci_cancelled(reporter.as_ref(), &short, &ptx).await;
            }
            if !report_ci.ok {
                let failed: Vec<&str> = report_ci
                    .steps
                    .iter()
                    .filter(|s| !s.ok)
                    .map(|s| s.name.as_str())
                    .collect();
                let why = format!("CI of {short} failed ({}); not deployed", failed.join(", "));
                report(StatusState::Failure, "wharf/pipeline", why.clone()).await;
                return fail(&ptx, &why);
            }
        }

        report(
            StatusState::Running,
            "wharf/deploy",
            format!("deploying {short}"),
        )
        .await;
        let req = DeployRequest {
            source_dir: dir,
            env: Default::default(),
            wait: true,
            pause: false,
            version: Some(short.clone()),
            image: None,
            source: Some(format!("git {} {commit}", args.clone_url)),
        };
        let deployed = self.deploy_job(req, ptx.clone(), cancel).await;
        match deployed {
            Ok(r) => {
                let said = format!("release {} of {short} serves", r.release);
                report(StatusState::Success, "wharf/deploy", said.clone()).await;
                report(StatusState::Success, "wharf/pipeline", said).await;
                JobEnd::succeeded()
            }
            Err(DeployError::Cancelled { .. }) => {
                let why = format!("the deploy of {short} was cancelled before it switched");
                report(StatusState::Error, "wharf/deploy", why.clone()).await;
                report(StatusState::Error, "wharf/pipeline", why.clone()).await;
                JobEnd::cancelled(Some(why))
            }
            Err(e) => {
                let why = one_line(&e.to_string());
                report(StatusState::Failure, "wharf/deploy", why.clone()).await;
                report(StatusState::Failure, "wharf/pipeline", why).await;
                JobEnd::failed(e.to_string())
            }
        }
    }

    /// `[ci] image = "build"`: builds the image of the checkout `dir` as
    /// its deploy would (the build's output in the job's log) and returns
    /// the launcher that runs each step in a container of it; `Ok(None)`
    /// when the job was cancelled meanwhile (the build is abandoned).
    async fn ci_image(
        &self,
        config: &AppConfig,
        dir: &Path,
        short: &str,
        ptx: &ProgressTx,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<Option<Arc<dyn wharf_ci::Launcher>>, String> {
        let runtime = self.runtime_for(config).await.map_err(|e| e.to_string())?;
        let build = config
            .docker
            .as_ref()
            .map(|d| crate::containers::docker_build(&d.build))
            .unwrap_or_default();
        let _ = ptx.send(Progress::Stage {
            name: "ci image".into(),
            detail: Some(format!("build image wharf/{}:ci-{short}", config.name)),
        });
        let tx = ptx.clone();
        let forward =
            crate::deploy::forward_lines(&runtime, &config.name, None, "ci-build", move |l| {
                let sent = tx.send(Progress::output(l.line)).is_ok();
                async move { sent }
            });
        let source = CiSource {
            app: config.name.clone(),
            dir: dir.to_path_buf(),
            version: short.to_owned(),
            build,
        };
        let built = tokio::select! {
            built = runtime.ci_launcher(&source) => Some(built),
            // A closed channel (never while the job runs) is no cancel.
            Ok(_) = cancel.wait_for(|c| *c) => None,
        };
        crate::deploy::finish_forwarding(Some(forward)).await;
        match built {
            None => Ok(None),
            Some(Ok(launcher)) => Ok(Some(launcher)),
            Some(Err(e)) => Err(format!("CI image of {short}: {e}")),
        }
    }

    /// Where `app`'s statuses go, or `None` (said in the job's log) when
    /// they cannot be posted.
    fn reporter(
        &self,
        app: &str,
        args: &PipelineArgs,
        job: JobId,
        settings: &Pipelines,
        ptx: &ProgressTx,
    ) -> Option<Reporter> {
        let say = |why: String| {
            let _ = ptx.send(Progress::output(format!("commit statuses: {why}")));
        };
        let Ok(forge) = args.forge.parse::<Forge>() else {
            say(format!("`{}` is not a forge wharf posts to", args.forge));
            return None;
        };
        let Some(token) = (settings.forge_tokens)(app) else {
            say(format!(
                "not posted: {app} has no forge token (`wharf hooks secret {app} --forge-token`)"
            ));
            return None;
        };
        let api = settings
            .forge_api
            .clone()
            .or_else(|| wharf_forge::default_api_base(forge, &args.clone_url));
        let Some(api) = api else {
            say(format!(
                "not posted: no {forge} API is known for {} (`wharf server --forge-api URL`)",
                args.clone_url
            ));
            return None;
        };
        Some(Reporter {
            forge,
            api,
            repo: args.repo.clone(),
            sha: args.commit.clone(),
            token,
            target_url: settings
                .public_url
                .as_ref()
                .map(|u| format!("{}/v1/jobs/{job}", u.trim_end_matches('/'))),
        })
    }
}

/// Posts one status; what came of it goes to the job's log.
async fn post_status(
    reporter: Option<&Reporter>,
    state: StatusState,
    context: &'static str,
    description: String,
    ptx: &ProgressTx,
) {
    let Some(r) = reporter else { return };
    let status = Status {
        state,
        context: context.to_owned(),
        description: Some(description),
        target_url: r.target_url.clone(),
    };
    let word = wharf_forge::state_word(r.forge, state);
    let line =
        match wharf_forge::status_request(r.forge, &r.api, &r.repo, &r.sha, &r.token, &status) {
            Err(e) => format!("commit status {context} = {word}: not posted: {e}"),
            Ok(req) => match crate::statuses::post(&req).await {
                Ok(p) if p.attempts > 1 => format!(
                    "commit status {context} = {word} posted (HTTP {}, after {} tries)",
                    p.status, p.attempts
                ),
                Ok(p) => format!(
                    "commit status {context} = {word} posted (HTTP {})",
                    p.status
                ),
                Err(e) => format!("commit status {context} = {word}: {e}"),
            },
        };
    let _ = ptx.send(Progress::output(line));
}

/// Ends a pipeline whose CI (or its image's build) was cancelled.
async fn ci_cancelled(reporter: Option<&Reporter>, short: &str, ptx: &ProgressTx) -> JobEnd {
    let status = format!("CI of {short} cancelled");
    post_status(reporter, StatusState::Error, "wharf/pipeline", status, ptx).await;
    let message = format!(
        "CI of {short} was cancelled (a newer push, or `wharf job cancel`); nothing was deployed"
    );
    let _ = ptx.send(Progress::finished(false, message.clone()));
    JobEnd::cancelled(Some(message))
}

/// Ends a pipeline as failed, saying `why`.
fn fail(ptx: &ProgressTx, why: &str) -> JobEnd {
    let _ = ptx.send(Progress::finished(false, why));
    JobEnd::failed(why)
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// Cancels the CI run once the job is asked to stop.
async fn cancel_on(mut cancel: watch::Receiver<bool>, token: CancellationToken) {
    if cancel.wait_for(|c| *c).await.is_ok() {
        token.cancel();
    }
}

/// A CI run's events as the job's progress.
struct CiProgress {
    tx: ProgressTx,
}

impl wharf_ci::Sink for CiProgress {
    fn step_started(&mut self, step: &wharf_ci::StepStart<'_>) {
        let _ = self.tx.send(Progress::CiStep {
            name: step.name.to_owned(),
            group: step.group.map(str::to_owned),
            run: step.run.to_owned(),
        });
    }

    fn output(&mut self, step: &str, line: &str) {
        let _ = self.tx.send(Progress::CiOutput {
            step: step.to_owned(),
            line: line.to_owned(),
        });
    }

    fn step_finished(&mut self, step: &wharf_ci::StepReport) {
        let _ = self.tx.send(Progress::CiStepEnd {
            name: step.name.clone(),
            ok: step.ok,
            status: step.status.as_str().to_owned(),
            line: wharf_ci::render::step_line(step),
        });
    }
}
