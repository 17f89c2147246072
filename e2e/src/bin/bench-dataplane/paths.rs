//! The two ways to a token that every measurement compares: straight to a replica's
//! `/completion` ("direct") and through the daemon's `/v2/tasks` ("through"), with the TTFT
//! of each and the stages of the latter. It must not bring Pools up or print.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llama_orch_e2e::bench::sse_count::{self, Events, Kind};
use reqwest::Client;
use serde_json::{Value, json};

pub(crate) const PROMPT: &str = "Once upon a time";

/// The two ways to a token.
#[derive(Clone)]
pub(crate) struct Paths {
    pub(crate) http: Client,
    /// The daemon, `http://127.0.0.1:port`.
    pub(crate) base: String,
    /// The pool's replica endpoints.
    pub(crate) endpoints: Arc<Vec<String>>,
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

    pub(crate) async fn open_direct(&self, worker: usize, body: &[u8]) -> Events {
        let url = format!("{}/completion", self.endpoints[worker % self.endpoints.len()]);
        let r = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "direct /completion");
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
        let mut ev = self.open_direct(worker, body).await;
        let ttft = loop {
            match ev.next().await {
                Some(Kind::Token) => break ms(t0.elapsed()),
                Some(Kind::Other) => {}
                other => panic!("direct stream ended before a token: {other:?}"),
            }
        };
        finish(ev).await;
        ttft
    }

    /// TTFT through llama-orch, with its stages.
    pub(crate) async fn ttft_through(&self, body: &[u8]) -> Stages {
        let t0 = Instant::now();
        let mut stages = Stages::default();
        let mut ev = self.open_through(body, t0, &mut stages).await;
        loop {
            match ev.next().await {
                Some(Kind::Token) => {
                    stages.first_token = ms(t0.elapsed());
                    break;
                }
                Some(Kind::Other) => {}
                other => panic!("task stream ended before a token: {other:?}"),
            }
        }
        finish(ev).await;
        stages
    }
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
