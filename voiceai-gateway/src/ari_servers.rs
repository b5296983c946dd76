//! The Asterisk servers the gateway serves: `--ari-url` given more than once, or as a
//! comma-separated list (also in `ARI_URL`), each entry `[NAME=]URL`.
//!
//! - `NAME` (letters, digits, `.`, `_`, `:`, `-`; at most 64) names the server in the
//!   API, the monitor, logs and metrics; by default it is the URL's `host:port`.
//! - `URL` is ARI's base URL (`http://` or `https://`, without `/ari`). It may carry
//!   credentials of its own (`http://user:password@host:8088`); without them the server
//!   uses the shared `--ari-username`/`--ari-password`. Prefer the `ARI_URL` variable for
//!   such a URL (flags show up in `ps`); the password is never logged or echoed.
//! - `?app=APP` at the end of the URL serves another Stasis app on that server than
//!   `--app`. Asterisk keeps one events socket per app, so the same server listed twice
//!   (the lab registered under two names) needs a different app for each entry.

use std::fmt;

use crate::config::{AriEndpoint, Secret};

/// One Asterisk server.
#[derive(Clone, PartialEq, Eq)]
pub struct AriServer {
    /// Its name (the `NAME=` prefix, else `host:port`).
    pub name: String,
    /// ARI's base URL, without credentials or `?app=`.
    pub url: String,
    /// The Stasis app served there (`?app=`, else `--app`).
    pub app: String,
    /// Host and port of `url`.
    pub endpoint: AriEndpoint,
    /// The ARI user.
    pub username: String,
    /// The ARI password.
    pub password: Secret,
}

impl fmt::Debug for AriServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AriServer")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("app", &self.app)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AriServer {
    /// The credentials ari-client logs in with.
    pub fn credentials(&self) -> ari_client::Credentials {
        ari_client::Credentials::new(self.username.clone(), self.password.expose().to_owned())
    }
}

/// Why `--ari-url` was refused: the problem, and the entry as it may be shown (its
/// password masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What is wrong.
    pub problem: String,
    /// The offending entry, password replaced by `***`.
    pub shown: String,
}

/// `--ari-url` occurrences on the command line joined into one comma list, so that
/// clap (which keeps the last value of a repeated option) sees them all; `--ari-url=X`
/// and `--ari-url X` both count. Other arguments keep their order.
pub fn merge_repeated_urls(argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const FLAG: &str = "--ari-url";
    let mut values = Vec::new();
    let mut rest = Vec::new();
    let mut first_at = None;
    let mut args = argv.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_str().map(str::to_owned);
        match text.as_deref() {
            Some("--") => {
                rest.push(arg);
                rest.extend(args.by_ref());
                break;
            }
            Some(FLAG) => match args.next() {
                Some(value) => {
                    first_at.get_or_insert(rest.len());
                    values.push(value.to_string_lossy().into_owned());
                }
                // Left for clap to report the missing value.
                None => rest.push(arg),
            },
            Some(t) if t.starts_with("--ari-url=") => {
                first_at.get_or_insert(rest.len());
                values.push(t["--ari-url=".len()..].to_owned());
            }
            _ => rest.push(arg),
        }
    }
    let Some(at) = first_at else {
        return rest;
    };
    let mut merged = rest;
    merged.insert(at, format!("{FLAG}={}", values.join(",")).into());
    merged
}

