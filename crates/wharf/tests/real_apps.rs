//! Real apps as they are, end to end with the real `wharf` binary: a
//! process's named volume keeps what the app wrote across deploys and a
//! rollback (on this machine's Docker engine and on the process runtime),
//! an app of two images deploys and rolls back as one release, and a page
//! rendered by one release still gets its fingerprinted assets after the
//! next is live. Docker tests fail (never skip) without an engine.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::docker::{Cleanup, put, read, serial, static_hello};
use support::{App, Server, get_from, live_release};

fn app_name(test: &str) -> String {
    format!("r{}-{test}", std::process::id())
}

/// An app directory with the static hello binary, `files` (path, text)
/// and `toml` as its wharf.toml.
fn app_dir(files: &[(&str, &str)], toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(static_hello(), dir.path().join("hello")).unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(dir.path().join("wharf.toml"), toml).unwrap();
    dir
}

/// What every volume test shows: a value written through the app by
/// release 1 is read back by releases 2, 3 and 4 and, after a rollback,
/// by release 3 again; then `wharf volumes` lists the volume with its size
/// and user, refuses to remove it while mounted, and prune leaves it.
fn a_value_survives_three_deploys_and_a_rollback(server: &Server, dir: &Path, app: &str) {
    assert_eq!(server.deploy_dir(dir, &[]), 1);
    assert_eq!(put(server.proxy, "/kv/note", "written by release 1"), 204);
    for release in 2..=4 {
        assert_eq!(server.deploy_dir(dir, &[]), release);
        assert_eq!(
            read(server.proxy, "/kv/note"),
            (200, "written by release 1".to_owned()),
            "release {release} lost the volume's data"
        );
    }
    assert_eq!(server.rollback(None), 3);
    assert_eq!(
        read(server.proxy, "/kv/note"),
        (200, "written by release 1".to_owned()),
        "the rollback lost the volume's data"
    );

    let volumes: serde_json::Value =
        serde_json::from_str(&server.ok(&["volumes", app, "--json"])).unwrap();
    let volume = &volumes[0];
    assert_eq!(volume["name"], "storage", "{volumes:#}");
    assert_eq!(volume["users"], serde_json::json!(["process web"]));
    assert!(
        volume["size_bytes"].as_u64().unwrap() >= "written by release 1".len() as u64,
        "{volumes:#}"
    );
    let table = server.ok(&["volumes"]);
    assert!(
        table.contains("storage") && table.contains("process web"),
        "{table}"
    );

    let out = server.wharf(&["volumes", "remove", app, "storage", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is mounted by process web") && stderr.contains("deploy first"),
        "{stderr}"
    );
    server.ok(&["prune"]);
    assert_eq!(
        read(server.proxy, "/kv/note"),
        (200, "written by release 1".to_owned()),
        "prune touched the volume"
    );
}

#[test]
fn a_docker_process_volume_keeps_its_data_across_deploys_and_a_rollback() {
    let _serial = serial();
    let name = app_name("vol");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    let dir = app_dir(
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY hello /hello\nENV HELLO_HOST=0.0.0.0\nCMD [\"/hello\"]\n",
        )],
        &format!(
            r#"name = "{name}"
runtime = "docker"

[processes.web]
instances = 2
volumes = ["storage:/rails/storage"]
env = {{ HELLO_KV_DIR = "/rails/storage" }}
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms" }}

[deploy]
health_timeout = "20s"
drain_timeout = "2s"
"#
        ),
    );
    a_value_survives_three_deploys_and_a_rollback(&server, dir.path(), &name);
    let volume = format!("wharf-{name}-storage");
    assert!(guard.engine.volume_exists(&volume));

    // Removing the app keeps the data unless asked; then it can go.
    server.ok(&["apps", "remove", &name, "--yes"]);
    assert!(
        guard.engine.volume_exists(&volume),
        "apps remove took the data"
    );
}

