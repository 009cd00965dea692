//! Remote operation end to end, with the real binary: a server serving
//! its API over `https://` with tokens, and the CLI run as on another
//! machine (its own HOME and working directory, never told the server's
//! data directory) deploying by upload, following progress and rolling
//! back; scopes (403), revocation (401), the throttle on failures (429),
//! and the pinned certificate refused once it changes. The same over
//! `ssh://`, against Debian's `openssh-server` started by the test on a
//! loopback port with generated keys (`.ci/run` installs it; the test
//! fails without it). And uploads that are not what `wharf deploy`
//! sends — garbage, cut short, over the limit, `../`, absolute paths,
//! links out — are refused with a clear error and leave nothing.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{App, Server, get, remote_cli as remote, wharf_bin};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A token made on the server's machine, through its local socket.
fn token(server: &Server, scope: &str) -> String {
    server
        .ok(&["token", "create", "--scope", scope])
        .trim()
        .to_owned()
}

fn release_of(out: &Output) -> i64 {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["release"].as_i64().unwrap()
}

#[test]
fn https_api_deploys_by_upload_and_checks_tokens_and_the_pinned_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_args(&data, &[], &["--api", "127.0.0.1:0"]);
    let api = server.api.expect("the server reports its API address");
    let fingerprint = server.api_fingerprint.clone().unwrap();
    let url = format!("https://{api}");
    let deploy_token = token(&server, "deploy");
    let read_token = token(&server, "read");

    let app = App::builder("faraway").build();
    let home = tmp.path().join("laptop-home");
    std::fs::create_dir_all(&home).unwrap();
    let as_deployer = [
        ("WHARF_SERVER", url.as_str()),
        ("WHARF_TOKEN", deploy_token.as_str()),
    ];

    // Deploy by upload, following the progress on stderr.
    let out = remote(app.path(), &home, &as_deployer, &["deploy", ".", "--json"]);
    assert_eq!(release_of(&out), 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "pinned its certificate, SHA-256 fingerprint {fingerprint}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("uploading ") && stderr.contains("health checks"),
        "{stderr}"
    );
    assert_eq!(get(server.proxy, "/").1, Some(1));
    // The server keeps the upload as its own source.
    let sources: Vec<_> = std::fs::read_dir(data.join("sources"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(sources.len(), 1, "{sources:?}");

    let out = remote(app.path(), &home, &as_deployer, &["deploy", ".", "--json"]);
    assert_eq!(release_of(&out), 2);
    assert!(text(&out.stderr).contains("the server already has this source"));
    // The release records its source: the upload's hash.
    let out = remote(app.path(), &home, &as_deployer, &["releases", "--json"]);
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = releases[0]["source"].as_str().unwrap();
    assert_eq!(source, format!("upload sha256:{}", sources[0]));
    // A repository on the server's disk is not a remote caller's to name.
    let out = remote(
        app.path(),
        &home,
        &as_deployer,
        &["deploy", "--git", "/srv/git/anything.git", "--ref", "main"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("only a caller on the server may name"),
        "{}",
        text(&out.stderr)
    );
    // The client's directory is not needed any more: roll back from elsewhere.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = remote(&elsewhere, &home, &as_deployer, &["rollback", "--json"]);
    assert_eq!(release_of(&out), 1);
    assert_eq!(get(server.proxy, "/").1, Some(1));

    // A newer source; the older one, no longer any app's, goes with
    // prune once it is old enough not to be an upload awaiting its deploy.
    std::fs::write(app.path().join("NOTES.txt"), "changed").unwrap();
    let out = remote(app.path(), &home, &as_deployer, &["deploy", ".", "--json"]);
    assert_eq!(release_of(&out), 3);
    let old = data.join("sources").join(&sources[0]);
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let pruned = server.ok(&["prune"]);
    assert!(
        pruned.contains(&format!("removed source {}", sources[0])),
        "{pruned}"
    );
    assert!(!old.exists());
    assert_eq!(std::fs::read_dir(data.join("sources")).unwrap().count(), 1);

    // A read token reads, and cannot deploy (403).
    let as_reader = [
        ("WHARF_SERVER", url.as_str()),
        ("WHARF_TOKEN", read_token.as_str()),
    ];
    let out = remote(&elsewhere, &home, &as_reader, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = remote(app.path(), &home, &as_reader, &["deploy", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("this token's scope is `read`, and this needs `deploy`"),
        "{}",
        text(&out.stderr)
    );
    // A deploy token cannot name a directory on the server.
    let out = remote(&elsewhere, &home, &as_deployer, &["token", "list"]);
    assert!(
        text(&out.stderr).contains("needs `admin`"),
        "{}",
        text(&out.stderr)
    );

    // Revoked: 401.
    let id = read_token.split('_').nth(1).unwrap();
    server.ok(&["token", "revoke", id]);
    let out = remote(&elsewhere, &home, &as_reader, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("this token is unknown, revoked or expired"),
        "{}",
        text(&out.stderr)
    );
    // No token: 401 saying how to get one.
    let out = remote(
        &elsewhere,
        &home,
        &[("WHARF_SERVER", url.as_str())],
        &["status"],
    );
    assert!(text(&out.stderr).contains("this API needs a token"));

    // Failures are throttled per peer: past ten in a minute, 429.
    let forged = format!("wharf_{}_{}", "0".repeat(16), "0".repeat(64));
    let as_guesser = [
        ("WHARF_SERVER", url.as_str()),
        ("WHARF_TOKEN", forged.as_str()),
    ];
    let mut throttled = false;
    for _ in 0..12 {
        let out = remote(&elsewhere, &home, &as_guesser, &["status"]);
        if text(&out.stderr).contains("too many failed authentications") {
            throttled = true;
            break;
        }
    }
    assert!(
        throttled,
        "twelve failed authentications were never throttled"
    );

    // A new certificate on the same address is refused until forgotten.
    server.stop();
    std::fs::remove_dir_all(data.join("tls/api")).unwrap();
    let api_arg = api.to_string();
    let server = Server::start_args(&data, &[], &["--api", &api_arg]);
    assert_ne!(
        server.api_fingerprint.as_deref(),
        Some(fingerprint.as_str())
    );
    let out = remote(&elsewhere, &home, &as_deployer, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the server's certificate changed")
            && stderr.contains("wharf remote forget"),
        "{stderr}"
    );
    let out = remote(&elsewhere, &home, &[], &["remote", "forget", &api_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = remote(&elsewhere, &home, &as_deployer, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Debian's sshd on a free loopback port, accepting one generated key for
/// the user running the test.
struct Sshd {
    child: std::process::Child,
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.is_file(),
            "this test needs Debian's openssh-server (/usr/sbin/sshd); `.ci/run` installs it"
        );
        let keygen = |path: &Path| {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .output()
                .expect("ssh-keygen (openssh-client) is needed");
            assert!(out.status.success(), "{}", text(&out.stderr));
        };
        let (host_key, key) = (dir.join("host_key"), dir.join("user_key"));
        keygen(&host_key);
        keygen(&key);
        std::fs::copy(key.with_extension("pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {}\n",
                host_key.display(),
                dir.join("authorized_keys").display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        // The privilege separation directory Debian's sshd expects.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen:\n{}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            child,
            port,
            key,
            known_hosts: dir.join("known_hosts"),
        }
    }

    /// `WHARF_SSH_COMMAND` for this server and key.
    fn ssh_command(&self) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new",
            self.key.display(),
            self.known_hosts.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_transport_deploys_follows_progress_and_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let data = tmp.path().join("data");
    let server = Server::start_on(&data, &[]);
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user.trim(),
        sshd.port,
        server.data.display()
    );
    let ssh = sshd.ssh_command();
    let bin = wharf_bin().display().to_string();
    let env = [
        ("WHARF_SERVER", url.as_str()),
        ("WHARF_SSH_COMMAND", ssh.as_str()),
        ("WHARF_REMOTE_BIN", bin.as_str()),
    ];
    let home = tmp.path().join("laptop-home");
    std::fs::create_dir_all(&home).unwrap();
    let app = App::builder("overssh").build();

    let out = remote(app.path(), &home, &env, &["deploy", ".", "--json"]);
    assert_eq!(release_of(&out), 1);
    assert!(
        text(&out.stderr).contains("switch traffic"),
        "{}",
        text(&out.stderr)
    );
    let out = remote(app.path(), &home, &env, &["deploy", ".", "--json"]);
    assert_eq!(release_of(&out), 2);
    let out = remote(app.path(), &home, &env, &["rollback", "--json"]);
    assert_eq!(release_of(&out), 1);
    assert_eq!(get(server.proxy, "/").1, Some(1));
    let out = remote(app.path(), &home, &env, &["releases", "--app", "overssh"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("live"), "{}", text(&out.stdout));
    let out = remote(app.path(), &home, &env, &["logs", "--tail", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A data directory with no server there: exit 3, saying so.
    let nowhere = format!(
        "ssh://{}@127.0.0.1:{}/nonexistent/data",
        user.trim(),
        sshd.port
    );
    let env = [
        ("WHARF_SERVER", nowhere.as_str()),
        ("WHARF_SSH_COMMAND", ssh.as_str()),
        ("WHARF_REMOTE_BIN", bin.as_str()),
    ];
    let out = remote(app.path(), &home, &env, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no wharf server is running on /nonexistent/data"));
}

/// `PUT /v1/sources/{sha}` over the server's socket: (status, body).
fn put_source(socket: &Path, sha256: &str, body: Vec<u8>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use http_body_util::BodyExt as _;
        let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::put(format!("/v1/sources/{sha256}"))
            .header("host", "wharf")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

/// A tar archive of raw entries: (name, kind, link target, data), names
/// written as given (`tar`'s own checks would refuse the hostile ones).
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn bad_uploads_are_refused_and_change_nothing() {
    use tar::EntryType::{Link, Regular, Symlink};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_args(&data, &[], &["--upload-limit-mb", "1"]);
    let socket = server.data.join("wharf.sock");
    // Outside the data dir: what a hostile archive would aim at.
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "original").unwrap();

    let good = raw_tar(&[("wharf.toml", Regular, "", b"name = \"x\"\n")]);
    let mut cut = good.clone();
    cut.truncate(700);
    let big = vec![b'x'; 2 << 20];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "garbage",
            b"this is not a tar archive at all, not even close".repeat(20),
            400,
            "not a tar archive",
        ),
        ("cut short", cut, 400, "cut short"),
        (
            "over the limit",
            raw_tar(&[("big.bin", Regular, "", &big)]),
            413,
            "over the server's limit",
        ),
        (
            "parent dir",
            raw_tar(&[("../victim", Regular, "", b"owned")]),
            400,
            "`../victim`",
        ),
        (
            "absolute",
            raw_tar(&[("/tmp/owned", Regular, "", b"owned")]),
            400,
            "`/tmp/owned`",
        ),
        (
            "symlink out",
            raw_tar(&[("out", Symlink, "../../victim", b"")]),
            400,
            "`out`",
        ),
        (
            "absolute symlink",
            raw_tar(&[
                ("etc", Symlink, "/etc", b""),
                ("etc/owned", Regular, "", b"x"),
            ]),
            400,
            "`etc`",
        ),
        (
            "hard link out",
            raw_tar(&[("hard", Link, "../victim", b"")]),
            400,
            "`hard`",
        ),
    ];
    for (what, body, status, says) in cases {
        let sha = sha256_hex(&body);
        let (got, answer) = put_source(&socket, &sha, body);
        assert_eq!(got, status, "{what}: {answer}");
        assert!(answer.contains(says), "{what}: {answer}");
        assert!(
            !server.data.join("sources").join(&sha).exists(),
            "{what} was kept"
        );
    }
    // A hash that is not the body's.
    let (got, answer) = put_source(&socket, &"a".repeat(64), good.clone());
    assert_eq!(got, 400, "{answer}");
    assert!(answer.contains("SHA-256"), "{answer}");

    // Nothing outside, and nothing half-made inside.
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");
    assert!(!Path::new("/tmp/owned").exists());
    let left: Vec<String> = std::fs::read_dir(server.data.join("sources"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // And a good upload is still taken.
    let sha = sha256_hex(&good);
    let (got, answer) = put_source(&socket, &sha, good);
    assert_eq!(got, 200, "{answer}");
    assert!(
        server
            .data
            .join("sources")
            .join(&sha)
            .join("wharf.toml")
            .is_file()
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=wharf test",
            "-c",
            "user.email=test@wharf.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is needed");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// `wharf deploy --git REPO --ref main`: the server fetches the commit
/// itself (a bare repository on this machine stands in for a forge's), and
/// the release records the repository and commit.
#[test]
fn deploy_from_git_fetches_the_commit_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_on(&tmp.path().join("data"), &[]);
    let bare = tmp.path().join("origin.git");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let app = App::builder("fromgit").build();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(app.path().join("wharf.toml"), work.join("wharf.toml")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "wharf.toml"]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let head = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&work)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = server
        .cmd(&[
            "deploy",
            "--git",
            bare.to_str().unwrap(),
            "--ref",
            "main",
            "--json",
        ])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(release_of(&out), 1);
    assert_eq!(get(server.proxy, "/").1, Some(1));
    let releases: serde_json::Value =
        serde_json::from_str(&server.ok(&["releases", "--json", "--app", "fromgit"])).unwrap();
    assert_eq!(releases[0]["revision"], head[..12]);
    assert_eq!(
        releases[0]["source"],
        format!("git {} {head}", bare.display())
    );
    // A ref that is not there: a clear error, nothing deployed.
    let out = server.wharf(&["deploy", "--git", bare.to_str().unwrap(), "--ref", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("could not fetch `nope`"),
        "{}",
        text(&out.stderr)
    );
    let out = server.wharf(&["deploy", "--git", "ext::sh -c evil", "--ref", "main"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a git URL"),
        "{}",
        text(&out.stderr)
    );
}
