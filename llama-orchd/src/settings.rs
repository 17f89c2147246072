//! Resolves where everything lives: home directory, config file, manifests and state
//! directories, and the bind address, refusing what this release cannot do safely.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use llorch_manifests::config::{Config, HOME_ENV, cache_root, home_dir};

/// The resolved settings.
pub struct Resolved {
    /// The config as read (or defaults).
    pub config: Config,
    /// Where it was (or would be) read from.
    pub config_path: PathBuf,
    /// The watched manifests directory.
    pub manifests_dir: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The model cache (`models.cacheDir`, default `~/.cache/llama-orch/models`).
    pub models_cache: PathBuf,
    /// The API's address.
    pub bind: SocketAddr,
}

/// Loads the config file (a missing file means defaults) and resolves paths.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Resolved> {
    let home = home_dir(
        std::env::var(HOME_ENV).ok().as_deref(),
        std::env::var("HOME").ok().as_deref(),
    );
    let config_path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.join("config.yaml"));
    let config = match std::fs::read_to_string(&config_path) {
        Ok(text) => Config::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            tracing::info!(path = %config_path.display(), "no config file; using defaults");
            Config::default()
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read config file {}", config_path.display())),
    };
    let (manifests_dir, state_dir) = config.resolved_dirs(&home, &config_path);
    let models_cache = match &config.models.cache_dir {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => config_path.parent().unwrap_or(&home).join(dir),
        None => cache_root(
            std::env::var("XDG_CACHE_HOME").ok().as_deref(),
            std::env::var("HOME").ok().as_deref(),
        )
        .join("models"),
    };
    let bind: SocketAddr = config.bind.parse().map_err(|e| {
        anyhow::anyhow!(
            "{}: field `bind`: `{}` is not an address like 127.0.0.1:8080 ({e})",
            config_path.display(),
            config.bind
        )
    })?;
    if !bind.ip().is_loopback() {
        bail!(
            "{}: field `bind`: {bind} is not a loopback address. This release has no authentication, so it only \
             listens on loopback (HME-002); reach it remotely through an SSH tunnel (`ssh -L 8080:127.0.0.1:8080 host`)",
            config_path.display()
        );
    }
    if !llorch_manifests::validate::is_valid_name(&config.instance) {
        bail!(
            "{}: field `instance`: `{}` must be a short lower-case name like `default`",
            config_path.display(),
            config.instance
        );
    }
    Ok(Resolved {
        config,
        config_path,
        manifests_dir,
        state_dir,
        models_cache,
        bind,
    })
}