/// Parses `list` (see the module docs); `app` is `--app`, `username`/`password` the
/// shared credentials.
///
/// # Errors
/// A [`Refusal`] for an empty list, a bad entry, a bad name or app, a duplicate name,
/// or the same server and app twice.
pub fn parse(
    list: &str,
    app: &str,
    username: &str,
    password: &Secret,
) -> Result<Vec<AriServer>, Refusal> {
    let mut servers: Vec<AriServer> = Vec::new();
    for entry in list.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(Refusal {
                problem: "must be one or more ARI URLs (comma separated), none may be empty"
                    .to_owned(),
                shown: list.split(',').map(masked).collect::<Vec<_>>().join(","),
            });
        }
        let server = parse_entry(entry, app, username, password)?;
        if servers.iter().any(|s| s.name == server.name) {
            return Err(Refusal {
                problem: format!(
                    "names the server {:?} twice: give each URL its own NAME= prefix",
                    server.name
                ),
                shown: masked(entry),
            });
        }
        if servers
            .iter()
            .any(|s| s.endpoint == server.endpoint && s.app == server.app)
        {
            return Err(Refusal {
                problem: format!(
                    "lists {}:{} twice with the app {:?}: Asterisk keeps one events socket per app, so give one of them ?app=OTHER",
                    server.endpoint.host, server.endpoint.port, server.app
                ),
                shown: masked(entry),
            });
        }
        servers.push(server);
    }
    Ok(servers)
}

fn refusal(problem: &str, entry: &str) -> Refusal {
    Refusal {
        problem: problem.to_owned(),
        shown: masked(entry),
    }
}

/// `entry` with the password of its userinfo (if any) replaced by `***`.
fn masked(entry: &str) -> String {
    let Some(scheme_end) = entry.find("://") else {
        return entry.to_owned();
    };
    let after = &entry[scheme_end + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let Some(at) = after[..authority_end].rfind('@') else {
        return entry.to_owned();
    };
    let userinfo = &after[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    format!("{}{user}:***{}", &entry[..scheme_end + 3], &after[at..])
}

fn parse_entry(
    entry: &str,
    default_app: &str,
    username: &str,
    password: &Secret,
) -> Result<AriServer, Refusal> {
    let scheme_at = entry.find("://").ok_or_else(|| {
        refusal(
            "must be an http:// or https:// URL such as http://127.0.0.1:8088 (optionally NAME=URL)",
            entry,
        )
    })?;
    let (name, url) = match entry[..scheme_at].split_once('=') {
        Some((name, _)) => (Some(name.trim()), entry[name.len() + 1..].trim()),
        None => (None, entry),
    };
    let (url, app) = match url.split_once("?app=") {
        Some((url, app)) => (url, Some(app)),
        None => (url, None),
    };
    // --app is checked where it is read; only an app of the URL's own is checked here.
    if app.is_some_and(|app| !is_app_name(app)) {
        return Err(refusal(
            "has an ?app= that is not a Stasis application name (at most 80 characters, without spaces or , / ? & # % : ; =)",
            entry,
        ));
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (credentials, plain) = match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let Some((user, pass)) = userinfo.split_once(':') else {
                return Err(refusal(
                    "has credentials without a password: write http://USER:PASSWORD@HOST:PORT",
                    entry,
                ));
            };
            if user.is_empty() {
                return Err(refusal("has credentials with an empty user name", entry));
            }
            (
                Some((user.to_owned(), pass.to_owned())),
                format!("{scheme}://{}", &rest[at + 1..]),
            )
        }
        None => (None, url.to_owned()),
    };
    let plain = plain.trim_end_matches('/').to_owned();
    let endpoint = crate::config::ari_endpoint(&plain).ok_or_else(|| {
        refusal(
            "must be an http:// or https:// URL such as http://127.0.0.1:8088 (optionally NAME=URL)",
            entry,
        )
    })?;
    let name = match name {
        Some(name) => {
            if !is_server_name(name) {
                return Err(refusal(
                    "has a NAME= that is not a server name (letters, digits, . _ : -; at most 64)",
                    entry,
                ));
            }
            name.to_owned()
        }
        None => default_name(&endpoint),
    };
    let (username, password) = match credentials {
        Some((user, pass)) => (user, Secret::new(pass)),
        None => (username.to_owned(), password.clone()),
    };
    Ok(AriServer {
        name,
        url: plain,
        app: app.unwrap_or(default_app).to_owned(),
        endpoint,
        username,
        password,
    })
}

/// `host:port`, the host bracketed when it is an IPv6 address.
fn default_name(endpoint: &AriEndpoint) -> String {
    if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    }
}

