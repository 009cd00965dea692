//! Why a deploy or rollback did not happen.

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    QueueFull(String),
    #[error(
        "the {kind} of {app} was cancelled on request before it switched; the release that served before keeps serving"
    )]
    Cancelled { app: String, kind: String },
    #[error("internal error: {0}; please report it")]
    Internal(String),
    #[error("{app} has no cron entry `{entry}` (entries: {known}); `wharf cron list` shows them")]
    NoCronEntry {
        app: String,
        entry: String,
        known: String,
    },
    #[error(transparent)]
    Config(#[from] wharf_config::LoadError),
    #[error("{0}")]
    EnvOverride(wharf_config::ConfigErrors),
    #[error("{0}")]
    EnvFiles(wharf_config::EnvFileErrors),
    #[error(
        "a {kind} of {app} is already running (deploy {deploy}, now {state}); wait for it to finish or pass --wait"
    )]
    InProgress {
        app: String,
        /// `deploy`, `rollback` or `restore`.
        kind: String,
        deploy: i64,
        state: String,
    },
    #[error("build of {app} release {release} failed ({how}){}", tail_text(.tail))]
    Build {
        app: String,
        release: i64,
        how: String,
        tail: Vec<String>,
    },
    #[error(
        "release command of {app} release {release} failed ({how}); no instance was started, {}{}",
        keeps_serving(*.serving), tail_text(.tail)
    )]
    ReleaseCommand {
        app: String,
        release: i64,
        /// What the proxy serves for the app right now.
        serving: Option<i64>,
        how: String,
        tail: Vec<String>,
    },
    #[error("{0}")]
    Unhealthy(Box<Unhealthy>),
    #[error(
        "{app} release {release} was rolled back {how}: {reason}; release {serving} keeps serving"
    )]
    RolledBack {
        app: String,
        release: i64,
        how: &'static str,
        reason: String,
        serving: i64,
    },
    #[error("no canary of {app} is waiting; `wharf status` shows what is running")]
    NoCanary { app: String },
    #[error("{app} has no release to roll back to: {why}")]
    NoRollbackTarget { app: String, why: String },
    #[error("{app} release {release} cannot be used: {why}")]
    BadRelease {
        app: String,
        release: i64,
        why: String,
    },
    /// A secret's value could not be read; nothing was started.
    #[error("secret {key} of {app} cannot be read: {why}")]
    Secret {
        app: String,
        key: String,
        why: String,
    },
    #[error("{app} has no accessory {name:?}; its wharf.toml defines: {}", list(.known))]
    NoAccessory {
        app: String,
        name: String,
        known: Vec<String>,
    },
    #[error("{app} has no process {process:?}; its serving release has: {}", list(.known))]
    NoProcess {
        app: String,
        process: String,
        known: Vec<String>,
    },
    #[error("{app} has no serving release; deploy it first with `wharf deploy`")]
    NotServing { app: String },
    #[error("could not read the source tree {}: {source}", .dir.display())]
    Source {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the certificate of {host} cannot be used: {why}; no instance was started, {}", keeps_serving(*.serving))]
    Certificate {
        host: String,
        why: String,
        /// What the proxy serves for the app right now.
        serving: Option<i64>,
    },
    #[error("could not bridge the assets of {app} in {}: {source}; check the disk's space and permissions, then deploy again", .path.display())]
    Assets {
        app: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "volume {name} of {app} is mounted by {} in the release it runs; take it out of wharf.toml and deploy first, or remove the whole app with `wharf apps remove {app} --volumes`",
        .users.join(", ")
    )]
    VolumeInUse {
        app: String,
        name: String,
        users: Vec<String>,
    },
    #[error("{app} has no volume {name:?}; `wharf volumes {app}` lists them")]
    NoVolume { app: String, name: String },
    #[error("no free port on 127.0.0.1 for an instance: {0}")]
    Port(std::io::Error),
    #[error(transparent)]
    Store(#[from] wharf_store::StoreError),
    #[error(transparent)]
    Runtime(#[from] wharf_runtime::RuntimeError),
}

/// What a failure leaves serving, said only when it is true: the
/// routing table's release, or that nothing serves.
pub(crate) fn keeps_serving(serving: Option<i64>) -> String {
    match serving {
        Some(n) => format!("release {n} keeps serving"),
        None => "no release is serving (see `wharf status`)".to_owned(),
    }
}

/// "a, b" or "(none)".
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// Renders the last log lines under an error message.
fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nlast log lines:");
    for line in tail {
        s.push_str("\n  | ");
        s.push_str(line);
    }
    s
}

/// A new release whose instance did not pass its health check.
#[derive(Debug, thiserror::Error)]
#[error(
    "{app} release {release}: instance {instance} did not become healthy within {timeout}: {reason}; the instances of release {release} were stopped, {}{}",
    keeps_serving(*.serving), tail_text(.tail)
)]
pub struct Unhealthy {
    pub app: String,
    pub release: i64,
    pub instance: String,
    pub timeout: String,
    pub reason: String,
    /// What the proxy serves for the app right now.
    pub serving: Option<i64>,
    pub tail: Vec<String>,
}
