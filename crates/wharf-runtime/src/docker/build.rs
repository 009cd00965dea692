//! Release images: building them (or taking a prebuilt one), tagging them
//! `wharf/<app>:<version>`, recording them in the release directory, and
//! removing them with the release.
//!
//! * A build sends the context directory (see [`super::context`]) to the
//!   engine's build API (the classic builder) with the release's Dockerfile,
//!   multi-stage target and build args, labels the image `wharf.data-dir`
//!   (so [`crate::Runtime::prune`] knows it is this server's; its tag
//!   `wharf/<app>:<version>` names the app),
//!   and streams the output, line by line, to the app's log as process
//!   `build` (file `release-<n>-build.log`, and the log broadcast, which the
//!   server forwards as deploy progress).
//! * Nothing that changes from one release to the next goes into the build:
//!   the engine adds build labels as `LABEL` steps after the Dockerfile's,
//!   so a release number there would make every rebuild end in a cache
//!   miss and a new image. With only the data dir, a rebuild of unchanged
//!   sources is a full cache hit giving the same image id, and a changed
//!   file costs one label step after its own;
//!   which release runs an image is told by its `image` file and by the
//!   `wharf.release` label of the containers started from it.
//! * Build arg values can be secrets: every occurrence of one in the build
//!   output, in a build error and in the tail of a failed build is replaced
//!   by `***` before anything is written, and they are never traced.
//! * A prebuilt image (`wharf deploy --image`) must be in the engine; if it
//!   is not, a pull is tried, then the error says to build or load it.
//! * The release directory gets `image` (the image id: what instances run,
//!   so a tag moved later never changes a release) and `tag`.
//! * An accessory's image built from the app's source goes the same way
//!   ([`BuildFor::Accessory`]): labelled `wharf.accessory` instead of
//!   `wharf.release`, its output logged as `<app>-<name>-build` (release 0)
//!   in `accessory-<name>-build.log`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::check_name;
use super::{
    DockerError, Inner, LABEL_ACCESSORY, LABEL_APP, LABEL_DATA_DIR, Lines, OUTPUT_DRAIN, blocking,
    check_app, context, is_conflict, is_not_found, lock,
};
use crate::logs::{Capture, LogSource, SharedTail};
use crate::{DockerBuild, ImageSource, ReleaseSource, RuntimeError, release};

/// Build output lines kept for the error of a failed build.
const BUILD_TAIL_LINES: usize = 20;
/// The name the Dockerfile gets in the build context when it is not in
/// what is sent (outside the context dir, or under a skipped name).
const CONTEXT_DOCKERFILE: &str = ".wharf.Dockerfile";
/// How long a pull of a missing image may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// What a masked secret reads as.
const MASK: &str = "***";

/// The image tag of a release: `wharf/<app>:<version>`, the version made a
/// valid tag (`[A-Za-z0-9_.-]`, not starting with `.` or `-`, at most 128
/// characters; other characters become `-`), `r<release>` when empty.
pub fn image_tag(app: &str, release: u64, version: &str) -> String {
    format!("wharf/{app}:{}", tag_of(release, version))
}

pub(super) fn tag_of(release: u64, version: &str) -> String {
    let mut tag: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if tag.is_empty() {
        return format!("r{release}");
    }
    if tag.starts_with(['.', '-']) {
        tag.insert(0, '_');
    }
    // ASCII only by now, so any byte index is a char boundary.
    tag.truncate(128);
    tag
}

/// Masks secret values in text.
#[derive(Debug, Default)]
struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    fn new<'a>(values: impl IntoIterator<Item = &'a String>) -> Self {
        let mut secrets: Vec<String> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .cloned()
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }
}

/// The build output of one release, going to the app's log as process
/// `build`, masked line by line.
struct BuildLog {
    writer: tokio::io::DuplexStream,
    capture: Capture,
    tail: SharedTail,
    lines: Lines,
    redactor: Redactor,
}

