//! Where orchctl looks: the config file (`--config`, else `$LLAMA_ORCH_HOME/config.yaml`), the
//! manifests directory it names, and the daemon's URL (`--server`, `$LLAMA_ORCH_URL`, else
//! `http://<bind>`). A missing default config file means defaults; a missing `--config` file
//! is an error, because a typo should not silently point orchctl elsewhere.
//!
//! Naming a server also decides where `apply`, `diff` and `delete` act ([`WriteTarget`]): with
//! one, through that daemon's write API (it may be on another machine, or behind an SSH
//! tunnel); without one, on the manifests directory of this machine, daemon or not.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use llorch_manifests::config::{self, Config, MAX_CONFIG_BYTES};
use llorch_manifests::files;

use crate::manifest_api::RelativeRefs;

/// Where `apply`, `diff` and `delete` act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteTarget {
    /// The manifests directory the config names, on this machine (no server was named).
    Directory,
    /// The write API of the daemon at [`Context::server`] (`--server` or `$LLAMA_ORCH_URL`).
    Api,
}

/// What every command needs to know about its surroundings.
#[derive(Clone, Debug)]
pub struct Context {
    /// The config file that was (or would have been) read.
    pub config_path: PathBuf,
    /// Its contents, or the defaults.
    pub config: Config,
    /// The manifests directory.
    pub manifests_dir: PathBuf,
    /// The daemon's base URL, without a trailing `/`.
    pub server: String,
    /// The API token (`--token`, `$LLAMA_ORCH_TOKEN`), if any.
    pub token: Option<String>,
    /// Where `apply`, `diff` and `delete` act.
    pub writes: WriteTarget,
}

impl Context {
    /// Resolves the context from flags and the environment (`env` looks a variable up).
    pub fn resolve(
        config_flag: Option<&Path>,
        server_flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Context> {
        let home = config::home_dir(env(config::HOME_ENV).as_deref(), env("HOME").as_deref());
        let (config_path, config) = match config_flag {
            Some(path) => {
                let text = files::read_text(path, MAX_CONFIG_BYTES)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                (path.to_path_buf(), parse_config(path, &text)?)
            }
            None => {
                let path = home.join("config.yaml");
                let config = match files::read_text(&path, MAX_CONFIG_BYTES) {
                    Ok(text) => parse_config(&path, &text)?,
                    Err(e) if e.is_not_found() => Config::default(),
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot read the config file {}", path.display()));
                    }
                };
                (path, config)
            }
        };
        let (manifests_dir, _) = config.resolved_dirs(&home, &config_path);
        let named = server_flag.filter(|s| !s.trim().is_empty());
        let writes = if named.is_some() {
            WriteTarget::Api
        } else {
            WriteTarget::Directory
        };
        let server = match named {
            Some(url) => normalize_url(url),
            None => url_for_bind(&config.bind),
        };
        Ok(Context {
            config_path,
            config,
            manifests_dir,
            server,
            token: None,
            writes,
        })
    }

    /// A context for tests and embedding: this manifests directory (where writes go) and this
    /// server.
    pub fn with(manifests_dir: impl Into<PathBuf>, server: &str) -> Context {
        Context {
            config_path: PathBuf::new(),
            config: Config::default(),
            manifests_dir: manifests_dir.into(),
            server: normalize_url(server),
            token: None,
            writes: WriteTarget::Directory,
        }
    }

    /// A client of the daemon, with the token when there is one.
    pub fn client(&self) -> anyhow::Result<crate::client::Client> {
        crate::client::Client::new(&self.server, self.token.as_deref())
    }

    /// Where `apply`, `diff` and `delete` act, in words: the daemon named by `--server` (its
    /// write API), or this machine's manifests directory. They print it on stderr first, so a
    /// user never mistakes one for the other.
    pub fn write_place(&self) -> String {
        match self.writes {
            WriteTarget::Api => format!("llama-orchd at {} (its write API)", self.server),
            WriteTarget::Directory => format!(
                "the manifests directory {} on this machine (no --server named)",
                self.manifests_dir.display()
            ),
        }
    }

    /// How the write API's requests treat relative `file:` references: resolved here when
    /// [`Context::server`] is a loopback address (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn relative_refs(&self) -> RelativeRefs {
        if is_loopback_url(&self.server) {
            RelativeRefs::ResolveHere
        } else {
            RelativeRefs::SendAsWritten
        }
    }
}

/// Whether `url`'s host is loopback.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn parse_config(path: &Path, text: &str) -> anyhow::Result<Config> {
    Config::from_yaml(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `http://` added when missing; no trailing `/`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// The URL that reaches a daemon bound to `bind`; a wildcard bind is reached on loopback.
pub fn url_for_bind(bind: &str) -> String {
    let host_port = if let Some(port) = bind.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = bind.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        bind.to_string()
    };
    normalize_url(&host_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_this_machine() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "http://127.3.2.1",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://192.168.1.5:8080",
            "http://gpu-box:8080",
            "http://[fe80::1]:1",
            "not a url",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    fn env_with(home: &Path) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| (name == config::HOME_ENV).then(|| home.display().to_string())
    }

    #[test]
    fn a_missing_default_config_means_defaults_under_llama_orch_home() {
        let home = tempfile::tempdir().unwrap();
        let ctx = Context::resolve(None, None, &env_with(home.path())).unwrap();
        assert_eq!(ctx.manifests_dir, home.path().join("manifests"));
        assert_eq!(ctx.server, "http://127.0.0.1:8080");
        assert_eq!(ctx.writes, WriteTarget::Directory);
    }

    #[test]
    fn the_config_names_the_manifests_dir_and_the_bind_address() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config.yaml"),
            "bind: 0.0.0.0:9999\nmanifestsDir: /srv/manifests\n",
        )
        .unwrap();
        let ctx = Context::resolve(None, None, &env_with(home.path())).unwrap();
        assert_eq!(ctx.manifests_dir, PathBuf::from("/srv/manifests"));
        assert_eq!(ctx.server, "http://127.0.0.1:9999");
    }

    #[test]
    fn the_server_flag_wins_and_a_missing_explicit_config_is_an_error() {
        let home = tempfile::tempdir().unwrap();
        let ctx = Context::resolve(None, Some("localhost:1234/"), &env_with(home.path())).unwrap();
        assert_eq!(ctx.server, "http://localhost:1234");
        assert_eq!(ctx.writes, WriteTarget::Api, "a named server takes the writes");
        let err = Context::resolve(Some(&home.path().join("nope.yaml")), None, &env_with(home.path())).unwrap_err();
        assert!(format!("{err:#}").contains("nope.yaml"));
    }

    #[test]
    fn an_invalid_config_names_the_file_and_the_field() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config.yaml"), "bindd: x\n").unwrap();
        let err = Context::resolve(None, None, &env_with(home.path())).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("config.yaml") && text.contains("bindd"), "{text}");
    }
}
