//! The command line, as clap sees it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Self-hosted application delivery: build, deploy with zero downtime,
/// roll back — one binary.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Data directory of the server to use (store, releases, logs, API socket).
    /// Default: `<app>/.wharf` for `up`; for other commands the nearest
    /// `.wharf` above the current directory, else the last server started.
    #[arg(long, global = true, env = "WHARF_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// The server to talk to on another machine: `https://HOST:PORT` (with
    /// a token in WHARF_TOKEN), `ssh://USER@HOST[:PORT][/DATA-DIR]`, or the
    /// name of a remote (`wharf remote add`). Default: the local server
    /// (see --data).
    #[arg(long, global = true, env = "WHARF_SERVER", value_name = "URL|REMOTE")]
    pub server: Option<String>,
}

pub const EXIT_CODES: &str = "Exit codes:
  0  success
  1  the operation failed (e.g. a deploy was aborted; the old release keeps serving)
  2  bad usage or an invalid wharf.toml
  3  no wharf server is reachable
`wharf run` and `wharf exec` exit with the command's own exit code
(128 + N when it was killed by signal N); 1 when it could not be started.
`wharf ci` exits 1 when a step failed, 130 when interrupted (Ctrl-C).";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server in the foreground, deploy the app, follow its logs;
    /// Ctrl-C stops everything.
    Up(UpArgs),
    /// Run the server (proxy, API, /metrics) until SIGTERM or Ctrl-C.
    Server(ServerArgs),
    /// Deploy the app in DIR as a new release, with zero downtime.
    Deploy(DeployArgs),
    /// Go back to a retained release (default: the one before the live one).
    Rollback(RollbackArgs),
    /// Move a canary to its next step now (or to 100% after the last one).
    Promote(ControlArgs),
    /// Roll a canary (or a blue-green bake) back now.
    Abort(ControlArgs),
    /// What is serving: releases, routes, instances.
    Status(AppArgs),
    /// The releases of an app: live, retained, failed.
    Releases(AppArgs),
    /// Logs of an app's instances.
    Logs(LogsArgs),
    /// The app's deploy history and other events.
    Events(EventsArgs),
    /// Work with wharf.toml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage an app's accessories (databases, queues…; docker runtime).
    #[command(subcommand)]
    Accessory(AccessoryCommand),
    /// Answer every request of an app with 503 and a message, without
    /// stopping it (kept across restarts); `off` serves it again.
    Maintenance(MaintenanceArgs),
    /// The certificates of the TLS hosts: issuer, expiry, the last error of
    /// an order.
    Certs(CertsArgs),
    /// The apps of the server; remove one with everything of it.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// The named volumes apps keep across releases: size, who mounts them.
    /// `wharf volumes remove APP NAME` deletes one (never done by prune).
    Volumes(VolumesArgs),
    /// Run a one-off command in a new instance of the live release
    /// (a container of its image under docker), removed afterwards.
    Run(RunArgs),
    /// Run a command inside a running instance of a process (docker).
    Exec(ExecArgs),
    /// Remove images and stopped containers of releases no longer retained.
    Prune(PruneArgs),
    /// Write a wharf.toml from a docker-compose.yml or a Kamal
    /// config/deploy.yml; what cannot be carried over is printed as warnings.
    #[command(subcommand)]
    Import(ImportCommand),
    /// The job queue: deploys and rollbacks, newest first (running, queued,
    /// and how each ended).
    Jobs(JobsArgs),
    /// One job: `show`, `logs [-f]`, `cancel`.
    #[command(subcommand)]
    Job(JobCommand),
    /// The app's `[cron.NAME]` entries: `list`, `runs NAME`, `run NAME`.
    #[command(subcommand)]
    Cron(CronCommand),
    /// Run the app's `[ci]` steps here, in a checkout: live output, each
    /// step's pass or fail line and time, then a summary naming the failed
    /// steps. Exit 0 when every step passed, 1 when one failed.
    Ci(crate::commands::ci::CiArgs),
    /// Push to deploy: an app's webhook secret (`secret APP`, printed once)
    /// and the deliveries forges sent (`deliveries APP`).
    #[command(subcommand)]
    Hooks(crate::commands::hooks::HooksCommand),
    /// API tokens for the https:// API: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Named servers on other machines (`--server NAME`), and their pinned
    /// certificates.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Connect stdin and stdout to the local server's API socket: what a
    /// client on another machine runs through ssh (`--server ssh://…`).
    #[command(hide = true)]
    DialStdio,
}

