//! The task API's calls (`/v2/tasks`, see docs/api.md): submit, read a task's event stream,
//! list, look up and cancel. A refused submit is an answer, not an error: it carries the
//! daemon's code, message and retry advice for the caller to show.

use std::collections::VecDeque;

use llorch_manifests::task::{CancelAck, TaskAdmitted, TaskError, TaskRequest, TaskSummary};

use crate::client::{Client, RequestError, STREAM_IDLE_TIMEOUT};
use crate::sse::{SseEvent, SseParser};

/// What `POST /v2/tasks` answered.
#[derive(Debug)]
pub enum Submitted {
    /// 202: queued.
    Admitted(TaskAdmitted),
    /// An HTTP error before any stream exists.
    Refused(Refused),
}

/// A refused submit.
#[derive(Debug)]
pub struct Refused {
    /// HTTP status (429 when the queue is full).
    pub status: u16,
    /// The daemon's error body.
    pub error: TaskError,
    /// `Retry-After`, in seconds.
    pub retry_after_s: Option<u64>,
    /// `X-Backoff-Ms`.
    pub backoff_ms: Option<u64>,
}

/// An open SSE stream: a task's, or the daemon's live events (`get --watch`).
pub struct EventStream {
    response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
    /// What streams, for messages: `task <id>`, `the events stream`.
    what: String,
}

impl EventStream {
    /// The next event; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, RequestError> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Ok(Some(ev));
            }
            let chunk = self.response.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    RequestError::Other(format!(
                        "{}'s stream was silent for {} s; llama-orchd may have stopped",
                        self.what,
                        STREAM_IDLE_TIMEOUT.as_secs()
                    ))
                } else {
                    RequestError::Other(format!("{}'s stream broke: {e}", self.what))
                }
            })?;
            match chunk {
                Some(bytes) => self.ready.extend(self.parser.push(&bytes)),
                None => return Ok(None),
            }
        }
    }
}

fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Client {
    /// `POST /v2/tasks`.
    pub async fn submit_task(&self, req: &TaskRequest) -> Result<Submitted, RequestError> {
        let url = self.url(&["v2", "tasks"])?;
        let response = self
            .http
            .post(url.clone())
            .json(req)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return self.decode(&url, response).await.map(Submitted::Admitted);
        }
        let retry_after_s = header_u64(response.headers(), "retry-after");
        let backoff_ms = header_u64(response.headers(), "x-backoff-ms");
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        match serde_json::from_slice::<TaskError>(&bytes) {
            Ok(error) => Ok(Submitted::Refused(Refused {
                status: status.as_u16(),
                error,
                retry_after_s,
                backoff_ms,
            })),
            Err(_) => Err(RequestError::Other(format!(
                "{url} answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()
            ))),
        }
    }

    /// Opens `GET /v2/tasks/{id}/events`.
    pub async fn task_events(&self, task_id: &str) -> Result<EventStream, RequestError> {
        let url = self.url(&["v2", "tasks", task_id, "events"])?;
        self.open_stream(url, format!("task {task_id}")).await
    }

    /// `GET /v2/events/stream`: a `snapshot` event now and after each change, an `event` per
    /// controller event.
    pub async fn live_events(&self) -> Result<EventStream, RequestError> {
        let url = self.url(&["v2", "events", "stream"])?;
        self.open_stream(url, "the events stream".into()).await
    }

    /// `GET /v2/replicas/{id}/logs?follow=true&tail=`: a `line` event per log line.
    pub async fn follow_logs(&self, replica: &str, tail: usize) -> Result<EventStream, RequestError> {
        let mut url = self.url(&["v2", "replicas", replica, "logs"])?;
        url.query_pairs_mut()
            .append_pair("follow", "true")
            .append_pair("tail", &tail.to_string());
        self.open_stream(url, format!("replica {replica}'s log")).await
    }

    /// A `GET` of an SSE stream: the open stream, or the daemon's error.
    async fn open_stream(&self, url: reqwest::Url, what: String) -> Result<EventStream, RequestError> {
        let response = self
            .stream_http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        if !response.status().is_success() {
            return Err(self
                .decode::<serde_json::Value>(&url, response)
                .await
                .err()
                .unwrap_or_else(|| {
                    RequestError::Other(format!("{url} answered with an error status and a JSON body"))
                }));
        }
        Ok(EventStream {
            response,
            parser: SseParser::new(),
            ready: VecDeque::new(),
            what,
        })
    }

    /// `GET /v2/tasks`, newest first, as the daemon sent them.
    pub async fn list_tasks(&self) -> Result<Vec<serde_json::Value>, RequestError> {
        self.get(&["v2", "tasks"], &[]).await
    }

    /// `GET /v2/tasks/{id}`.
    pub async fn task(&self, task_id: &str) -> Result<TaskSummary, RequestError> {
        self.get(&["v2", "tasks", task_id], &[]).await
    }

    /// `POST /v2/tasks/{id}/cancel`.
    pub async fn cancel_task(&self, task_id: &str) -> Result<CancelAck, RequestError> {
        let url = self.url(&["v2", "tasks", task_id, "cancel"])?;
        let response = self
            .http
            .post(url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }
}
