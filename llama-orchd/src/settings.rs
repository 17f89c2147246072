//! Resolves where everything lives: home directory, config file, manifests and state
//! directories, the bind address and the API's front door (tokens, hosts, origins), refusing
//! what cannot be done safely: a non-loopback bind needs a token. Resolved before logging
//! starts (the trace export decides how logging is set up), so what it found is logged by
//! [`Resolved::log`] afterwards.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use llorch_api::front_door::{FrontDoor, Screen, TOKEN_ENV, Tokens};
use llorch_manifests::config::{Config, HOME_ENV, MAX_CONFIG_BYTES, cache_root, home_dir};
use llorch_manifests::files;

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
    /// Where `file:` model references may point (`models.fileRoots`, default: the cache, the
    /// llama-orch home and `$HOME`).
    pub model_file_roots: Vec<PathBuf>,
    /// The API's address.
    pub bind: SocketAddr,
    /// Tokens and the `Host`/`Origin` policy.
    pub front_door: FrontDoor,
    /// Where spans are sent (`telemetry.otlpEndpoint` + `/v1/traces`), when set.
    pub traces_url: Option<String>,
    /// False when there was no config file and defaults are used.
    config_found: bool,
    /// The API tokens' names, for the log.
    token_names: Vec<String>,
}

impl Resolved {
    /// Logs what was resolved (once logging is set up).
    pub fn log(&self) {
        if !self.config_found {
            tracing::info!(path = %self.config_path.display(), "no config file; using defaults");
        }
        let config = &self.config;
        tracing::info!(
            tokens = ?self.token_names,
            optional_on_loopback = config.auth.optional_on_loopback,
            open_metrics = config.auth.open_metrics,
            allowed_hosts = ?config.allowed_hosts,
            allowed_origins = ?config.cors.allowed_origins,
            "API front door"
        );
        if let Some(url) = &self.traces_url {
            tracing::info!(url = %url, "exporting traces over OTLP/HTTP");
        }
    }
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
    let mut config_found = true;
    let config = match files::read_text(&config_path, MAX_CONFIG_BYTES) {
        Ok(text) => Config::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?,
        Err(e) if e.is_not_found() && explicit.is_none() => {
            config_found = false;
            Config::default()
        }
        Err(e) => bail!("cannot read config file {}: {e}; {}", config_path.display(), e.hint()),
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
    let base = config_path.parent().unwrap_or(&home).to_path_buf();
    let model_file_roots = match &config.models.file_roots {
        Some(roots) => roots.iter().map(|r| base.join(r)).collect(),
        None => [
            Some(models_cache.clone()),
            Some(home.clone()),
            std::env::var_os("HOME").map(PathBuf::from),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let bind: SocketAddr = config.bind.parse().map_err(|e| {
        anyhow::anyhow!(
            "{}: field `bind`: `{}` is not an address like 127.0.0.1:8080 ({e})",
            config_path.display(),
            config.bind
        )
    })?;
    let (front_door, token_names) = front_door(&config, &config_path)?;
    if !bind.ip().is_loopback() && !front_door.has_tokens() {
        bail!(
            "{}: field `bind`: {bind} is not a loopback address, and no API token is configured. Off loopback every \
             client must present a token (AUTH-1001): set `auth.tokenFile` (a `chmod 600` file of `name: token` \
             lines) or the {TOKEN_ENV} environment variable; or keep the loopback bind and reach the API through an \
             SSH tunnel (`ssh -L 8080:127.0.0.1:8080 host`). See docs/security.md",
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
    let traces_url = config
        .telemetry
        .otlp_traces_url()
        .map_err(|why| anyhow::anyhow!("{}: field `telemetry.otlpEndpoint`: {why}", config_path.display()))?;
    Ok(Resolved {
        traces_url,
        config_found,
        token_names,
        config,
        config_path,
        manifests_dir,
        state_dir,
        models_cache,
        model_file_roots,
        bind,
        front_door,
    })
}

/// The tokens (`auth.tokenFile`, relative to the config file, and `LLAMA_ORCH_TOKEN`) and the
/// `allowedHosts` / `cors.allowedOrigins` policy.
fn front_door(config: &Config, config_path: &Path) -> anyhow::Result<(FrontDoor, Vec<String>)> {
    let token_file = config.auth.token_file.as_ref().map(|f| match f.is_absolute() {
        true => f.clone(),
        false => config_path.parent().unwrap_or(Path::new(".")).join(f),
    });
    let env = std::env::var(TOKEN_ENV).ok();
    let tokens = Tokens::load(token_file.as_deref(), env.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: field `auth.tokenFile`: {e}", config_path.display()))?;
    let screen = Screen::new(&config.allowed_hosts, &config.cors.allowed_origins)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    let names = tokens.names().map(str::to_owned).collect();
    let door = FrontDoor::new(
        tokens,
        config.auth.optional_on_loopback,
        config.auth.open_metrics,
        screen,
    );
    Ok((door, names))
}
