//! `orchctl version`: this client's version (and the git commit it was built from, when the
//! build recorded one in `LLORCH_GIT_COMMIT`, as `scripts/install.sh --build` does), and the
//! daemon's version and data API version from `GET /v2/meta/capabilities`. Like `kubectl
//! version`: the client part is always printed; when no daemon answers the command then fails
//! (exit 1) with why, unless `--client` asked for the client alone.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::Io;
use crate::cli::{Output, VersionArgs};
use crate::client::{Client, RequestError};
use crate::context::Context;
use crate::output::print_raw;

/// This orchctl's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this orchctl was built from, when the build recorded it.
pub const GIT_COMMIT: Option<&str> = option_env!("LLORCH_GIT_COMMIT");

/// What `-o json|yaml` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    /// This orchctl.
    pub client_version: ClientVersion,
    /// The daemon, when it was asked and answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<ServerVersion>,
}

/// This orchctl's build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    /// The crate version.
    pub version: String,
    /// The git commit, when recorded at build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    /// The URL asked.
    pub url: String,
    /// llama-orchd's version; absent from a daemon older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The data API's version (`api_version` of the capabilities).
    pub api_version: String,
}

/// The fields of `GET /v2/meta/capabilities` this command reads.
#[derive(Debug, Deserialize)]
struct Capabilities {
    api_version: String,
    #[serde(default)]
    server_version: Option<String>,
}

impl Client {
    /// The daemon's version and API version (`GET /v2/meta/capabilities`).
    pub async fn server_version(&self) -> Result<ServerVersion, RequestError> {
        let caps: Capabilities = self.get(&["v2", "meta", "capabilities"], &[]).await?;
        Ok(ServerVersion {
            url: self.base().to_string(),
            version: caps.server_version,
            api_version: caps.api_version,
        })
    }
}

fn client_version() -> ClientVersion {
    ClientVersion {
        version: VERSION.to_string(),
        git_commit: GIT_COMMIT.filter(|c| !c.is_empty()).map(str::to_string),
    }
}

/// `orchctl version --client`: no daemon, no config.
pub fn client_only(args: &VersionArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    print(
        io.out,
        args.output,
        &Versions {
            client_version: client_version(),
            server_version: None,
        },
    )?;
    Ok(0)
}

/// `orchctl version`: the client's part, then the daemon's; exit 1 when the daemon cannot be
/// asked.
pub async fn run(ctx: &Context, args: &VersionArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    if args.client {
        return client_only(args, io);
    }
    let server = ctx.client()?.server_version().await;
    let versions = Versions {
        client_version: client_version(),
        server_version: server.as_ref().ok().cloned(),
    };
    print(io.out, args.output, &versions)?;
    match server {
        Ok(_) => Ok(0),
        Err(e) => {
            writeln!(io.err, "error: server version unknown: {e}")?;
            Ok(1)
        }
    }
}

fn print(out: &mut dyn Write, format: Output, v: &Versions) -> anyhow::Result<()> {
    if format != Output::Table {
        return print_raw(out, format, v);
    }
    let c = &v.client_version;
    match &c.git_commit {
        Some(commit) => writeln!(out, "Client Version: {} (commit {commit})", c.version)?,
        None => writeln!(out, "Client Version: {}", c.version)?,
    }
    if let Some(s) = &v.server_version {
        writeln!(
            out,
            "Server Version: {}",
            s.version
                .as_deref()
                .unwrap_or("unknown (the daemon does not report it)")
        )?;
        writeln!(out, "Server API Version: {}", s.api_version)?;
        writeln!(out, "Server: {}", s.url)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(v: &Versions, format: Output) -> String {
        let mut out = Vec::new();
        print(&mut out, format, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_names_client_server_and_api_versions_and_the_commit_when_known() {
        let v = Versions {
            client_version: ClientVersion {
                version: "0.1.0".into(),
                git_commit: Some("abc123def456".into()),
            },
            server_version: Some(ServerVersion {
                url: "http://127.0.0.1:8080".into(),
                version: Some("0.1.0".into()),
                api_version: "2.0.0".into(),
            }),
        };
        assert_eq!(
            text(&v, Output::Table),
            "Client Version: 0.1.0 (commit abc123def456)\nServer Version: 0.1.0\nServer API Version: 2.0.0\nServer: http://127.0.0.1:8080\n"
        );
        let json: Versions = serde_json::from_str(&text(&v, Output::Json)).unwrap();
        assert_eq!(json, v);
        assert!(text(&v, Output::Json).contains("\"apiVersion\": \"2.0.0\""));
    }

    #[test]
    fn without_a_server_only_the_client_is_printed() {
        let v = Versions {
            client_version: ClientVersion {
                version: "0.1.0".into(),
                git_commit: None,
            },
            server_version: None,
        };
        assert_eq!(text(&v, Output::Table), "Client Version: 0.1.0\n");
        assert_eq!(text(&v, Output::Yaml), "clientVersion:\n  version: \"0.1.0\"\n");
    }
}
