//! Scopes, grants, and which endpoint needs what.
//!
//! `read` sees status, releases, events, logs and webhook deliveries;
//! `deploy` also changes an app (deploy, rollback, promote, abort, run,
//! exec, maintenance, accessories); `admin` also removes apps and volumes,
//! prunes, manages tokens and sets an app's webhook secret and forge token. A token may be limited to one app: it then reaches only
//! that app's endpoints, never the server-wide ones.
//!
//! [`required`] reads a request's method and path. GET and HEAD need
//! `read`; other methods `deploy`; the admin endpoints are listed; a path
//! this module does not know needs `admin` (fail closed).

use std::fmt;
use std::str::FromStr;

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Deploy,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Deploy, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "deploy" => Ok(Scope::Deploy),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "`{other}` is not a scope; use read, deploy or admin"
            )),
        }
    }
}

/// Which app an endpoint acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppIn {
    /// A server-wide endpoint (status of every app, prune, tokens).
    Server,
    /// The app named in the path.
    Path(String),
    /// The app named in the request's body (`POST /v1/deploys`): the
    /// handler checks it with [`Grant::allows_app`] once it has read it.
    Body,
}

/// What an endpoint needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub scope: Scope,
    pub app: AppIn,
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    /// `None`: every app.
    pub app: Option<String>,
}

impl Grant {
    /// `Ok` when this grant covers `req`; else why not, to answer 403 with.
    pub fn allows(&self, req: &Requirement) -> Result<(), String> {
        if self.scope < req.scope {
            return Err(format!(
                "this token's scope is `{}`, and this needs `{}`; create a token with `wharf token create --scope {}`",
                self.scope, req.scope, req.scope
            ));
        }
        match (&self.app, &req.app) {
            (None, _) | (Some(_), AppIn::Body) => Ok(()),
            (Some(mine), AppIn::Path(app)) => self
                .allows_app(app)
                .map_err(|_| format!("this token is limited to the app `{mine}`, not `{app}`")),
            (Some(mine), AppIn::Server) => Err(format!(
                "this token is limited to the app `{mine}`, and this asks about the whole server; use a token without `--app`"
            )),
        }
    }

    /// For [`AppIn::Body`]: whether the app the body names is covered.
    pub fn allows_app(&self, app: &str) -> Result<(), String> {
        match &self.app {
            Some(mine) if mine != app => Err(format!(
                "this token is limited to the app `{mine}`, not `{app}`"
            )),
            _ => Ok(()),
        }
    }
}