/// Whose image a build makes: where its output goes and how it is labelled.
#[derive(Debug, Clone, Copy)]
pub(super) enum BuildFor<'a> {
    /// A release: labelled with its number; output as `<app>-r<n>-build`
    /// into `release-<n>-build.log`.
    Release { app: &'a str, release: u64 },
    /// An accessory: labelled `wharf.accessory`; output as
    /// `<app>-<name>-build` (release 0) into `accessory-<name>-build.log`.
    Accessory { app: &'a str, name: &'a str },
    /// The image CI steps of a commit run in: built as a release's (so a
    /// deploy of the commit is a cache hit, the same image); output as
    /// `<app>-ci-build` (release 0) into `ci-build.log`.
    Ci { app: &'a str },
}

impl BuildFor<'_> {
    fn app(&self) -> &str {
        match self {
            BuildFor::Release { app, .. }
            | BuildFor::Accessory { app, .. }
            | BuildFor::Ci { app } => app,
        }
    }

    /// The log file name and the source of the output lines.
    fn log(&self) -> (String, LogSource) {
        let (file, release, instance) = match *self {
            BuildFor::Release { app, release } => (
                format!("release-{release}-build.log"),
                release,
                format!("{app}-r{release}-build"),
            ),
            BuildFor::Accessory { app, name } => (
                format!("accessory-{name}-build.log"),
                0,
                format!("{app}-{name}-build"),
            ),
            BuildFor::Ci { app } => ("ci-build.log".to_owned(), 0, format!("{app}-ci-build")),
        };
        let process = match self {
            BuildFor::Ci { .. } => "ci-build",
            _ => "build",
        };
        let source = LogSource {
            app: self.app().to_owned(),
            release,
            process: process.to_owned(),
            instance,
        };
        (file, source)
    }

    /// The image's labels besides the data dir's: never a release number
    /// (see the module docs: it would end every rebuild in a cache miss),
    /// and none at all for a release (each label is one more build step
    /// when a file changed; its `wharf/<app>:…` tag names its app).
    fn labels(&self) -> Vec<(String, String)> {
        match *self {
            BuildFor::Release { .. } | BuildFor::Ci { .. } => Vec::new(),
            BuildFor::Accessory { app, name } => vec![
                (LABEL_APP.to_owned(), app.to_owned()),
                (LABEL_ACCESSORY.to_owned(), name.to_owned()),
            ],
        }
    }
}

impl BuildLog {
    fn start(inner: &Inner, of: BuildFor<'_>, redactor: Redactor) -> Self {
        let (file, source) = of.log();
        let log = inner.log_file(of.app(), file);
        let tail: SharedTail = Arc::new(Mutex::new(VecDeque::new()));
        let (writer, reader) = tokio::io::duplex(64 * 1024);
        let capture = Capture::start(
            Some(reader),
            None::<tokio::io::DuplexStream>,
            source,
            log,
            inner.logs.clone(),
            Some(tail.clone()),
        );
        BuildLog {
            writer,
            capture,
            tail,
            lines: Lines::default(),
            redactor,
        }
    }

    /// Writes output text; only complete lines go out, so a secret split
    /// across two pieces is still masked.
    async fn write(&mut self, text: &str) {
        for line in self.lines.push(text.as_bytes()) {
            self.emit(&line).await;
        }
    }

    async fn emit(&mut self, line: &str) {
        let mut masked = self.redactor.redact(line);
        masked.push('\n');
        // A failed write means the capture is gone; the build goes on.
        let _ = self.writer.write_all(masked.as_bytes()).await;
    }

    /// Writes what is left, waits for it to be logged; the last lines.
    async fn finish(mut self) -> Vec<String> {
        if let Some(rest) = self.lines.finish() {
            self.emit(&rest).await;
        }
        drop(self.writer);
        self.capture.finish(OUTPUT_DRAIN).await;
        let lines: Vec<String> = lock(&self.tail).iter().cloned().collect();
        let skip = lines.len().saturating_sub(BUILD_TAIL_LINES);
        lines[skip..].to_vec()
    }
}

/// `repo` and `tag` of an image reference, for a pull (without a tag the
/// engine would pull every tag of the repository).
fn pull_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

/// Reads the image id a release directory maps to for `process`: its own
/// (`processes/<process>/image`) if it has one, else the app's (`image`).
pub(super) fn read_image(workdir: &Path, process: Option<&str>) -> Result<String, RuntimeError> {
    let own = process.map(|p| workdir.join("processes").join(p).join("image"));
    let path = match own {
        Some(own) if own.exists() => own,
        _ => workdir.join("image"),
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => Err(DockerError::NoImage { path }.into()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(DockerError::NoImage { path }.into())
        }
        Err(err) => Err(RuntimeError::io("read image id from", path, err)),
    }
}

/// Every image id and tag a release directory holds: the app's, then
/// each process's own.
#[derive(Debug, Default)]
pub(super) struct ReleaseImages {
    pub images: Vec<String>,
    pub tags: Vec<String>,
}

