//! The ways to a token that the measurements compare: straight to a replica's `/completion`
//! ("direct"), through the daemon's `/v2/tasks` ("through": submit, then open the task's
//! stream), through the reference proxy ([`reference`](crate::reference): the same
//! `/completion` request over one plain HTTP hop), and, for time to first token, through the
//! daemon's OpenAI-compatible `/v1/completions` (one request); the TTFT of each and the stages
//! of "through", and waiting until the engines' slots are idle. It must not bring Pools up or
//! print.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::sse_count::{self, Events, Kind};
use reqwest::Client;
use serde_json::{Value, json};

pub(crate) const PROMPT: &str = "Once upon a time";

/// The three ways to a token.
#[derive(Clone)]
pub(crate) struct Paths {
    /// The client for the daemon.
    pub(crate) http: Client,
    /// The client for the engines: the same one, except where an engine does not keep
    /// connections open (see [`no_reuse`]).
    pub(crate) engine_http: Client,
    /// The daemon, `http://127.0.0.1:port`.
    pub(crate) base: String,
    /// The pool's replica endpoints.
    pub(crate) endpoints: Arc<Vec<String>>,
    /// The reference proxy in front of them, `http://127.0.0.1:port`.
    pub(crate) reference: String,
    /// The client for the reference proxy: the daemon's, except that a byte pump in front of
    /// an engine that closes its connections closes the client's with them, so it gets
    /// `engine_http`'s.
    pub(crate) reference_http: Client,
    /// Pool name.
    pub(crate) pool: String,
}

/// Per-request timings through llama-orch, in ms from the submit.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stages {
    /// 202 received and parsed.
    pub(crate) submitted: f64,
    /// Events response head received.
    pub(crate) opened: f64,
    /// First token event.
    pub(crate) first_token: f64,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Paths {
    pub(crate) fn completion_body(max_tokens: u32) -> Vec<u8> {
        serde_json::to_vec(&json!({"prompt": PROMPT, "n_predict": max_tokens, "stream": true, "seed": 7})).unwrap()
    }

    pub(crate) fn task_body(&self, max_tokens: u32) -> Vec<u8> {
        serde_json::to_vec(&json!({"pool": self.pool, "prompt": PROMPT, "max_tokens": max_tokens, "seed": 7})).unwrap()
    }

    /// `POST /v1/completions` with `stream: true`; the Pool is the model.
    pub(crate) fn openai_body(&self, max_tokens: u32) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"model": self.pool, "prompt": PROMPT, "max_tokens": max_tokens, "stream": true, "seed": 7}),
        )
        .unwrap()
    }

    pub(crate) async fn open_direct(&self, worker: usize, body: &[u8]) -> Events {
        let url = format!("{}/completion", self.endpoints[worker % self.endpoints.len()]);
        let r = post_streamed(&self.engine_http, url, body, "direct /completion").await;
        Events::new(r, sse_count::direct)
    }

    /// The direct request, sent to the reference proxy instead.
    pub(crate) async fn open_reference(&self, body: &[u8]) -> Events {
        let url = format!("{}/completion", self.reference);
        let r = post_streamed(
            &self.reference_http,
            url,
            body,
            "/completion through the reference proxy",
        )
        .await;
        Events::new(r, sse_count::direct)
    }

    /// Submit + open the stream; `t0` is the submit.
    pub(crate) async fn open_through(&self, body: &[u8], t0: Instant, stages: &mut Stages) -> Events {
        let r = self
            .http
            .post(format!("{}/v2/tasks", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let admitted: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "submit: {admitted}");
        stages.submitted = ms(t0.elapsed());
        let id = admitted["task_id"].as_str().unwrap();
        let r = self
            .http
            .get(format!("{}/v2/tasks/{id}/events", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "events of {id}");
        stages.opened = ms(t0.elapsed());
        Events::new(r, sse_count::through)
    }

    /// TTFT direct, ms.
    pub(crate) async fn ttft_direct(&self, worker: usize, body: &[u8]) -> f64 {
        let t0 = Instant::now();
        let ev = self.open_direct(worker, body).await;
        first_token_ms(ev, t0, "direct").await
    }

    /// TTFT through the reference proxy, ms.
    pub(crate) async fn ttft_reference(&self, body: &[u8]) -> f64 {
        let t0 = Instant::now();
        let ev = self.open_reference(body).await;
        first_token_ms(ev, t0, "reference").await
    }

    /// TTFT through llama-orch's OpenAI-compatible front door (one request), ms.
    pub(crate) async fn ttft_openai(&self, body: &[u8]) -> f64 {
        let t0 = Instant::now();
        let r = post_streamed(
            &self.http,
            format!("{}/v1/completions", self.base),
            body,
            "/v1/completions",
        )
        .await;
        first_token_ms(Events::new(r, sse_count::openai), t0, "OpenAI").await
    }

    /// TTFT through llama-orch, with its stages.
    pub(crate) async fn ttft_through(&self, body: &[u8]) -> Stages {
        let t0 = Instant::now();
        let mut stages = Stages::default();
        let ev = self.open_through(body, t0, &mut stages).await;
        stages.first_token = first_token_ms(ev, t0, "task").await;
        stages
    }

    /// Waits until no slot of any replica is processing (`GET <endpoint>/slots`, as llama-server
    /// and the mock engine serve it: `is_processing`, or `state` 0 in older llama-servers): the
    /// streams a window cut are canceled and their slots free before the next window starts.
    pub(crate) async fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut busy = Vec::new();
            for e in self.endpoints.iter() {
                let slots: Value = match self.engine_http.get(format!("{e}/slots")).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                let idle = slots.as_array().is_some_and(|s| {
                    s.iter()
                        .all(|slot| slot["is_processing"] == false || slot["state"] == 0)
                });
                if !idle {
                    busy.push(e.clone());
                }
            }
            if busy.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "slots still busy after 30 s on {busy:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A client that opens a new connection for every request. llama-server (the real-engine
/// fixture) closes the connection after a streamed reply although it answers
/// `Keep-Alive: timeout=5, max=100`; a pooled client that sends the next request at once gets
/// `IncompleteMessage` (curl retries on a fresh connection; reqwest does not retry a POST).
pub(crate) fn no_reuse(http_timeout: Duration) -> Client {
    Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(0)
        .timeout(http_timeout)
        .build()
        .unwrap()
}

/// `POST`s the JSON `body` to `url` and checks the answer is a 200 (`what` names the way).
async fn post_streamed(client: &Client, url: String, body: &[u8], what: &str) -> reqwest::Response {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{what}");
    r
}

/// Ms from `t0` to the stream's first token; then reads the stream to its end.
async fn first_token_ms(mut ev: Events, t0: Instant, what: &str) -> f64 {
    let ttft = loop {
        match ev.next().await {
            Some(Kind::Token) => break ms(t0.elapsed()),
            Some(Kind::Other) => {}
            other => panic!("{what} stream ended before a token: {other:?}"),
        }
    };
    finish(ev).await;
    ttft
}

/// Reads a stream to its final event and then to the end of the body.
pub(crate) async fn finish(mut ev: Events) {
    loop {
        match ev.next().await {
            Some(Kind::End) | None => break,
            Some(Kind::Error) => panic!("stream ended with an error"),
            Some(_) => {}
        }
    }
    ev.drain().await;
}