/// What the endpoint at `method` `path` needs (the path without its query).
pub fn required(method: &str, path: &str) -> Requirement {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let read_only = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let by_method = if read_only {
        Scope::Read
    } else {
        Scope::Deploy
    };
    let admin = |app| Requirement {
        scope: Scope::Admin,
        app,
    };
    match segments.as_slice() {
        ["v1", "status"] | ["v1", "certs"] if read_only => Requirement {
            scope: Scope::Read,
            app: AppIn::Server,
        },
        ["v1", "deploys"] if !read_only => Requirement {
            scope: Scope::Deploy,
            app: AppIn::Body,
        },
        ["v1", "tokens", ..] | ["v1", "prune"] => admin(AppIn::Server),
        // Uploaded sources are content-addressed and not an app's until a
        // deploy names one (which checks the app).
        ["v1", "sources", _] => Requirement {
            scope: Scope::Deploy,
            app: AppIn::Body,
        },
        // Removing an app or a volume destroys data.
        ["v1", "apps", app] if method.eq_ignore_ascii_case("DELETE") => {
            admin(AppIn::Path((*app).to_owned()))
        }
        ["v1", "apps", app, "volumes", _] if method.eq_ignore_ascii_case("DELETE") => {
            admin(AppIn::Path((*app).to_owned()))
        }
        // Setting a webhook secret or a forge token hands out a credential.
        ["v1", "apps", app, "hooks", ..] if !read_only => admin(AppIn::Path((*app).to_owned())),
        ["v1", "apps", app, ..] if !app.is_empty() => Requirement {
            scope: by_method,
            app: AppIn::Path((*app).to_owned()),
        },
        ["v1", "jobs", ..] => Requirement {
            // A job names its app in its row; the handler checks it.
            scope: by_method,
            app: AppIn::Body,
        },
        _ => admin(AppIn::Server),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_their_needs() {
        let app = |a: &str| AppIn::Path(a.to_owned());
        let table: &[(&str, &str, Scope, AppIn)] = &[
            ("GET", "/v1/status", Scope::Read, AppIn::Server),
            ("GET", "/v1/certs", Scope::Read, AppIn::Server),
            ("POST", "/v1/deploys", Scope::Deploy, AppIn::Body),
            ("PUT", "/v1/sources/ab12", Scope::Deploy, AppIn::Body),
            ("GET", "/v1/sources/ab12", Scope::Deploy, AppIn::Body),
            ("GET", "/v1/apps/shop/releases", Scope::Read, app("shop")),
            ("GET", "/v1/apps/shop/logs", Scope::Read, app("shop")),
            ("POST", "/v1/apps/shop/rollback", Scope::Deploy, app("shop")),
            ("POST", "/v1/apps/shop/exec", Scope::Deploy, app("shop")),
            (
                "POST",
                "/v1/apps/shop/accessories/db/restart",
                Scope::Deploy,
                app("shop"),
            ),
            ("DELETE", "/v1/apps/shop", Scope::Admin, app("shop")),
            (
                "DELETE",
                "/v1/apps/shop/volumes/storage",
                Scope::Admin,
                app("shop"),
            ),
            ("GET", "/v1/apps/shop/volumes", Scope::Read, app("shop")),
            (
                "POST",
                "/v1/apps/shop/hooks/secret",
                Scope::Admin,
                app("shop"),
            ),
            (
                "PUT",
                "/v1/apps/shop/hooks/forge-token",
                Scope::Admin,
                app("shop"),
            ),
            (
                "GET",
                "/v1/apps/shop/hooks/deliveries",
                Scope::Read,
                app("shop"),
            ),
            ("GET", "/v1/apps/shop/hooks", Scope::Read, app("shop")),
            // Webhook deliveries skip tokens (their signature is checked);
            // were one to ask, it would need admin.
            ("POST", "/hooks/shop", Scope::Admin, AppIn::Server),
            ("POST", "/v1/prune", Scope::Admin, AppIn::Server),
            ("GET", "/v1/tokens", Scope::Admin, AppIn::Server),
            ("POST", "/v1/tokens", Scope::Admin, AppIn::Server),
            ("DELETE", "/v1/tokens/abc", Scope::Admin, AppIn::Server),
            // Unknown: fail closed.
            ("GET", "/v1/secret-new-thing", Scope::Admin, AppIn::Server),
            ("POST", "/v1/status", Scope::Admin, AppIn::Server),
            ("GET", "/", Scope::Admin, AppIn::Server),
            ("GET", "/v1/apps/", Scope::Admin, AppIn::Server),
        ];
        for (method, path, scope, app) in table {
            assert_eq!(
                required(method, path),
                Requirement {
                    scope: *scope,
                    app: app.clone()
                },
                "{method} {path}"
            );
        }
    }

    #[test]
    fn grants() {
        let read_all = Grant {
            scope: Scope::Read,
            app: None,
        };
        let deploy_shop = Grant {
            scope: Scope::Deploy,
            app: Some("shop".into()),
        };
        let admin_all = Grant {
            scope: Scope::Admin,
            app: None,
        };
        let deploy = required("POST", "/v1/deploys");
        let err = read_all.allows(&deploy).unwrap_err();
        assert!(
            err.contains("scope is `read`") && err.contains("--scope deploy"),
            "{err}"
        );
        assert!(deploy_shop.allows(&deploy).is_ok());
        assert!(deploy_shop.allows_app("shop").is_ok());
        assert!(deploy_shop.allows_app("blog").is_err());
        assert!(
            deploy_shop
                .allows(&required("POST", "/v1/apps/shop/rollback"))
                .is_ok()
        );
        assert!(
            deploy_shop
                .allows(&required("POST", "/v1/apps/blog/rollback"))
                .is_err()
        );
        assert!(deploy_shop.allows(&required("GET", "/v1/status")).is_err());
        assert!(
            deploy_shop
                .allows(&required("DELETE", "/v1/apps/shop"))
                .is_err()
        );
        assert!(
            admin_all
                .allows(&required("DELETE", "/v1/apps/shop"))
                .is_ok()
        );
        assert!(read_all.allows(&required("GET", "/v1/status")).is_ok());
    }

    #[test]
    fn scopes_parse() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
        }
        assert!(
            "root"
                .parse::<Scope>()
                .unwrap_err()
                .contains("read, deploy or admin")
        );
    }
}