/// A release directory's images and tags, as far as readable.
pub(super) fn read_release(dir: &Path) -> ReleaseImages {
    let read = |dir: &Path, name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let mut out = ReleaseImages::default();
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir.join("processes")) {
        let mut own: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        own.sort();
        dirs.extend(own);
    }
    for d in dirs {
        out.images.extend(read(&d, "image"));
        out.tags.extend(read(&d, "tag"));
    }
    out
}

/// Writes the `image` and `tag` files of a release directory (or of a
/// process's directory in it), each atomically.
fn write_release(dir: &Path, image: &str, tag: &str) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir)
        .map_err(|err| RuntimeError::io("create release directory", dir, err))?;
    for (name, value) in [("tag", tag), ("image", image)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, format!("{value}\n"))
            .map_err(|err| RuntimeError::io("write release file", &tmp, err))?;
        let path = dir.join(name);
        std::fs::rename(&tmp, &path)
            .map_err(|err| RuntimeError::io("write release file", path, err))?;
    }
    Ok(())
}

/// The images and tags of every release dir of an app but `except`.
fn other_releases(releases: &Path, except: u64) -> (HashSet<String>, HashSet<String>) {
    let (mut images, mut tags) = (HashSet::new(), HashSet::new());
    let Ok(entries) = std::fs::read_dir(releases) else {
        return (images, tags);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(n) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        if n == except {
            continue;
        }
        let read = read_release(&entry.path());
        images.extend(read.images);
        tags.extend(read.tags);
    }
    (images, tags)
}

impl Inner {
    pub(super) async fn prepare_release(
        &self,
        source: &ReleaseSource,
    ) -> Result<PathBuf, RuntimeError> {
        let (app, release) = (source.app.as_str(), source.release);
        check_app(app)?;
        // Before anything is built or tagged: the app's network, which
        // another wharf server on this engine may own (an app of the same
        // name there); its `wharf/<app>:…` tags would be clobbered too.
        if self.network == super::DockerNetwork::AppBridge {
            self.ensure_network(app).await?;
        }
        let dest = self.release_dir(app, release);
        let of = BuildFor::Release { app, release };
        // The app's image, unless every process has its own.
        let mut made = Vec::new();
        if source.app_image {
            let tag = image_tag(app, release, &source.version);
            let image = match &source.image {
                Some(image) => self.prebuilt(source, image, &tag).await?,
                None => {
                    self.build_image(&source.dir, &source.build, &tag, of)
                        .await?
                }
            };
            made.push((dest.clone(), image, tag));
        }
        for (process, from) in &source.processes {
            check_name("process name", process)?;
            let tag = format!("{}-{process}", image_tag(app, release, &source.version));
            let image = match from {
                ImageSource::Prebuilt(image) => self.prebuilt(source, image, &tag).await?,
                ImageSource::Build(build) => self.build_image(&source.dir, build, &tag, of).await?,
            };
            made.push((dest.join("processes").join(process), image, tag));
        }
        let dir = dest.clone();
        blocking("write release", &dest, move || {
            std::fs::create_dir_all(&dir)
                .map_err(|err| RuntimeError::io("create release directory", &dir, err))?;
            for (dir, image, tag) in &made {
                write_release(dir, image, tag)?;
            }
            Ok(())
        })
        .await?;
        Ok(dest)
    }