#[derive(Debug, Args)]
pub struct AccessoryTarget {
    /// The accessory's name, as in [accessories.NAME].
    pub name: String,
    #[command(flatten)]
    pub app: AccessoryApp,
}

/// Which app, and which config of it, an accessory command is about.
#[derive(Debug, Args)]
pub struct AccessoryApp {
    /// App name (needed when the server runs several apps). Its serving
    /// release's config says what its accessories are.
    #[arg(long)]
    pub app: Option<String>,
    /// Read the accessories from the wharf.toml in DIR instead (before the
    /// first deploy, or to apply an edited accessory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AccessoryCommand {
    /// Create and start it (or start it, or recreate it after its config
    /// changed); wait until healthy.
    Boot {
        #[command(flatten)]
        target: AccessoryTarget,
        #[arg(long)]
        json: bool,
    },
    /// Stop it; its container and volumes are kept.
    Stop {
        #[command(flatten)]
        target: AccessoryTarget,
        #[arg(long)]
        json: bool,
    },
    /// Its output.
    Logs {
        #[command(flatten)]
        target: AccessoryTarget,
        /// Keep printing new lines.
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many past lines to print first.
        #[arg(long, short = 'n', default_value_t = 100)]
        tail: usize,
        #[arg(long)]
        json: bool,
    },
    /// Remove its container (named volumes are kept unless --volumes).
    Remove {
        #[command(flatten)]
        target: AccessoryTarget,
        /// Also delete its named volumes, and the data in them.
        #[arg(long)]
        volumes: bool,
        #[arg(long)]
        json: bool,
    },
    /// The state of every accessory of the app.
    List {
        #[command(flatten)]
        app: AccessoryApp,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// `on` or `off`.
    #[arg(value_parser = ["on", "off"])]
    pub state: String,
    /// App name (needed when the server runs several apps).
    pub app: Option<String>,
    /// Shown on the 503 page (plain text).
    #[arg(long, short = 'm')]
    pub message: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Every app of the server: what it serves, or why not.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop APP and remove everything of it: instances, accessories,
    /// releases, images, network, logs and its history in the store. Its
    /// named volumes (database data) are kept unless --volumes.
    Remove {
        /// The app's name.
        app: String,
        /// Also delete its named volumes, and the data in them.
        #[arg(long)]
        volumes: bool,
        /// Do not ask; needed when there is no terminal to ask on.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print what was removed as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this app's jobs.
    pub app: Option<String>,
    /// How many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// The entries of the serving release: schedule, next run, last run.
    List {
        /// App name (needed when the server runs several apps).
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The runs of an entry, newest first: when, how long, exit code, or
    /// why it was skipped. Its output: `wharf job logs JOB`.
    Runs {
        name: String,
        #[arg(long)]
        app: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run an entry now (through the queue, as its scheduled runs).
    Run {
        name: String,
        #[arg(long)]
        app: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// The job, its state and timings, and its recorded steps.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// The job's log: its progress and output lines.
    Logs {
        id: i64,
        /// Follow until the job ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Cancel it: a queued job at once; a running deploy or rollback at its
    /// next step before the switch (the release that served before keeps
    /// serving).
    Cancel { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it once (the server keeps only its hash).
    Create {
        /// What it may do: read (status, logs), deploy (also deploy, roll
        /// back, run), admin (also remove apps and volumes, prune, tokens).
        #[arg(long, value_parser = ["read", "deploy", "admin"])]
        scope: String,
        /// Limit it to this app.
        #[arg(long)]
        app: Option<String>,
        /// Expire it after this long (e.g. 90d, 12h). Default: never.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// What it is for, shown by `token list`.
        #[arg(long, default_value = "")]
        name: String,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The tokens: id, scope, app, expiry, last use (never the secret).
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it is refused (401) from now on.
    Revoke {
        /// The token's id (from `token list`, or its `wharf_<id>_…` text).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Name a server: `wharf remote add prod https://HOST:PORT` (its
    /// certificate is pinned now), or `ssh://USER@HOST[:PORT][/DATA-DIR]`.
    Add {
        name: String,
        url: String,
        /// Keep this token with it (else WHARF_TOKEN is used); read from
        /// the WHARF_TOKEN environment variable with `--token-from-env`.
        #[arg(long)]
        token_from_env: bool,
    },
    /// The named servers.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Forget a named server.
    Remove { name: String },
    /// Forget the pinned certificate of HOST:PORT, so the next contact pins
    /// the one it presents then (after the server's was replaced on purpose).
    Forget { server: String },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VolumesArgs {
    #[command(subcommand)]
    pub command: Option<VolumesCommand>,
    /// Only this app's (default: every app's).
    pub app: Option<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// The same as `wharf volumes [APP]` (for an app named `remove`).
    List {
        app: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete volume NAME of APP and the data in it. Refused while the
    /// release APP runs mounts it.
    Remove {
        app: String,
        name: String,
        /// Do not ask; needed when there is no terminal to ask on.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// App name (needed when the server runs several apps).
    #[arg(long)]
    pub app: Option<String>,
    /// Give the command this process's env on top of the app's (e.g.
    /// worker).
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// App name (needed when the server runs several apps).
    #[arg(long)]
    pub app: Option<String>,
    /// The process whose instance runs the command (e.g. web).
    pub process: String,
    /// Which instance of it (1-based).
    #[arg(long, default_value_t = 1)]
    pub instance: u32,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Print what was removed as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The server's settings on the command line; each wins over its
/// environment variable, which wins over `<data>/server.toml`, which wins
/// over the default.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address the proxy listens on for plain HTTP (and ACME's HTTP-01
    /// checks). Default 127.0.0.1:8080.
    #[arg(long, env = "WHARF_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address the proxy listens on for HTTPS (HTTP/2 and HTTP/1.1, the
    /// certificate by SNI). Default: none.
    #[arg(long, env = "WHARF_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// Address of the admin listener (`/metrics`, `/healthz`). Default
    /// 127.0.0.1:9180.
    #[arg(long, env = "WHARF_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Also serve the API over https on this address, for `wharf` on other
    /// machines (`--server https://HOST:PORT` with a token from `wharf
    /// token create`). The certificate is made self-signed at the first
    /// start; its fingerprint is printed for clients to pin. Default: off.
    #[arg(long, env = "WHARF_API", value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// This server's URL as a forge's users reach it: commit statuses link
    /// to `URL/v1/jobs/ID`. Default: the https API's address.
    #[arg(long, env = "WHARF_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Where the forge's API is, when not where its clone URLs say (a
    /// self-hosted forge's API behind another host).
    #[arg(long, env = "WHARF_FORGE_API", value_name = "URL")]
    pub forge_api: Option<String>,
    /// The largest app source a client may upload, in MiB of file content.
    /// Default 1024.
    #[arg(long, env = "WHARF_UPLOAD_LIMIT_MB", value_name = "MIB")]
    pub upload_limit_mb: Option<u64>,
    /// Do not write an access-log line per proxied request.
    #[arg(long)]
    pub no_access_log: bool,
    /// A network whose `X-Forwarded-*` headers are believed (a load
    /// balancer in front), e.g. 10.0.0.0/8 (repeatable).
    #[arg(long = "trusted-proxy", value_name = "NETWORK", value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// ACME directory URL for certificates (default: Let's Encrypt).
    #[arg(long, env = "WHARF_ACME_DIRECTORY", value_name = "URL")]
    pub acme_directory: Option<String>,
    /// Contact email for the ACME account.
    #[arg(long, env = "WHARF_ACME_EMAIL", value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM file of CA roots to trust for the ACME server's own HTTPS (a
    /// test CA such as Pebble's; repeatable).
    #[arg(long = "acme-ca-root", value_name = "PEM")]
    pub acme_ca_roots: Vec<PathBuf>,
}

fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    wharf_server::settings::parse_net(s)
        .ok_or_else(|| format!("expected a network such as 10.0.0.0/8 or an address, got {s:?}"))
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The app's directory (holding wharf.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Environment override for this release, KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Deploy the working tree even when the release restored after a
    /// restart was made from it.
    #[arg(long)]
    pub deploy: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The app's directory (holding wharf.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Environment override for this release, KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// When the deploy is queued behind another job of the app, follow it
    /// to its end instead of returning once queued.
    #[arg(long)]
    pub wait: bool,
    /// Canary: stop at the first step until `wharf promote`.
    #[arg(long)]
    pub pause: bool,
    /// The release's version (the docker image tag), instead of the git
    /// revision of DIR.
    #[arg(long)]
    pub version: Option<String>,
    /// Docker: deploy this prebuilt image (it must be in the engine)
    /// instead of building the Dockerfile.
    #[arg(long)]
    pub image: Option<String>,
    /// Have the server fetch the source with git from this repository
    /// (https://, ssh://, user@host:path; a path on the server for a local
    /// server) instead of sending DIR.
    #[arg(long, value_name = "URL", requires = "reference")]
    pub git: Option<String>,
    /// With --git: the branch, tag or commit to deploy.
    #[arg(long = "ref", value_name = "REF", requires = "git")]
    pub reference: Option<String>,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// App name (needed when the server runs several apps).
    #[arg(long)]
    pub app: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Release number to go back to.
    pub release: Option<i64>,
    /// App name (needed when the server runs several apps).
    #[arg(long)]
    pub app: Option<String>,
    /// When it is queued behind another job of the app, follow it to its
    /// end instead of returning once queued.
    #[arg(long)]
    pub wait: bool,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AppArgs {
    /// App name (needed when the server runs several apps).
    #[arg(long)]
    pub app: Option<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(long)]
    pub app: Option<String>,
    /// Only this process (e.g. web).
    #[arg(long, short = 'p')]
    pub process: Option<String>,
    /// Keep printing new lines.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How many past lines to print first.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub tail: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long, short = 'n', default_value_t = 50)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved wharf.toml, every default spelled out.
    Show {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// As JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Check wharf.toml; print every problem.
    Check {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// From a compose file: the service that publishes HTTP (or
    /// `--service`) is the app, the services sharing its image or build its
    /// processes, the others accessories. Values for `${VAR}` come from the
    /// `.env` next to the file.
    Compose(ImportArgs),
    /// From a Kamal config: roles become processes; proxy, env, builder and
    /// accessories carried over.
    Kamal(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import. Default: docker-compose.yml (else compose.yml,
    /// compose.yaml, docker-compose.yaml) for compose, config/deploy.yml for
    /// kamal, in the current directory.
    pub file: Option<PathBuf>,
    /// App name. Default: compose's `name:` or Kamal's `service:`, else the
    /// app directory's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Compose only: the service that is the app, instead of the one that
    /// publishes HTTP.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Where to write the wharf.toml (a directory gets a wharf.toml in it).
    #[arg(long, value_name = "PATH", default_value = "wharf.toml")]
    pub out: PathBuf,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the wharf.toml on stdout instead of writing a file.
    #[arg(long)]
    pub stdout: bool,
    /// Print {"ok", "error", "toml", "warnings", "written", "check"} as
    /// JSON on stdout instead of warnings on stderr, on failure too.
    #[arg(long)]
    pub json: bool,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}
