//! A small blocking client for the task API: submit, read a task's SSE stream event by event,
//! cancel. Real HTTP over loopback, as an agent would speak it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::Value;

/// One SSE event: its name and JSON data.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    /// `started`, `metrics`, `token`, `end` or `error`.
    pub event: String,
    /// The JSON payload.
    pub data: Value,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: reqwest::header::HeaderMap,
    /// JSON body (Null when empty or not JSON).
    pub body: Value,
}

/// What a burst of submissions got.
#[derive(Debug, Default)]
pub struct Burst {
    /// The ids of the accepted tasks (202).
    pub accepted: Vec<String>,
    /// The refusals (429).
    pub refused: Vec<Answer>,
}

/// A client for one daemon.
#[derive(Clone)]
pub struct TaskClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl TaskClient {
    /// A client for the daemon at `base` (`http://127.0.0.1:port`).
    pub fn new(base: &str) -> Self {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            base: base.to_string(),
            http,
        }
    }

    /// A client for `base` that sends `headers` (a token, a `traceparent`) with every request.
    pub fn with_headers(base: &str, headers: reqwest::header::HeaderMap) -> Self {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            base: base.to_string(),
            http,
        }
    }

    /// `POST /v2/tasks`.
    pub fn submit(&self, body: &Value) -> Answer {
        let r = self
            .http
            .post(format!("{}/v2/tasks", self.base))
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    /// Submits `body` `n` times at once (one thread each): the accepted task ids and the
    /// refusals. Panics on any answer but 202 or 429.
    pub fn submit_burst(&self, body: &Value, n: usize) -> Burst {
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..n).map(|_| s.spawn(|| self.submit(body))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut burst = Burst::default();
        for a in answers {
            match a.status {
                202 => burst.accepted.push(a.body["task_id"].as_str().unwrap().to_string()),
                429 => burst.refused.push(a),
                other => panic!("only 202 or 429, got {other}: {}", a.body),
            }
        }
        burst
    }

    /// `POST /v2/tasks/{id}/cancel`.
    pub fn cancel(&self, id: &str) -> Value {
        self.http
            .post(format!("{}/v2/tasks/{id}/cancel", self.base))
            .header("content-type", "application/json")
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// `GET /v2/tasks/{id}`.
    pub fn status(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/v2/tasks/{id}", self.base))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Opens a task's stream.
    pub fn open(&self, id: &str) -> EventReader {
        let r = self
            .http
            .get(format!("{}/v2/tasks/{id}/events", self.base))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "opening the stream of {id}");
        EventReader {
            lines: BufReader::new(r),
        }
    }

    /// Reads a task's stream to its end.
    pub fn events(&self, id: &str) -> Vec<SseEvent> {
        let mut reader = self.open(id);
        std::iter::from_fn(|| reader.next_event()).collect()
    }
}

/// Reads SSE events off an open stream.
pub struct EventReader {
    lines: BufReader<reqwest::blocking::Response>,
}

impl EventReader {
    /// The next event; `None` at the end of the stream. Comments (keep-alives) are skipped.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut event = String::new();
        let mut data = String::new();
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).ok()?;
            if n == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if event.is_empty() && data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(SseEvent { event, data });
            }
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
}

/// The token texts of a stream, in order.
pub fn tokens(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "token")
        .map(|e| e.data["t"].as_str().unwrap_or_default().to_string())
        .collect()
}
