//! `wharf run -- CMD` and `wharf exec PROCESS -- CMD`: a command's output
//! on stdout/stderr as it comes, then wharf exits with its exit code.

use anyhow::Result;
use wharf_server::api::{CommandOutput, ExecBody, RunBody};
use wharf_server::client::{Client, Lines};

use crate::Exit;
use crate::cli::{ExecArgs, RunArgs};
use crate::output;

pub async fn run(client: &Client, args: RunArgs) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    let lines = client
        .run(
            &app,
            &RunBody {
                argv: args.argv,
                process: args.process,
            },
        )
        .await?;
    follow(lines).await
}

pub async fn exec(client: &Client, args: ExecArgs) -> Result<()> {
    let app = super::resolve_app(client, args.app).await?;
    let body = ExecBody {
        process: args.process,
        index: Some(args.instance),
        argv: args.argv,
    };
    let lines = client.exec(&app, &body).await?;
    follow(lines).await
}

/// Prints the output (stdout lines to stdout, stderr lines to stderr) and
/// turns the exit code into wharf's.
async fn follow(mut lines: Lines<CommandOutput>) -> Result<()> {
    while let Some(item) = lines.next().await {
        match item? {
            CommandOutput::Line(l) if l.stream == "stderr" => output::note(&l.line),
            CommandOutput::Line(l) => output::data(&l.line),
            CommandOutput::Exit(0) => return Ok(()),
            CommandOutput::Exit(code) => {
                return Err(Exit::Code(u8::try_from(code).unwrap_or(1).max(1)).into());
            }
            CommandOutput::Error(message) => return Err(Exit::Failed(message).into()),
        }
    }
    Err(Exit::Failed("the server closed the connection before the command finished".into()).into())
}
