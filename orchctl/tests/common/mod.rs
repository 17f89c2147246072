//! Shared by orchctl's integration tests: run the CLI in-process against a temporary
//! LLAMA_ORCH-style layout (a config file naming a manifests directory and a server).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clap::Parser;

/// What one orchctl run printed and returned.
#[derive(Debug)]
pub struct Ran {
    pub code: u8,
    pub out: String,
    pub err: String,
}

/// A temporary home: `config.yaml`, `manifests/` (not created), and an `input/` folder.
pub struct Home {
    pub tmp: tempfile::TempDir,
    pub server: String,
}

impl Home {
    pub fn new(server: &str) -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home {
            tmp,
            server: server.to_string(),
        };
        std::fs::write(
            home.config(),
            format!(
                "manifestsDir: {}\nbind: {}\n",
                home.manifests().display(),
                server.trim_start_matches("http://")
            ),
        )
        .unwrap();
        std::fs::create_dir_all(home.input()).unwrap();
        home
    }

    pub fn config(&self) -> PathBuf {
        self.tmp.path().join("config.yaml")
    }

    pub fn manifests(&self) -> PathBuf {
        self.tmp.path().join("manifests")
    }

    pub fn input(&self) -> PathBuf {
        self.tmp.path().join("input")
    }

    /// Writes `text` to `input/<name>` and returns its path.
    pub fn input_file(&self, name: &str, text: &str) -> String {
        let path = self.input().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Writes `text` to `manifests/<name>` as a user would by hand.
    pub fn hand_written(&self, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(self.manifests()).unwrap();
        let path = self.manifests().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn manifest_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.manifests()) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    pub async fn run(&self, args: &[&str]) -> Ran {
        self.run_with_stdin(args, b"").await
    }

    pub async fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Ran {
        let config = self.config().display().to_string();
        // The server comes from the config's `bind`: naming it would send apply, diff and
        // delete through the write API instead of the manifests directory.
        let mut argv = vec!["orchctl", "--config", &config];
        argv.extend_from_slice(args);
        let cli = orchctl::cli::Cli::try_parse_from(&argv).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = stdin;
        let code = {
            let mut io = orchctl::Io {
                out: &mut out,
                err: &mut err,
                input: &mut input,
                err_tty: false,
            };
            orchctl::run(cli, &mut io).await
        };
        Ran {
            code,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    /// `run` from synchronous tests.
    pub fn run_blocking(&self, args: &[&str]) -> Ran {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self.run(args))
    }
}

pub const ENGINE: &str = "\
apiVersion: llama-orch.dev/v1alpha1
kind: Engine
metadata:
  name: mock
spec:
  image: llama-orch/mock-engine:dev
  version: \"0.1.0\"
";

pub const MODEL: &str = "\
apiVersion: llama-orch.dev/v1alpha1
kind: Model
metadata:
  name: tiny
spec:
  ref: file:models/tiny.gguf
  ctxMax: 4096
";

pub const POOL: &str = "\
apiVersion: llama-orch.dev/v1alpha1
kind: Pool
metadata:
  name: chat
spec:
  engine: mock
  model: tiny
  replicas: 2
  ctxSize: 2048
";

/// The examples folder of the repository.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}
