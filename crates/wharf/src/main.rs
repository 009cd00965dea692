//! The `wharf` binary: parses the command line, runs one command, maps the
//! outcome to an exit code (see `cli::EXIT_CODES`). Data goes to stdout;
//! progress and diagnostics go to stderr.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;
mod remotes;
mod settings;
mod telemetry;

/// An error that should exit with a given code, its message already said.
#[derive(Debug)]
pub enum Exit {
    /// The operation failed; the message says how.
    Failed(String),
    /// Bad usage or config.
    Usage(String),
    /// `wharf run`/`exec`: exit with the command's own code (nothing to say).
    Code(u8),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Failed(m) | Exit::Usage(m) => f.write_str(m),
            Exit::Code(code) => write!(f, "the command exited with code {code}"),
        }
    }
}

impl std::error::Error for Exit {}

fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(e) = err.downcast_ref::<Exit>() {
        return match e {
            Exit::Failed(_) => 1,
            Exit::Usage(_) => 2,
            Exit::Code(code) => *code,
        };
    }
    if err.downcast_ref::<wharf_config::LoadError>().is_some()
        || err.downcast_ref::<wharf_config::ConfigErrors>().is_some()
    {
        return 2;
    }
    if let Some(
        wharf_server::client::ClientError::NotRunning { .. }
        | wharf_server::client::ClientError::Unreachable { .. }
        | wharf_server::client::ClientError::Ssh { .. }
        | wharf_server::client::ClientError::NoAnswer { .. },
    ) = err.downcast_ref()
    {
        return 3;
    }
    1
}

/// The error and its causes, each said once: wharf's error messages embed
/// their cause already ("could not read X: <io error>; …"), so a cause whose
/// text is already in the message is not appended again.
fn render_error(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&format!("could not start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A command's own exit code was its whole message.
            if !matches!(err.downcast_ref::<Exit>(), Some(Exit::Code(_))) {
                output::error(&render_error(&err));
            }
            ExitCode::from(exit_code(&err))
        }
    }
}
