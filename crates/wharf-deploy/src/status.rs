//! A snapshot of what runs and what is routed, for `wharf status`.

use serde::{Deserialize, Serialize};
use wharf_store::{AppRow, InstanceRow, StoreError};

use crate::Engine;
use crate::live::{Down, DownReason};
use crate::progressive::{ProgressiveStatus, ReleaseTraffic};

/// How far back `traffic` in a status looks.
const TRAFFIC_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    pub name: String,
    pub source_dir: String,
    /// The release the proxy serves (its stable release), from the routing
    /// table itself: `None` whenever nothing of the app is routed, whatever
    /// the store last recorded.
    pub release: Option<i64>,
    /// `serving`, `restoring` (a restarted server is bringing it back) or
    /// `not_serving`.
    pub state: String,
    /// Why it is not serving, or what is being restored, e.g. "restore of
    /// release 4 failed: …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_detail: Option<String>,
    /// In maintenance mode: its message (empty for the default page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    /// A deploy in progress: (id, kind, state).
    pub deploying: Option<(i64, String, String)>,
    pub routes: Vec<RouteStatus>,
    pub instances: Vec<InstanceStatus>,
    /// Requests of each routed release over the last 30 s.
    pub traffic: Vec<ReleaseTraffic>,
    /// A canary or bake in progress: step, weights, live numbers.
    pub progressive: Option<ProgressiveStatus>,
    /// The most recent deploy that ended, and how (with the reason when it failed).
    pub last_deploy: Option<DeploySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploySummary {
    pub id: i64,
    pub kind: String,
    pub strategy: String,
    pub release: Option<i64>,
    pub outcome: String,
    pub error: Option<String>,
    pub finished_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub process: String,
    pub host: Option<String>,
    pub path_prefix: String,
    /// (release, weight, healthy backends)
    pub groups: Vec<(u64, u32, usize)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub id: String,
    pub release: i64,
    pub process: String,
    pub port: u16,
    pub pid: Option<u32>,
    pub state: String,
    pub started_ms: i64,
}

impl From<InstanceRow> for InstanceStatus {
    fn from(r: InstanceRow) -> Self {
        InstanceStatus {
            id: r.id,
            release: r.release,
            process: r.process,
            port: r.port,
            pid: r.pid,
            state: r.state.to_string(),
            started_ms: r.started_ms,
        }
    }
}

impl Engine {
    /// The release the proxy serves for `app` (its stable release), if any.
    pub fn routed_release(&self, app: &str) -> Option<i64> {
        self.routes.serving(app).map(|r| r.number)
    }

    /// (state, detail) of an app whose routed release is `routed`.
    fn availability(&self, app: &AppRow, routed: Option<i64>) -> (String, Option<String>) {
        if routed.is_some() {
            return ("serving".into(), None);
        }
        let detail = match self.routes.down(&app.name) {
            Some(Down {
                release,
                reason: DownReason::Restoring,
                ..
            }) => {
                return (
                    "restoring".into(),
                    Some(format!("restoring release {release} after a restart")),
                );
            }
            Some(Down {
                release,
                reason: DownReason::RestoreFailed(why),
                ..
            }) => format!("restore of release {release} failed: {why}"),
            None => match app.current_release {
                None => "nothing has been deployed yet".to_owned(),
                Some(n) => format!("release {n} is not running"),
            },
        };
        ("not_serving".into(), Some(detail))
    }

    /// Every app's status, by name.
    pub fn status(&self) -> Result<Vec<AppStatus>, StoreError> {
        let table = self.proxy().table();
        let running = self.store.unfinished_deploys()?;
        let mut out = Vec::new();
        for app in self.store.apps()? {
            let routes = table
                .routes()
                .iter()
                .filter(|r| r.app == app.name)
                .map(|r| RouteStatus {
                    process: r.process.clone(),
                    host: r.host.clone(),
                    path_prefix: r.path_prefix.clone(),
                    groups: r
                        .backends
                        .groups
                        .iter()
                        .map(|g| (g.release, g.weight, g.backends.len()))
                        .collect(),
                })
                .collect();
            let instances = self
                .store
                .live_instances(Some(app.id))?
                .into_iter()
                .map(InstanceStatus::from)
                .collect();
            let deploying = running
                .iter()
                .find(|d| d.app_id == app.id)
                .map(|d| (d.id, d.kind.to_string(), d.state.clone()));
            let last_deploy = self
                .store
                .deploys(app.id, 10)?
                .into_iter()
                .find(|d| d.outcome.is_some())
                .map(|d| DeploySummary {
                    id: d.id,
                    kind: d.kind.to_string(),
                    strategy: d.strategy,
                    release: d.to_release,
                    outcome: d.outcome.map(|o| o.to_string()).unwrap_or_default(),
                    error: d.error,
                    finished_ms: d.finished_ms,
                });
            let release = self.routes.serving(&app.name).map(|r| r.number);
            let (state, state_detail) = self.availability(&app, release);
            out.push(AppStatus {
                state,
                state_detail,
                maintenance: app.maintenance.clone(),
                last_deploy,
                traffic: self.traffic(&app.name, TRAFFIC_WINDOW),
                progressive: self.progressive_status(&app.name),
                name: app.name,
                source_dir: app.source_dir,
                release,
                deploying,
                routes,
                instances,
            });
        }
        Ok(out)
    }
}
