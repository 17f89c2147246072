//! Test helpers: an in-process engine on port 0, the built binary as a child process, and an
//! SSE reader that checks llama-server's framing (`data: …` lines, blank-line separated).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use mock_engine::Config;
use serde_json::Value;
use tempfile::NamedTempFile;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A tiny real GGUF model file that lives as long as the engine using it.
pub fn model_file() -> NamedTempFile {
    model_file_with(&llorch_gguf::fixture::tiny_model("llama"))
}

/// A model file with these bytes.
pub fn model_file_with(bytes: &[u8]) -> NamedTempFile {
    let file = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

pub struct Engine {
    pub base: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), mock_engine::RunError>>,
    _model: NamedTempFile,
}

impl Engine {
    /// Starts an engine in-process; `tweak` edits the default config. Waits until it is loaded
    /// unless the config has a load delay.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let model = model_file();
        let mut config = Config::for_model(model.path());
        tweak(&mut config);
        let wait_loaded = config.load_delay.is_zero();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(mock_engine::run(config, listener, shutdown.clone()));
        let engine = Self {
            base,
            shutdown,
            task,
            _model: model,
        };
        if wait_loaded {
            engine.wait_healthy().await;
        }
        engine
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(self.url("/health")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("engine at {} never became healthy", self.base);
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        let response = self.post(path, body).await;
        assert_eq!(response.status(), 200, "POST {path}");
        response.json().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = reqwest::get(self.url(path)).await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("llamacpp:{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }
}

/// Reads SSE events from a response, one `data:` payload per event.
pub struct SseReader {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(content_type.as_deref(), Some("text/event-stream"));
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event's data; `None` when the stream ends. Panics on anything but `data: ` lines.
    pub async fn next(&mut self) -> Option<String> {
        self.try_next().await.unwrap()
    }

    /// Like [`Self::next`], but a broken connection is an `Err` instead of a panic.
    pub async fn try_next(&mut self) -> reqwest::Result<Option<String>> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let lines: Vec<&str> = event.trim_end_matches('\n').lines().collect();
                assert_eq!(lines.len(), 1, "one line per event: {event:?}");
                let data = lines[0]
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data line: {event:?}"));
                return Ok(Some(data.to_owned()));
            }
            match self.stream.next().await {
                Some(chunk) => self.buffer.push_str(std::str::from_utf8(&chunk?).unwrap()),
                None => {
                    assert!(self.buffer.is_empty(), "trailing bytes: {:?}", self.buffer);
                    return Ok(None);
                }
            }
        }
    }

    pub async fn next_json(&mut self) -> Option<Value> {
        self.next().await.map(|data| serde_json::from_str(&data).unwrap())
    }

    /// All remaining events.
    pub async fn collect(mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// The built `mock-engine` binary, run as a child with its stderr captured.
pub struct Process {
    pub child: Child,
    pub base: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mock-engine"))
}

impl Process {
    /// Starts the binary on port 0 and waits for its banner (which gives the port).
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary())
            .args(["--port", "0"])
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .unwrap()
                .unwrap();
            let line = line.unwrap_or_else(|| panic!("exited before its banner: {:?}", stderr.lock().unwrap()));
            stderr.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break format!("http://{}", rest.split(',').next().unwrap());
            }
        };
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, base, stderr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub async fn wait_healthy(&self) {
        for _ in 0..500 {
            if let Ok(r) = reqwest::get(self.url("/health")).await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never healthy; stderr:\n{}", self.stderr_text());
    }

    /// Waits for the exit code, failing after `limit`.
    pub async fn exit_code_within(&mut self, limit: Duration) -> i32 {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {limit:?}; stderr:\n{}", self.stderr_text()))
            .unwrap();
        status.code().unwrap_or(-1)
    }
}
