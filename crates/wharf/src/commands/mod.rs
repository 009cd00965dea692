//! One module per command (`commands/<verb>.rs`), each with a `run`.

use anyhow::Result;
use wharf_server::client::Client;

use crate::Exit;
use crate::cli::{AccessoryCommand, Cli, Command, ConfigCommand};
use crate::settings;

mod accessory;
mod apps;
mod certs;
pub(crate) mod ci;
mod config;
mod control;
mod cron;
mod deploy;
mod events;
mod exec;
pub(crate) mod hooks;
mod import;
mod jobs;
mod logs;
mod pipelines;
mod prune;
mod releases;
mod remote;
mod rollback;
mod server;
mod signoff;
mod status;
mod token;
mod up;
mod volumes;

pub async fn run(cli: Cli) -> Result<()> {
    let data = cli.data.as_deref();
    match cli.command {
        Command::Up(args) => up::run(data, args).await,
        Command::Server(args) => server::run(data, args).await,
        Command::Config(ConfigCommand::Show { dir, json }) => config::show(&dir, json),
        Command::Config(ConfigCommand::Check { dir }) => config::check(&dir),
        Command::Import(command) => import::run(command),
        Command::Ci(args) if args.command.is_none() => ci::run(args).await,
        Command::Remote(command) => remote::run(command).await,
        Command::DialStdio => remote::dial_stdio(&settings::client_data_dir(data, None)).await,
        command => {
            crate::telemetry::client();
            let app_dir = match &command {
                Command::Deploy(a) => Some(a.dir.as_path()),
                Command::Accessory(
                    AccessoryCommand::Boot { target, .. }
                    | AccessoryCommand::Stop { target, .. }
                    | AccessoryCommand::Logs { target, .. }
                    | AccessoryCommand::Remove { target, .. },
                ) => target.app.dir.as_deref(),
                Command::Accessory(AccessoryCommand::List { app, .. }) => app.dir.as_deref(),
                _ => None,
            };
            let client = settings::client(cli.server.as_deref(), data, app_dir).await?;
            match command {
                Command::Deploy(args) => deploy::run(&client, args).await,
                Command::Rollback(args) => rollback::run(&client, args).await,
                Command::Promote(args) => {
                    control::run(&client, args, wharf_server::api::Control::Promote).await
                }
                Command::Abort(args) => {
                    control::run(&client, args, wharf_server::api::Control::Abort).await
                }
                Command::Status(args) => status::run(&client, args).await,
                Command::Releases(args) => releases::run(&client, args).await,
                Command::Logs(args) => logs::run(&client, args).await,
                Command::Events(args) => events::run(&client, args).await,
                Command::Accessory(command) => accessory::run(&client, command).await,
                Command::Apps(command) => apps::run(&client, command).await,
                Command::Maintenance(args) => apps::maintenance(&client, args).await,
                Command::Certs(args) => certs::run(&client, args).await,
                Command::Volumes(args) => volumes::run(&client, args).await,
                Command::Run(args) => exec::run(&client, args).await,
                Command::Exec(args) => exec::exec(&client, args).await,
                Command::Prune(args) => prune::run(&client, args).await,
                Command::Token(command) => token::run(&client, command).await,
                Command::Hooks(command) => hooks::run(&client, command).await,
                Command::Jobs(args) => jobs::list(&client, args).await,
                Command::Job(command) => jobs::run(&client, command).await,
                Command::Cron(command) => cron::run(&client, command).await,
                Command::Ci(args) => match args.command {
                    Some(command) => pipelines::run(&client, command).await,
                    None => unreachable!("handled above"),
                },
                Command::Up(_)
                | Command::Server(_)
                | Command::Config(_)
                | Command::Import(_)
                | Command::Remote(_)
                | Command::DialStdio => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// The app a command is about: `--app`, or the server's only app.
pub(crate) async fn resolve_app(client: &Client, app: Option<String>) -> Result<String> {
    if let Some(app) = app {
        return Ok(app);
    }
    let status = client.status().await?;
    match status.apps.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(Exit::Usage(format!(
            "the server on {} has no app yet; deploy one with `wharf deploy DIR`",
            client.endpoint()
        ))
        .into()),
        many => {
            let names: Vec<&str> = many.iter().map(|a| a.name.as_str()).collect();
            Err(Exit::Usage(format!(
                "this server runs several apps ({}); pass --app NAME",
                names.join(", ")
            ))
            .into())
        }
    }
}

/// Shows a progress stream until it finishes; fails with the deploy's
/// message when it failed.
///
/// A job queued behind another is followed to its end with `wait`;
/// without, the command says where it waits and returns (exit 0): the job
/// stays queued.
pub(crate) async fn follow_progress(
    mut lines: wharf_server::client::Lines<wharf_server::api::Progress>,
    json: bool,
    wait: bool,
) -> Result<()> {
    let mut view = crate::output::ProgressView::default();
    while let Some(p) = lines.next().await {
        let p = p?;
        if let wharf_server::api::Progress::Queued {
            job,
            behind: Some(behind),
        } = &p
            && !wait
        {
            if json {
                crate::output::json(&serde_json::json!({"job": job, "queued_behind": behind}));
            }
            crate::output::note(&format!(
                "job {job} is queued behind job {behind}; it runs when that one ends (a newer deploy replaces it while it waits). Follow it with `wharf job logs -f {job}`, or pass --wait to follow it here"
            ));
            return Ok(());
        }
        if let Some((ok, message)) = view.show(&p) {
            if json
                && let wharf_server::api::Progress::Finished {
                    report: Some(r), ..
                } = &p
            {
                crate::output::json(r);
            }
            if ok {
                crate::output::note(&message);
                return Ok(());
            }
            return Err(Exit::Failed(message).into());
        }
    }
    Err(Exit::Failed("the server closed the connection before the deploy finished; see `wharf status` and `wharf events`".into()).into())
}
