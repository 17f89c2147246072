//! Which server answers on the socket and how to talk to it: the sockets to try for a
//! [`RuntimeKind`], whether a `/version` response comes from Docker or Podman, and which API
//! version to speak. Pure functions over values the caller passes in; no I/O.

use bollard::ClientVersion;
use bollard::models::SystemVersion;
use llorch_manifests::config::RuntimeKind;

/// Docker's usual socket.
pub const DOCKER_SOCKET: &str = "unix:///var/run/docker.sock";
/// Rootful Podman's usual API socket (`systemctl start podman.socket`).
pub const PODMAN_SOCKET: &str = "unix:///run/podman/podman.sock";

/// The oldest Podman whose Docker-compatible API honours CDI device requests
/// (containers/podman#25171). Older ones accept the request and silently drop it.
pub const PODMAN_CDI_MIN: (u64, u64, u64) = (5, 4, 0);

/// The server behind the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// Docker Engine (moby).
    Docker,
    /// Podman's Docker-compatible service.
    Podman,
}

impl ServerKind {
    /// `docker` or `podman`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Docker => "docker",
            ServerKind::Podman => "podman",
        }
    }
}

/// What the server said about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// Docker or Podman.
    pub kind: ServerKind,
    /// The server's own version (`20.10.24+dfsg1`, `4.3.1`), not the API version.
    pub version: String,
}

impl ServerInfo {
    /// Reads a `/version` response. Podman names itself in a component (`Podman Engine`) and,
    /// on some builds, in `Platform.Name`; Docker does neither.
    pub fn from_version(v: &SystemVersion) -> ServerInfo {
        let mentions_podman = |s: &str| s.to_ascii_lowercase().contains("podman");
        let podman_component = v
            .components
            .iter()
            .flatten()
            .find(|c| mentions_podman(&c.name))
            .map(|c| c.version.clone());
        let podman_platform = v.platform.as_ref().is_some_and(|p| mentions_podman(&p.name));
        let top_level = v.version.clone().unwrap_or_default();
        match (podman_component, podman_platform) {
            (Some(version), _) => ServerInfo {
                kind: ServerKind::Podman,
                version,
            },
            (None, true) => ServerInfo {
                kind: ServerKind::Podman,
                version: top_level,
            },
            (None, false) => ServerInfo {
                kind: ServerKind::Docker,
                version: top_level,
            },
        }
    }

    /// True when NVIDIA GPUs can be attached through this server's Docker-compatible API without
    /// being silently dropped: always for Docker (device requests, driver `nvidia`), from
    /// [`PODMAN_CDI_MIN`] on for Podman (device requests, driver `cdi`).
    pub fn attaches_gpus(&self) -> bool {
        match self.kind {
            ServerKind::Docker => true,
            ServerKind::Podman => parse_version(&self.version).is_some_and(|v| v >= PODMAN_CDI_MIN),
        }
    }
}

/// The sockets to try, in order: the explicit one, else `DOCKER_HOST`, else the kind's usual
/// socket (`auto`: Docker's, then Podman's). Bare paths become `unix://` URLs.
pub fn candidate_sockets(kind: RuntimeKind, explicit: Option<&str>, docker_host: Option<&str>) -> Vec<String> {
    let given = [explicit, docker_host]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty());
    if let Some(socket) = given {
        return vec![normalize_socket(socket)];
    }
    match kind {
        RuntimeKind::Docker => vec![DOCKER_SOCKET.to_string()],
        RuntimeKind::Podman => vec![PODMAN_SOCKET.to_string()],
        RuntimeKind::Auto => vec![DOCKER_SOCKET.to_string(), PODMAN_SOCKET.to_string()],
    }
}

/// `/run/x.sock` → `unix:///run/x.sock`; URLs are kept as they are.
pub fn normalize_socket(socket: &str) -> String {
    if socket.starts_with('/') {
        format!("unix://{socket}")
    } else {
        socket.to_string()
    }
}

/// The highest API version a server accepts, read from its refusal of a newer client
/// (`client version 1.53 is too new. Maximum supported API version is 1.41`). Docker 20.10
/// answers bollard's default version this way, even on `/version`.
pub fn max_api_version(message: &str) -> Option<ClientVersion> {
    let (_, rest) = message.split_once("Maximum supported API version is ")?;
    let version: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    parse_api_version(&version)
}

/// The API version to speak: the server's, unless ours is older.
pub fn negotiated_api_version(server_api: Option<&str>, ours: &ClientVersion) -> ClientVersion {
    match server_api.and_then(parse_api_version) {
        Some(theirs) if theirs < *ours => theirs,
        _ => *ours,
    }
}