#[test]
fn a_process_runtime_volume_is_linked_into_every_release() {
    let app = App::builder("vol").build();
    let bin = support::hello_bin().display().to_string();
    app.write_config(&format!(
        r#"name = "vol"

[processes.web]
command = "{bin}"
instances = 2
volumes = ["storage:storage"]
env = {{ HELLO_KV_DIR = "storage" }}
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms" }}

[deploy]
drain_timeout = "1s"
"#
    ));
    let server = Server::start();
    a_value_survives_three_deploys_and_a_rollback(&server, app.path(), "vol");

    // The data lives outside every release, which only link to it.
    let volume = server.data.join("apps/vol/volumes/storage");
    assert_eq!(
        std::fs::read_to_string(volume.join("note")).unwrap(),
        "written by release 1"
    );
    let release = server.data.join("apps/vol/releases/3/storage");
    assert_eq!(std::fs::read_link(&release).unwrap(), volume);

    let out = server.wharf(&["volumes", "remove", "vol", "nothing", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("vol has no volume \"nothing\""), "{stderr}");
}

#[test]
fn an_app_of_two_images_deploys_and_rolls_back_as_one_release() {
    let _serial = serial();
    let name = app_name("two");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    // The backend's image has an entrypoint that does not exist: only
    // wharf.toml's `entrypoint` makes it start.
    let dockerfiles = |v: &str| {
        [
            (
                "frontend/Dockerfile",
                format!(
                    "FROM scratch\nCOPY hello /hello\nENV HELLO_HOST=0.0.0.0 HELLO_MESSAGE=frontend-{v}\nCMD [\"/hello\"]\n"
                ),
            ),
            (
                "backend.Dockerfile",
                format!(
                    "FROM scratch\nCOPY hello /hello\nENV HELLO_HOST=0.0.0.0 HELLO_MESSAGE=backend-{v}\nENTRYPOINT [\"/not-here\"]\n"
                ),
            ),
        ]
    };
    let dir = app_dir(
        &[],
        &format!(
            r#"name = "{name}"
runtime = "docker"

[processes.frontend]
build = {{ dockerfile = "frontend/Dockerfile", context = "." }}
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms" }}

[processes.backend]
build = {{ dockerfile = "backend.Dockerfile" }}
entrypoint = "/hello"
http = {{ host = "api.localhost" }}
health = {{ path = "/up", interval = "200ms" }}

[deploy]
health_timeout = "20s"
drain_timeout = "1s"
"#
        ),
    );
    let write = |v: &str| {
        for (path, text) in dockerfiles(v) {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    };
    let pages = || {
        let (_, _, front) = get_from(server.proxy, "localhost", "/", &[]);
        let (_, _, back) = get_from(server.proxy, "api.localhost", "/", &[]);
        (
            front
                .contains("frontend-")
                .then(|| front.split("frontend-").nth(1).unwrap()[..2].to_owned()),
            back.contains("backend-")
                .then(|| back.split("backend-").nth(1).unwrap()[..2].to_owned()),
        )
    };
    let both = |v: &str| (Some(v.to_owned()), Some(v.to_owned()));

    write("v1");
    assert_eq!(server.deploy_dir(dir.path(), &[]), 1);
    assert_eq!(pages(), both("v1"));
    write("v2");
    assert_eq!(server.deploy_dir(dir.path(), &[]), 2);
    assert_eq!(pages(), both("v2"));
    // No app image was built: every process has its own.
    let images = guard.engine.app_images(&name);
    assert!(
        images
            .iter()
            .all(|i| i.ends_with("-frontend") || i.ends_with("-backend")),
        "{images:?}"
    );
    assert_eq!(server.rollback(None), 1);
    assert_eq!(
        pages(),
        both("v1"),
        "the rollback did not bring back both images"
    );
    assert_eq!(live_release(&server), 1);
}

/// Asset bridging, as a user sees it: a page of release 1 links
/// `app-one.css`, which release 2's image does not have; once release 2
/// is live, that link still answers.
fn a_page_keeps_its_assets_across_a_deploy(server: &Server, dir: &Path, assets: &Path) {
    std::fs::create_dir_all(assets).unwrap();
    std::fs::write(assets.join("app-one.css"), "one { }").unwrap();
    assert_eq!(server.deploy_dir(dir, &[]), 1);
    let (_, page_of_1) = read(server.proxy, "/");
    assert!(page_of_1.contains("/static/app-one.css"), "{page_of_1}");

    std::fs::remove_file(assets.join("app-one.css")).unwrap();
    std::fs::write(assets.join("app-two.css"), "two { }").unwrap();
    assert_eq!(server.deploy_dir(dir, &[]), 2);
    let (_, page_of_2) = read(server.proxy, "/");
    // Release 2's page links its own stylesheet (and, as under Kamal, the
    // bridged directory holds release 1's too).
    assert!(
        page_of_2.contains("release: <code>2</code>") && page_of_2.contains("/static/app-two.css"),
        "release 2 is not live: {page_of_2}"
    );
    assert_eq!(
        read(server.proxy, "/static/app-one.css"),
        (200, "one { }".to_owned()),
        "release 1's page lost its stylesheet"
    );
    assert_eq!(
        read(server.proxy, "/static/app-two.css"),
        (200, "two { }".to_owned())
    );
}

#[test]
fn docker_assets_of_the_previous_release_stay_servable() {
    let _serial = serial();
    let name = app_name("assets");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    let dir = app_dir(
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY hello /hello\nCOPY public/assets /rails/public/assets\nENV HELLO_HOST=0.0.0.0 HELLO_STATIC_DIR=/rails/public/assets\nCMD [\"/hello\"]\n",
        )],
        &format!(
            r#"name = "{name}"
runtime = "docker"
asset_path = "/rails/public/assets"

[processes.web]
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms" }}

[deploy]
health_timeout = "20s"
drain_timeout = "1s"
"#
        ),
    );
    let assets = dir.path().join("public/assets");
    a_page_keeps_its_assets_across_a_deploy(&server, dir.path(), &assets);
}

#[test]
fn process_runtime_assets_of_the_previous_release_stay_servable() {
    let app = App::builder("assets").build();
    let bin = support::hello_bin().display().to_string();
    app.write_config(&format!(
        r#"name = "assets"
asset_path = "public/assets"

[processes.web]
command = "{bin}"
env = {{ HELLO_STATIC_DIR = "public/assets" }}
http = {{ path = "/" }}
health = {{ path = "/up", interval = "200ms" }}

[deploy]
drain_timeout = "1s"
"#
    ));
    let server = Server::start();
    let assets = app.path().join("public/assets");
    a_page_keeps_its_assets_across_a_deploy(&server, app.path(), &assets);
}

/// Doubles of the images the image-only compose fixture names. The engine
/// here has no registry to pull from, so each is built locally under the
/// fixture's own reference, from Debian's static busybox and the example
/// app: the vendor's app image runs `bundle exec rails s` as the hello web
/// app (behind its `docker/entrypoints/rails.sh`, which execs its
/// arguments as the real one does) and `bundle exec sidekiq` as a worker
/// that stays up; the Postgres double's `pg_isready` passes only when the
/// password secret reached it; the Redis double's `redis-server` stays up.
fn build_image_only_doubles(engine: &support::docker::Engine, scratch: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "this test needs Debian's busybox-static at /bin/busybox (`.ci/run` installs it)"
    );
    let shell_image = "FROM scratch\nCOPY busybox /bin/busybox\n\
        RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
        ENV PATH=/usr/local/bin:/bin\n";
    let context = |name: &str, files: &[(&str, &str)], dockerfile: String| {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(busybox, dir.join("busybox")).unwrap();
        std::fs::copy(static_hello(), dir.join("hello")).unwrap();
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::write(&path, text).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        dir
    };
    let app = context(
        "helpdesk",
        &[
            (
                "bundle",
                "#!/bin/sh\ncase \"$*\" in\n  \"exec rails s\"*) exec /hello ;;\n  \"exec sidekiq\"*) exec sleep 1000000 ;;\n  *) echo \"bundle double: $*\" >&2; exit 1 ;;\nesac\n",
            ),
            ("rails.sh", "#!/bin/sh\nexec \"$@\"\n"),
        ],
        format!(
            "{shell_image}COPY hello /hello\nCOPY bundle /usr/local/bin/bundle\n\
             COPY rails.sh /app/docker/entrypoints/rails.sh\nWORKDIR /app\n\
             ENV HELLO_HOST=0.0.0.0\nCMD [\"/hello\"]\n"
        ),
    );
    engine.build_image(&app, "ghcr.io/helpdesk-oss/helpdesk:v3.15.0");
    let services = context(
        "services",
        &[
            ("pg_isready", "#!/bin/sh\n[ -n \"$POSTGRES_PASSWORD\" ]\n"),
            ("redis-server", "#!/bin/sh\nexec sleep 1000000\n"),
        ],
        format!(
            "{shell_image}COPY pg_isready redis-server /usr/local/bin/\nCMD [\"sleep\", \"1000000\"]\n"
        ),
    );
    engine.build_image(&services, "pgvector/pgvector:pg16");
    engine.build_image(&services, "redis:7-alpine");
}

