//! `accessories`: image, command, port, env, volumes, `files` (mounted
//! read-only from the app directory), `directories` (named volumes), and
//! the name the app reaches each by on Kamal's network,
//! `<service>-<accessory>`, kept as an alias.

use crate::common::{
    PortMap, Values, is_alias, join_key, parse_port, sanitize_name, show, unique_name, volume_copy,
};
use crate::model::Accessory;
use crate::yaml::Node;

use super::Ctx;

impl Ctx {
    /// `accessories`; `service` is the app's Kamal service, which prefixes
    /// accessory containers and directories, `app` the wharf app's name.
    pub(super) fn accessories(
        &mut self,
        key: &str,
        node: &Node,
        service: &str,
        app: &str,
    ) -> Vec<Accessory> {
        let mut out: Vec<Accessory> = Vec::new();
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            if e.value.as_map().is_none() {
                self.w.add(
                    e.value.pos,
                    k,
                    format!(
                        "expected a mapping, found {}; not imported, so it will not run",
                        e.value.describe()
                    ),
                );
                continue;
            }
            let name = unique_name(&e.key, "accessory", |n| out.iter().any(|a| a.name == n));
            let mut a = Accessory {
                renamed_from: (name != e.key).then(|| k.clone()),
                name,
                ..Accessory::default()
            };
            // Kamal names the container `<service>-<name>` (or `service:`),
            // and that is the host name the app uses.
            let mut container = format!("{service}-{}", e.key);
            for f in e.value.as_map().unwrap_or_default() {
                let fk = join_key(&k, &f.key);
                let v = &f.value;
                match f.key.as_str() {
                    "image" => a.image = self.lit(v, &fk).unwrap_or_default(),
                    "cmd" => a.command = self.command(&fk, v),
                    "port" => {
                        if let Some(port) = self.accessory_port(&fk, v) {
                            a.ports.push(port.render());
                        }
                    }
                    "env" => {
                        let (env, secrets) = self.env(&fk, v);
                        a.env = env;
                        a.secrets = secrets;
                    }
                    "volumes" => {
                        for (i, item) in self.w.seq(v, &fk).iter().enumerate() {
                            let ik = format!("{fk}[{i}]");
                            if let Some(vol) = self.lit(item, &ik)
                                && let Some(vol) =
                                    self.volume(&ik, item.pos, &vol, app, &format!("`{}`", a.name))
                            {
                                a.volumes.push(vol);
                            }
                        }
                    }
                    "files" => {
                        for (i, item) in self.w.seq(v, &fk).iter().enumerate() {
                            let ik = format!("{fk}[{i}]");
                            if let Some(file) = self.lit(item, &ik)
                                && let Some(vol) = self.file(&ik, item, &file)
                            {
                                a.volumes.push(vol);
                            }
                        }
                    }
                    "directories" => {
                        for (i, item) in self.w.seq(v, &fk).iter().enumerate() {
                            let ik = format!("{fk}[{i}]");
                            let Some(dir) = self.lit(item, &ik) else { continue };
                            match dir.split_once(':') {
                                Some((src, target)) if !src.starts_with('/') => {
                                    // Kamal makes a host directory per
                                    // accessory; a named volume keeps the
                                    // data the same way.
                                    let volume = format!("{}-{}", a.name, sanitize_name(src));
                                    let from = format!("$HOME/{service}-{}/{src}", e.key);
                                    let to = format!("wharf-{app}-{volume}");
                                    self.w.add(
                                        item.pos,
                                        ik,
                                        format!("Kamal kept this in the host directory {from}; wharf keeps it in the named volume `{to}`, which starts empty, so the data there now will not be seen by `{}`: before the first deploy, stop the accessory and copy it with `{}`", a.name, volume_copy(&from, &to)),
                                    );
                                    a.volumes.push(format!("{volume}:{target}"));
                                }
                                Some(_) => a.volumes.push(dir),
                                None => self.w.add(
                                    item.pos,
                                    ik,
                                    format!("`{dir}` is not `SOURCE:TARGET`; not carried over, so nothing is mounted and the accessory's data there is lost whenever it is replaced"),
                                ),
                            }
                        }
                    }
                    "options" => {
                        let (memory, cpus) = self.options(&fk, v);
                        a.memory = memory;
                        a.cpus = cpus;
                    }
                    "service" => {
                        if let Some(s) = self.lit(v, &fk) {
                            container = s;
                        }
                    }
                    "host" | "hosts" | "role" | "roles" | "tag" | "tags" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf runs accessories on the machine it deploys to (several machines come later), so there is no host to choose",
                    ),
                    "labels" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf labels its containers itself; not carried over, so what read these labels no longer sees them",
                    ),
                    "registry" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf pulls accessory images anonymously, so an image that needs these credentials fails to pull: `docker login` on the server first",
                    ),
                    "proxy" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf's proxy routes to the app's processes, not to accessories, so requests to this accessory's hosts get 404",
                    ),
                    "network" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf puts accessories on the app's network; not carried over, so it is not on this one",
                    ),
                    _ => self.w.add(
                        f.key_pos,
                        fk,
                        "not supported by wharf; the accessory runs without it",
                    ),
                }
            }
            if a.image.is_empty() {
                self.w.add(
                    e.key_pos,
                    k,
                    "not imported, so it will not run: it has no `image` wharf can use",
                );
                continue;
            }
            for alias in [container, e.key.clone()] {
                if alias != a.name && is_alias(&alias) && !a.aliases.contains(&alias) {
                    a.aliases.push(alias);
                }
            }
            out.push(a);
        }
        if node.as_map().is_none() && !node.is_null() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a mapping of accessories, found {}; not carried over, so none of them will run",
                    node.describe()
                ),
            );
        }
        out
    }

    /// A `files` entry, `local:remote`: the local file (in the app) mounted
    /// read-only where Kamal uploaded it.
    fn file(&mut self, key: &str, item: &Node, file: &str) -> Option<String> {
        let Some((local, remote)) = file.split_once(':') else {
            self.w.add(
                item.pos,
                key,
                format!("`{file}` is not `LOCAL:REMOTE`; not carried over, so the file is missing in the container"),
            );
            return None;
        };
        let Some(local) = crate::common::tidy_relative(local) else {
            self.w.add(
                item.pos,
                key,
                format!("`{local}` is outside the app directory, which wharf mounts files from; not carried over, so {remote} is missing in the container: copy the file into the app"),
            );
            return None;
        };
        if local.ends_with(".erb") {
            self.w.add(
                item.pos,
                key,
                format!("Kamal rendered `{local}` as an ERB template before uploading it; wharf mounts it as it is, so its `<%= … %>` tags reach {remote} unevaluated: write the rendered file and mount that"),
            );
        }
        let remote = remote.trim_end_matches(":ro");
        Some(format!("./{local}:{remote}:ro"))
    }

    /// Kamal's accessory `port`: `5432`, `"5432:5432"` or
    /// `"127.0.0.1:5432:5432"`. Without a host IP Kamal (docker) binds every
    /// interface; wharf binds 127.0.0.1, which is said.
    fn accessory_port(&mut self, key: &str, node: &Node) -> Option<PortMap> {
        let text = self.lit(node, key)?;
        let mut port = match parse_port(&text) {
            Ok(p) => p,
            Err(why) => {
                self.w.add(
                    node.pos,
                    key,
                    format!("{why}; not carried over, so the port is reachable on the app's network only"),
                );
                return None;
            }
        };
        if port.host_port.is_none() {
            port.host_port = Some(port.container_port);
        }
        if port.binds_all() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "{} was published on every interface; wharf binds it to 127.0.0.1 ({}), so other machines can no longer reach it: add a host IP to expose it further",
                    show(node),
                    port.render()
                ),
            );
        }
        Some(port)
    }
}
