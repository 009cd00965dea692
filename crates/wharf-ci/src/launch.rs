//! Where a step's command runs. The runner hands each step to a
//! [`Launcher`], gets back its output (stdout and stderr as one byte
//! stream) and a [`StepProcess`] to wait for or stop, and reads the output
//! line by line itself. [`Host`] runs `SHELL -c RUN` on this machine, in
//! its own process group; the server's docker runtime has a launcher that
//! runs it in a new container of the app's build image.

use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncRead;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

/// One step to start.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// The step's name (unique in a run).
    pub name: &'a str,
    /// What it runs, as written in `[ci]` (a shell command).
    pub command: &'a str,
    /// Its environment on top of the launcher's own: `CI=true`, then
    /// [`crate::Options::env`] (values may be secrets).
    pub env: &'a [(String, String)],
}

/// A started step.
pub struct Started {
    /// Its stdout and stderr, merged, in the order written; ends once
    /// nothing holds them any more.
    pub output: Box<dyn AsyncRead + Send + Unpin>,
    pub process: Box<dyn StepProcess>,
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started").finish_non_exhaustive()
    }
}

/// How a step's command ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    /// The signal that killed it (the host's steps only).
    pub signal: Option<i32>,
}

/// Starts steps.
#[async_trait]
pub trait Launcher: Send + Sync + fmt::Debug {
    /// Starts `step`; an error says why it could not start.
    async fn launch(&self, step: Launch<'_>) -> std::io::Result<Started>;

    /// Where steps run, for messages ("/bin/sh in /src", "a container of
    /// wharf/shop:ci-1a2b").
    fn describe(&self) -> String;
}

/// A running step.
#[async_trait]
pub trait StepProcess: Send {
    /// Waits for the command to end. Cancel-safe: may be called again.
    async fn wait(&mut self) -> Option<Exit>;

    /// Stops it: asks (SIGTERM), then makes it (SIGKILL) after `timeout`.
    async fn stop(&mut self, timeout: Duration) -> Option<Exit>;

    /// The command ended but what it started still holds the output:
    /// asks those to go (SIGTERM), or makes them (`force`, SIGKILL).
    fn signal_rest(&mut self, force: bool);

    /// The step is over: frees what it holds (a container is removed).
    async fn release(&mut self) {}
}

/// Runs steps on this machine: `shell -c RUN` in `cwd`, in its own process
/// group, stdin from `/dev/null`, stdout and stderr one pipe.
#[derive(Debug, Clone)]
pub struct Host {
    pub shell: PathBuf,
    pub cwd: PathBuf,
    /// Start from this process's environment (true), or an empty one.
    pub inherit_env: bool,
}

#[async_trait]
impl Launcher for Host {
    async fn launch(&self, step: Launch<'_>) -> std::io::Result<Started> {
        check_dir(&self.cwd)?;
        let (read, write) = cloexec_pipe()?;
        let write_err = write.try_clone()?;
        let mut cmd = Command::new(&self.shell);
        cmd.arg("-c")
            .arg(step.command)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write_err))
            .process_group(0)
            .kill_on_drop(true);
        if !self.inherit_env {
            cmd.env_clear();
        }
        cmd.envs(step.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn()?;
        // Our copies of the write end go with `cmd`, so the pipe ends when
        // the step's processes have all closed it.
        drop(cmd);
        let output = pipe::Receiver::from_owned_fd(read)?;
        let pid = child.id();
        Ok(Started {
            output: Box::new(output),
            process: Box::new(HostStep { child, pid }),
        })
    }

    fn describe(&self) -> String {
        format!("{} in {}", self.shell.display(), self.cwd.display())
    }
}

/// A step running on this machine.
struct HostStep {
    child: Child,
    /// Its process group's leader, while known.
    pid: Option<u32>,
}

#[async_trait]
impl StepProcess for HostStep {
    async fn wait(&mut self) -> Option<Exit> {
        self.child.wait().await.ok().map(exit_of)
    }

    async fn stop(&mut self, timeout: Duration) -> Option<Exit> {
        signal_group(self.pid, Signal::SIGTERM);
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.ok().map(exit_of),
            Err(_) => {
                signal_group(self.pid, Signal::SIGKILL);
                self.child.wait().await.ok().map(exit_of)
            }
        }
    }

    fn signal_rest(&mut self, force: bool) {
        let signal = if force {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        signal_group(self.pid, signal);
    }
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    Exit {
        code: status.code(),
        signal: status.signal(),
    }
}

/// A missing directory would otherwise read as a missing shell.
fn check_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such directory",
        ))
    }
}

/// A pipe whose ends are closed in children on exec (the step gets its
/// own copies as stdout and stderr): a step must never hold another's.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Without `pipe2`, the flag is set right after: a step started by another
/// thread in between may keep this pipe open until it ends.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let (read, write) = nix::unistd::pipe()?;
    for fd in [&read, &write] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((read, write))
}

/// Signals the process group our child `pid` leads (never our own).
fn signal_group(pid: Option<u32>, signal: Signal) {
    let Some(pgid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 1)
        .map(Pid::from_raw)
    else {
        return;
    };
    if pgid == nix::unistd::getpgrp() {
        return;
    }
    let _ = killpg(pgid, signal);
}