/// `1.41` → `ClientVersion { 1, 41 }`.
pub fn parse_api_version(s: &str) -> Option<ClientVersion> {
    let (major, minor) = s.trim().split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// `4.3.1`, `5.4.0-rc1`, `20.10.24+dfsg1` → `(major, minor, patch)`; a missing patch is 0.
pub fn parse_version(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s
        .trim()
        .split('.')
        .map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version_fixture(name: &str) -> SystemVersion {
        let text = match name {
            "docker" => include_str!("fixtures/docker-version.json"),
            _ => include_str!("fixtures/podman-version.json"),
        };
        serde_json::from_str(text).expect("fixture parses")
    }

    #[test]
    fn debian_dockerd_is_recognised_as_docker() {
        let info = ServerInfo::from_version(&version_fixture("docker"));
        assert_eq!(
            info,
            ServerInfo {
                kind: ServerKind::Docker,
                version: "20.10.24+dfsg1".into()
            }
        );
    }

    #[test]
    fn podman_is_recognised_by_its_engine_component_although_its_platform_name_is_the_distro() {
        let v = version_fixture("podman");
        assert_eq!(
            v.platform.as_ref().map(|p| p.name.as_str()),
            Some("linux/amd64/debian-12")
        );
        let info = ServerInfo::from_version(&v);
        assert_eq!(
            info,
            ServerInfo {
                kind: ServerKind::Podman,
                version: "4.3.1".into()
            }
        );
    }

    #[test]
    fn a_platform_name_mentioning_podman_is_enough() {
        let v: SystemVersion =
            serde_json::from_str(r#"{"Platform":{"Name":"Podman Engine"},"Version":"5.4.2","ApiVersion":"1.41"}"#)
                .unwrap();
        assert_eq!(ServerInfo::from_version(&v).kind, ServerKind::Podman);
    }

    #[test]
    fn podman_attaches_gpus_only_from_5_4_on_and_docker_always() {
        let podman = |v: &str| ServerInfo {
            kind: ServerKind::Podman,
            version: v.into(),
        };
        assert!(!podman("4.3.1").attaches_gpus());
        assert!(!podman("5.3.9").attaches_gpus());
        assert!(podman("5.4.0").attaches_gpus());
        assert!(podman("6.0.0-dev").attaches_gpus());
        assert!(!podman("unknown").attaches_gpus());
        assert!(
            ServerInfo {
                kind: ServerKind::Docker,
                version: "20.10.24+dfsg1".into()
            }
            .attaches_gpus()
        );
    }

    #[test]
    fn an_explicit_socket_wins_over_docker_host_and_the_defaults() {
        let got = candidate_sockets(RuntimeKind::Auto, Some("/tmp/x.sock"), Some("unix:///tmp/y.sock"));
        assert_eq!(got, vec!["unix:///tmp/x.sock"]);
    }

    #[test]
    fn docker_host_is_used_when_no_socket_is_given() {
        let got = candidate_sockets(RuntimeKind::Podman, None, Some("unix:///tmp/y.sock"));
        assert_eq!(got, vec!["unix:///tmp/y.sock"]);
        let got = candidate_sockets(RuntimeKind::Podman, Some("  "), Some(""));
        assert_eq!(got, vec![PODMAN_SOCKET]);
    }

    #[test]
    fn auto_tries_docker_then_podman() {
        assert_eq!(
            candidate_sockets(RuntimeKind::Auto, None, None),
            vec![DOCKER_SOCKET, PODMAN_SOCKET]
        );
        assert_eq!(candidate_sockets(RuntimeKind::Docker, None, None), vec![DOCKER_SOCKET]);
    }

    #[test]
    fn the_maximum_api_version_is_read_from_docker_20_10s_refusal() {
        let v = max_api_version("client version 1.53 is too new. Maximum supported API version is 1.41").unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        assert!(max_api_version("page not found").is_none());
    }

    #[test]
    fn the_negotiated_api_version_is_the_older_of_the_two() {
        let ours = ClientVersion {
            major_version: 1,
            minor_version: 53,
        };
        let v = negotiated_api_version(Some("1.41"), &ours);
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        let v = negotiated_api_version(Some("1.54"), &ours);
        assert_eq!((v.major_version, v.minor_version), (1, 53));
        let v = negotiated_api_version(None, &ours);
        assert_eq!((v.major_version, v.minor_version), (1, 53));
    }

    #[test]
    fn versions_with_suffixes_parse() {
        assert_eq!(parse_version("20.10.24+dfsg1"), Some((20, 10, 24)));
        assert_eq!(parse_version("5.4.0-rc1"), Some((5, 4, 0)));
        assert_eq!(parse_version("5.4"), Some((5, 4, 0)));
        assert_eq!(parse_version("podman"), None);
    }
}