    /// Builds an image from the source directory `dir` as `tag`, output to
    /// the app's log; returns the image id.
    pub(super) async fn build_image(
        &self,
        dir: &Path,
        build: &DockerBuild,
        tag: &str,
        of: BuildFor<'_>,
    ) -> Result<String, RuntimeError> {
        let dir = &dir.to_path_buf();
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(RuntimeError::NotADirectory { path: dir.clone() }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotADirectory { path: dir.clone() });
            }
            Err(err) => return Err(RuntimeError::io("read release source", dir, err)),
        }
        let dockerfile = dir.join(&build.dockerfile);
        if !dockerfile.is_file() {
            return Err(DockerError::NoDockerfile { path: dockerfile }.into());
        }
        let context_dir = dir.join(&build.context);
        if !context_dir.is_dir() {
            return Err(DockerError::NoContext { path: context_dir }.into());
        }
        let avoid = self.data_dir.clone();
        let (ctx, file) = (context_dir.clone(), dockerfile.clone());
        let (archive, dockerfile_name) = blocking("read build context", &context_dir, move || {
            let canonical = |p: &Path| {
                std::fs::canonicalize(p).map_err(|err| RuntimeError::io("resolve", p, err))
            };
            let ignore = context::load_ignore(&ctx, &file)?;
            let filter = context::Filter::new(ignore.as_ref(), &avoid);
            let in_context =
                context::path_in_context(&canonical(&ctx)?, &canonical(&file)?, filter);
            let extra = match &in_context {
                Some(_) => None,
                None => Some((CONTEXT_DOCKERFILE, file.as_path())),
            };
            let archive = context::tar_context(&ctx, filter, extra)
                .map_err(|err| RuntimeError::io("pack build context from", &ctx, err))?;
            Ok((
                archive,
                in_context.unwrap_or_else(|| CONTEXT_DOCKERFILE.to_owned()),
            ))
        })
        .await?;

        let mut labels = HashMap::from([(LABEL_DATA_DIR.to_owned(), self.data_dir_label())]);
        labels.extend(of.labels());
        let args: HashMap<&str, &str> = build
            .args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(&dockerfile_name)
            .t(tag)
            .rm(true)
            .forcerm(true)
            .target(build.target.as_deref().unwrap_or(""))
            .buildargs(&args)
            .labels(&labels)
            .build();
        let redactor = Redactor::new(build.args.values());
        let mut log = BuildLog::start(self, of, redactor);
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(archive.into())));
        let mut failure: Option<String> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(error) = info.error_detail.and_then(|d| d.message) {
                        log.write(&format!("{error}\n")).await;
                        failure = Some(error);
                        break;
                    }
                    let text = info.stream.or(info.status).unwrap_or_default();
                    if !text.is_empty() {
                        log.write(&text).await;
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    log.write(&format!("{error}\n")).await;
                    failure = Some(error);
                    break;
                }
                Err(err) => {
                    failure = Some(err.to_string());
                    break;
                }
            }
        }
        drop(stream);
        let tail = log.finish().await;
        if let Some(message) = failure {
            let redactor = Redactor::new(build.args.values());
            return Err(DockerError::Build {
                tag: tag.to_owned(),
                source_dir: dir.clone(),
                message: redactor.redact(message.trim()),
                tail: tail.join("\n"),
            }
            .into());
        }
        self.image_id(tag, "inspect built image").await
    }

    /// The id of image `image`.
    pub(super) async fn image_id(&self, image: &str, action: &str) -> Result<String, RuntimeError> {
        let inspected = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|err| DockerError::api(format!("{action} {image}"), err))?;
        inspected.id.ok_or_else(|| {
            DockerError::api(
                format!("{action} {image}"),
                BollardError::DockerResponseServerError {
                    status_code: 500,
                    message: "the engine returned no image id".to_owned(),
                },
            )
            .into()
        })
    }

    /// Makes sure `image` is in the engine, pulling it if it is not.
    pub(super) async fn ensure_image(&self, image: &str) -> Result<(), DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(DockerError::api(format!("inspect image {image}"), err)),
        }
        tracing::info!(image, "image not in the engine; pulling it");
        let (repo, tag) = pull_reference(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let pulled = tokio::time::timeout(PULL_TIMEOUT, async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(message) = info.error_detail.and_then(|d| d.message) {
                            return Err(message);
                        }
                    }
                    Err(BollardError::DockerStreamError { error }) => return Err(error),
                    Err(err) => return Err(err.to_string()),
                }
            }
            Ok(())
        })
        .await;
        let reason = match pulled {
            Ok(Ok(())) => match self.docker.inspect_image(image).await {
                Ok(_) => return Ok(()),
                Err(err) => err.to_string(),
            },
            Ok(Err(reason)) => reason,
            Err(_) => format!("the pull took longer than {PULL_TIMEOUT:?}"),
        };
        Err(DockerError::ImageMissing {
            image: image.to_owned(),
            reason: reason.trim().to_owned(),
        })
    }

    /// Takes the prebuilt `image` for the release, tagged `tag`; returns its id.
    async fn prebuilt(
        &self,
        source: &ReleaseSource,
        image: &str,
        tag: &str,
    ) -> Result<String, RuntimeError> {
        let of = BuildFor::Release {
            app: &source.app,
            release: source.release,
        };
        let mut log = BuildLog::start(self, of, Redactor::default());
        log.write(&format!("using prebuilt image {image}\n")).await;
        let found = self.ensure_image(image).await;
        let id = match found {
            Ok(()) => self.image_id(image, "inspect image").await,
            Err(err) => Err(err.into()),
        };
        let id = match id {
            Ok(id) => id,
            Err(err) => {
                log.write(&format!("{err}\n")).await;
                log.finish().await;
                return Err(err);
            }
        };
        let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
        let options = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(version)
            .build();
        let tagged = self
            .docker
            .tag_image(&id, Some(options))
            .await
            .map_err(|err| DockerError::api(format!("tag image {image} as {tag}"), err));
        match &tagged {
            Ok(()) => log.write(&format!("{id} tagged {tag}\n")).await,
            Err(err) => log.write(&format!("{err}\n")).await,
        }
        log.finish().await;
        tagged?;
        Ok(id)
    }

    /// Removes a release: its tag unless another release has the same one,
    /// its image unless another release runs it or it is not wharf's (a
    /// prebuilt image stays), then its directory. An image still in use by
    /// a container stays too ([`crate::Runtime::prune`] gets it later).
    pub(super) async fn remove_release(&self, app: &str, release: u64) -> Result<(), RuntimeError> {
        check_app(app)?;
        let dest = self.release_dir(app, release);
        let (dir, releases) = (dest.clone(), self.app_dir(app).join("releases"));
        let (own, (other_images, other_tags)) =
            blocking("read releases in", &releases.clone(), move || {
                Ok((read_release(&dir), other_releases(&releases, release)))
            })
            .await?;
        let mut tags = own.tags;
        if tags.is_empty() {
            // Releases prepared before the `tag` file existed were tagged so.
            tags.push(image_tag(app, release, ""));
        }
        for tag in tags.iter().filter(|t| !other_tags.contains(*t)) {
            self.remove_image(tag).await?;
        }
        for image in own.images.iter().filter(|i| !other_images.contains(*i)) {
            let ours = match self.docker.inspect_image(image).await {
                Ok(info) => self.is_ours(info.config.as_ref().and_then(|c| c.labels.as_ref())),
                Err(_) => false,
            };
            if ours {
                self.remove_image(image).await?;
            }
        }
        let target = dest.clone();
        blocking("remove release", &dest, move || release::remove(&target)).await
    }

    /// Removes an image (or only the tag, if it names one of several);
    /// missing is fine, in use is left for later.
    pub(super) async fn remove_image(&self, image: &str) -> Result<bool, DockerError> {
        let options = RemoveImageOptionsBuilder::default().build();
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            Err(err) if is_conflict(&err) => {
                tracing::info!(image, error = %err, "image still in use; leaving it");
                Ok(false)
            }
            Err(err) => Err(DockerError::api(format!("remove image {image}"), err)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tags_are_valid() {
        assert_eq!(image_tag("shop", 3, "r3"), "wharf/shop:r3");
        assert_eq!(image_tag("shop", 3, ""), "wharf/shop:r3");
        assert_eq!(
            image_tag("shop", 3, "1a2b3c-dirty"),
            "wharf/shop:1a2b3c-dirty"
        );
        assert_eq!(image_tag("shop", 3, "v1.2/ü x"), "wharf/shop:v1.2---x");
        assert_eq!(image_tag("shop", 3, ".hidden"), "wharf/shop:_.hidden");
        assert_eq!(tag_of(1, &"x".repeat(300)).len(), 128);
    }

    #[test]
    fn secrets_are_masked_longest_first() {
        let values = [
            "hunter2".to_owned(),
            "hunter2-long".to_owned(),
            String::new(),
        ];
        let redactor = Redactor::new(&values);
        assert_eq!(
            redactor.redact("a hunter2-long b hunter2 c"),
            "a *** b *** c"
        );
        assert_eq!(redactor.redact("nothing"), "nothing");
    }

    #[test]
    fn pull_references() {
        assert_eq!(pull_reference("busybox"), ("busybox", "latest"));
        assert_eq!(pull_reference("postgres:16"), ("postgres", "16"));
        assert_eq!(
            pull_reference("localhost:5000/team/app"),
            ("localhost:5000/team/app", "latest")
        );
        assert_eq!(
            pull_reference("localhost:5000/team/app:v2"),
            ("localhost:5000/team/app", "v2")
        );
        assert_eq!(pull_reference("a@sha256:00"), ("a@sha256:00", ""));
    }
}
