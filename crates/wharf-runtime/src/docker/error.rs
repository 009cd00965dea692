//! Errors of the Docker runtime: what failed, on what, and what to do.

use std::path::PathBuf;

/// What went wrong talking to the Docker engine, and on what.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine did not answer on its socket (not running, no permission,
    /// wrong path).
    #[error(
        "could not reach the Docker engine at {socket}: {source}; is dockerd running and may this user use it? Set DOCKER_HOST to its socket (unix:///path/to/docker.sock)"
    )]
    Unreachable {
        socket: String,
        source: bollard::errors::Error,
    },
    /// `DOCKER_HOST` names something other than a unix socket.
    #[error(
        "DOCKER_HOST={host:?} is not a unix socket: the docker runtime only talks to a local engine; set DOCKER_HOST to unix:///path/to/docker.sock or unset it"
    )]
    UnsupportedHost { host: String },
    /// The release source has no Dockerfile where the build says.
    #[error(
        "no Dockerfile at {path}: the docker runtime builds each release's image from the app's Dockerfile; add one, point build.dockerfile at it, deploy a prebuilt image, or use the process runtime"
    )]
    NoDockerfile { path: PathBuf },
    /// The build context is not a directory.
    #[error(
        "build context {path} is not a directory: point build.context at a directory (relative to the app's source directory)"
    )]
    NoContext { path: PathBuf },
    /// The build's ignore file (`.dockerignore`) cannot be used.
    #[error(
        "build ignore file {location}: {reason}; fix it (patterns as in Docker's .dockerignore) or remove it"
    )]
    Ignore { location: String, reason: String },
    /// An image to run is neither in the engine nor pullable.
    #[error(
        "image {image} is not in the Docker engine and could not be pulled ({reason}): build or load it into this engine first (`docker build -t {image} …` or `docker load`)"
    )]
    ImageMissing { image: String, reason: String },
    /// The engine refused or failed to build the image.
    #[error(
        "could not build image {tag} from {source_dir}: {message}; fix the Dockerfile (last build output below)\n{tail}"
    )]
    Build {
        tag: String,
        source_dir: PathBuf,
        message: String,
        tail: String,
    },
    /// `exec` in an instance that is not running (unknown, restarting, stopped).
    #[error(
        "instance {instance} is not running in the docker runtime of this server: `wharf status` shows the running instances"
    )]
    NotRunning { instance: String },
    /// An accessory that has no container (logs of one never booted).
    #[error(
        "accessory {name} of {app} has no container (wharf-{app}-{name}): boot it first (`wharf accessory boot {name}`)"
    )]
    NoAccessory { app: String, name: String },
    /// A container of the name wharf needs exists and is not wharf's.
    #[error(
        "container {name} exists but was not made by wharf for data directory {data_dir}: remove or rename it (`docker rm -f {name}`) so wharf can create its {what}"
    )]
    Foreign {
        name: String,
        data_dir: PathBuf,
        what: &'static str,
    },
    /// What wharf needs for an app is another wharf server's (another data
    /// dir): two servers on one engine with an app of the same name.
    #[error(
        "{kind} {name} belongs to the wharf server with data directory {owner}, not to this one ({}): two wharf servers on one Docker engine cannot both run an app named {app}; rename the app (`name` in its wharf.toml) or remove it from the other server (`wharf --data {owner} apps remove {app}`)",
        .data_dir.display()
    )]
    OtherServer {
        /// "container", "network" or "volume".
        kind: &'static str,
        name: String,
        app: String,
        owner: String,
        data_dir: PathBuf,
    },
    /// An accessory did not come up.
    #[error("accessory {name} of {app} (container {container}) {reason}; its last output:\n{tail}")]
    AccessoryFailed {
        app: String,
        name: String,
        container: String,
        reason: String,
        tail: String,
    },
    /// A release directory without the `image` file `prepare_release` writes.
    #[error(
        "{path} has no image id: the release was not prepared by the docker runtime; deploy it again"
    )]
    NoImage { path: PathBuf },
    /// A command that cannot become an argv.
    #[error(
        "command {command:?} of {what} cannot run in a container: {reason}; containers run the command as an argv without a shell (images FROM scratch have none): write `sh -c '…'` if the image has a shell"
    )]
    Command {
        what: String,
        command: String,
        reason: String,
    },
    /// Any other request the engine refused or failed.
    #[error("the Docker engine could not {action}: {source}")]
    Api {
        action: String,
        source: bollard::errors::Error,
    },
}

impl DockerError {
    pub(crate) fn api(action: impl Into<String>, source: bollard::errors::Error) -> Self {
        DockerError::Api {
            action: action.into(),
            source,
        }
    }
}

impl From<DockerError> for crate::RuntimeError {
    fn from(err: DockerError) -> Self {
        crate::RuntimeError::Docker(Box::new(err))
    }
}