/// `wharf import compose` on the image-only fixture (a vendor's prebuilt
/// image running the web app and a same-image worker, Postgres and Redis
/// next to them) writes a file that deploys as it is: the web process
/// answers through the proxy with the values of its `env_file`, the worker
/// runs from the same image, and the accessories are up.
#[test]
fn an_imported_image_only_compose_app_deploys() {
    let _serial = serial();
    let name = app_name("helpdesk");
    let images = [
        "ghcr.io/helpdesk-oss/helpdesk:v3.15.0",
        "pgvector/pgvector:pg16",
        "redis:7-alpine",
    ];
    let guard = Cleanup::new(&[&name], &images);
    build_image_only_doubles(&guard.engine, guard.scratch());

    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wharf-import/tests/fixtures/compose/image-only");
    for file in ["docker-compose.yml", ".env"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
    }
    let wharf = |args: &[&str]| {
        std::process::Command::new(support::wharf_bin())
            .args(args)
            .current_dir(dir.path())
            .env_remove("WHARF_DATA")
            .output()
            .unwrap()
    };
    let out = wharf(&["import", "compose", "--name", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wharf(&["config", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The Postgres secret comes from the server's environment, as the
    // import's warning says.
    let server = Server::start_on(&guard.data, &[("POSTGRES_PASSWORD", "pg-from-server")]);
    assert_eq!(server.deploy_dir(dir.path(), &[]), 1);

    let (status, _, page) = get_from(server.proxy, "localhost", "/", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("release: <code>1</code>"), "{page}");
    // `env_file = [".env"]` was read at deploy time, `[env]` applied.
    for var in ["SECRET_KEY_BASE", "FRONTEND_URL", "RAILS_ENV"] {
        let (status, _, _) = get_from(server.proxy, "localhost", &format!("/has-env/{var}"), &[]);
        assert_eq!(status, 200, "{var} is not set in the web process");
    }
    let app_status = &server.status()["apps"][0];
    let processes: Vec<&str> = app_status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["process"].as_str().unwrap())
        .collect();
    assert!(
        processes.contains(&"rails") && processes.contains(&"sidekiq"),
        "{app_status:#}"
    );
    let containers = guard.engine.containers(&guard.data);
    for accessory in ["postgres", "redis"] {
        assert!(
            containers.values().any(|(_, labels, state)| {
                labels.get("wharf.accessory").map(String::as_str) == Some(accessory)
                    && state == "running"
            }),
            "{accessory} is not running: {containers:?}"
        );
    }
    assert!(guard.engine.volume_exists(&format!("wharf-{name}-storage")));
}