fn is_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
}

fn is_app_name(app: &str) -> bool {
    !app.is_empty()
        && app.len() <= 80
        && !app.contains(|c: char| ",/?&#%:;=".contains(c) || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("shared-pw")
    }

    fn servers(list: &str) -> Vec<AriServer> {
        parse(list, "voiceai", "asterisk", &secret()).unwrap()
    }

    #[test]
    fn one_url_is_one_server_named_by_host_and_port() {
        let [server] = servers("http://127.0.0.1:8088/").try_into().unwrap();
        assert_eq!(server.name, "127.0.0.1:8088");
        assert_eq!(server.url, "http://127.0.0.1:8088");
        assert_eq!(server.app, "voiceai");
        assert_eq!(server.username, "asterisk");
        assert_eq!(server.password.expose(), "shared-pw");
        assert_eq!(servers("http://[::1]:8088")[0].name, "[::1]:8088");
    }

    #[test]
    fn a_list_names_apps_and_credentials_per_server() {
        let list = "a=http://127.0.0.1:8088, b=http://ops:s3cret@127.0.0.2:8089?app=voiceai-b";
        let [a, b] = servers(list).try_into().unwrap();
        assert_eq!((a.name.as_str(), a.app.as_str()), ("a", "voiceai"));
        assert_eq!((b.name.as_str(), b.app.as_str()), ("b", "voiceai-b"));
        assert_eq!(b.url, "http://127.0.0.2:8089");
        assert_eq!(b.endpoint.port, 8089);
        assert_eq!(
            (b.username.as_str(), b.password.expose()),
            ("ops", "s3cret")
        );
        assert_eq!(a.password.expose(), "shared-pw");
        let shown = format!("{b:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn the_same_server_twice_needs_another_app_or_name() {
        let twice = parse(
            "http://127.0.0.1:8088,http://127.0.0.1:8088",
            "voiceai",
            "u",
            &secret(),
        )
        .unwrap_err();
        assert!(twice.problem.contains("twice"), "{twice:?}");
        let same_app = parse(
            "a=http://127.0.0.1:8088,b=http://127.0.0.1:8088",
            "voiceai",
            "u",
            &secret(),
        )
        .unwrap_err();
        assert!(same_app.problem.contains("?app="), "{same_app:?}");
        let ok = servers("a=http://127.0.0.1:8088,b=http://127.0.0.1:8088?app=voiceai-2");
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn bad_entries_are_refused_without_showing_a_password() {
        for (list, needle) in [
            ("", "empty"),
            ("http://127.0.0.1:8088,", "empty"),
            ("ftp://127.0.0.1", "http://"),
            ("127.0.0.1:8088", "http://"),
            ("bad name=http://127.0.0.1:8088", "NAME="),
            ("http://127.0.0.1:8088?app=a/b", "?app="),
            ("http://user@127.0.0.1:8088", "password"),
            ("http://u:hunter2@:8088", "http://"),
        ] {
            let refusal = parse(list, "voiceai", "u", &secret()).unwrap_err();
            assert!(refusal.problem.contains(needle), "{list}: {refusal:?}");
            assert!(!refusal.shown.contains("hunter2"), "{list}: {refusal:?}");
        }
        assert_eq!(masked("x=http://u:pw@h:1/p"), "x=http://u:***@h:1/p");
    }

    #[test]
    fn repeated_flags_become_one_list() {
        let argv = |args: &[&str]| {
            args.iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            merge_repeated_urls(argv(&[
                "gw",
                "--app",
                "x",
                "--ari-url",
                "a=http://h:1",
                "--max-calls",
                "2",
                "--ari-url=http://h:2"
            ])),
            argv(&[
                "gw",
                "--app",
                "x",
                "--ari-url=a=http://h:1,http://h:2",
                "--max-calls",
                "2"
            ])
        );
        assert_eq!(
            merge_repeated_urls(argv(&["gw", "--app", "x"])),
            argv(&["gw", "--app", "x"])
        );
    }
}
