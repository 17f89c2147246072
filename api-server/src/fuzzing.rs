//! Fuzz harnesses: the bodies of the coverage-guided targets in `fuzz/` (afl.rs), kept here so
//! that `cargo test` replays their corpora through the same code without afl
//! (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes, runs the real parsing code and what
//! the server does next with the result, and panics only when a property it checks is broken.
//!
//! Not an API: hidden from the docs, and it must not hold logic of its own beyond splitting
//! the input, building fixed fixtures and checking properties.
#![allow(clippy::panic)]

pub use crate::engine::fuzzing::engine_sse;

use std::net::SocketAddr;
use std::path::Path;

use llorch_manifests::api::Snapshot;
use llorch_manifests::config::Config;
use llorch_manifests::identity::{Endpoint, ReplicaId};
use llorch_manifests::task::TaskRequest;
use llorch_manifests::{ApiFlavour, QueueSpec, ServingContract, ServingPool, ServingReplica, SessionSpec};

use crate::engine::Prompt;
use crate::engine::fuzzing::decode;
use crate::engine::sse::EventKind;
use crate::error::ApiError;
use crate::front_door::Screen;
use crate::openai::models::pool_names;
use crate::openai::request::{Endpoint as OpenAiEndpoint, OpenAiRequest, map_request, resolve_target};
use crate::tasks::{route, validate};

/// The config target: the config file's text as `llama-orchd` reads it at start, then the
/// pure steps that follow (directories, bind address, instance name, the OTLP endpoint, the
/// front door's host and origin lists). Not UTF-8 is refused by the file reader before the parser; so here.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = match Config::from_yaml(text) {
        Ok(config) => config,
        Err(e) => {
            consume(e.to_string());
            return;
        }
    };
    let home = Path::new("/home/fuzz/.llama-orch");
    consume(config.resolved_dirs(home, Path::new("/etc/llama-orch/config.yaml")));
    consume(config.resolved_dirs(home, Path::new("config.yaml")));
    consume(config.bind.parse::<SocketAddr>().map_err(|e| e.to_string()));
    consume(llorch_manifests::validate::is_valid_name(&config.instance));
    match config.telemetry.otlp_traces_url() {
        Ok(Some(url)) => assert!(
            url.starts_with("http://") && url.ends_with("/v1/traces") && url.bytes().all(|b| b.is_ascii_graphic()),
            "accepted OTLP endpoint became `{url}`"
        ),
        Ok(None) => {}
        Err(why) => consume(why),
    }
    match Screen::new(&config.allowed_hosts, &config.cors.allowed_origins) {
        Ok(screen) => {
            for origin in screen.allowed_origins() {
                assert!(screen.origin_allowed(origin), "configured origin `{origin}` is refused");
                let host = origin.rsplit("//").next();
                consume(
                    screen
                        .check(host, Some(origin), Some("cross-site"))
                        .map_err(|r| r.to_string()),
                );
            }
        }
        Err(e) => {
            consume(e.to_string());
        }
    }
}

/// The native task target: a `POST /v2/tasks` body, decoded as the route does, routed and
/// validated against a fixed set of Pools ([`snapshot`]).
///
/// Properties: what validation accepts fits the Pool's context and limits; every refusal
/// renders, and its SSE `error` event decodes back as exactly one event holding its body.
pub fn task_request(data: &[u8]) {
    match serde_json::from_slice::<TaskRequest>(data) {
        Ok(req) => admit(req, &snapshot()),
        Err(e) => render(&ApiError::invalid(format!("request body: {e}"))),
    }
}

/// The OpenAI target: the first byte picks the endpoint and the `X-Priority` header, the rest
/// is the body; decoded, mapped onto a task, given its default `max_tokens` and validated as
/// `/v1/chat/completions` and `/v1/completions` do.
pub fn openai_request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let endpoint = if selector & 1 == 0 {
        OpenAiEndpoint::Chat
    } else {
        OpenAiEndpoint::Completions
    };
    let header_priority = match (selector >> 1) & 3 {
        0 => None,
        1 => Some("batch"),
        2 => Some("interactive"),
        _ => Some("urgent"),
    };
    let req: OpenAiRequest = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return render(&ApiError::invalid(format!("request body: {e}"))),
    };
    let snapshot = snapshot();
    let target = resolve_target(req.model.as_deref(), pool_names(&snapshot).into_iter());
    let mut mapped = match map_request(endpoint, req, target, header_priority) {
        Ok(mapped) => mapped,
        Err(e) => return render(&e),
    };
    if mapped.task.max_tokens == 0 {
        let chosen = route::choose(&snapshot, mapped.task.pool.as_deref(), mapped.task.model.as_deref());
        if let Ok(contract) = chosen.as_ref().map(|p| p.contract.as_ref()) {
            let prompt = match (&mapped.task.prompt, &mapped.task.messages) {
                (Some(p), _) => Prompt::Text(p.clone()),
                (None, Some(m)) => Prompt::Chat(m.clone()),
                (None, None) => Prompt::Text(String::new()),
            };
            if let Some(contract) = contract {
                mapped.fill_default_max_tokens(contract.ctx_size, validate::estimate_tokens(&prompt));
                assert!(mapped.task.max_tokens >= 1, "the default max_tokens is 0");
            }
        }
    }
    admit(mapped.task, &snapshot);
}

/// What the data plane does with a decoded request before it enqueues it.
fn admit(req: TaskRequest, snapshot: &Snapshot) {
    let session_id = req.session_id.clone();
    let stop = req.stop.clone();
    let pool = match route::choose(snapshot, req.pool.as_deref(), req.model.as_deref()) {
        Ok(pool) => pool,
        Err(e) => return render(&e),
    };
    let Ok(contract) = pool.usable() else { return };
    match validate::validate(req, pool, contract) {
        Ok(valid) => {
            let max = valid.generate.max_tokens;
            assert!(max >= 1, "accepted max_tokens 0");
            assert!(
                u64::from(valid.prompt_tokens) + u64::from(max) <= u64::from(contract.ctx_size),
                "accepted a task over pool `{}`'s context",
                pool.pool
            );
            assert!(valid.generate.stop.len() <= validate::MAX_STOP && stop == valid.generate.stop);
            if let Some(id) = &session_id {
                assert!(validate::acceptable_session_id(id), "accepted session_id {id:?}");
            }
            for t in [valid.generate.temperature, valid.generate.top_p].into_iter().flatten() {
                assert!(t.is_finite(), "accepted a sampling value {t}");
            }
        }
        Err(e) => render(&e),
    }
}

/// Renders a refusal every way it is sent, and checks that its SSE framing holds whatever the
/// message quotes from the request.
fn render(err: &ApiError) {
    consume(err.headers());
    consume(err.to_string());
    for openai in [false, true] {
        let mut framed = Vec::new();
        let expected = if openai {
            err.sse_openai(&mut framed);
            err.openai_body()
        } else {
            err.sse_native(&mut framed);
            serde_json::to_value(err.body()).unwrap_or_default()
        };
        let events = decode(&[&framed]);
        let [(EventKind::Data, data)] = events.as_slice() else {
            panic!("a refusal framed as {events:?}");
        };
        let decoded: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
        assert_eq!(decoded, expected, "a refusal's SSE event does not hold its body");
    }
}

/// Pools as the controller publishes them (sorted by name): `batch` (openai, 512 tokens) and
/// `chat` (llamacpp, 4096) serving Model `tiny`, `cold` serving `big` with no contract yet.
pub fn snapshot() -> Snapshot {
    let pool = |name: &str, model: &str, contract: Option<(ApiFlavour, u32)>, ready: u32| ServingPool {
        pool: name.into(),
        model: model.into(),
        engine: "mock".into(),
        contract: contract.map(|(api, ctx_size)| ServingContract {
            engine_version: "1.0.0".into(),
            api,
            ctx_size,
            model_digest: None,
            model_file: None,
        }),
        blocked: None,
        slots_per_replica: 2,
        queue: QueueSpec::default(),
        sessions: SessionSpec::default(),
        replicas: (0..ready)
            .map(|i| ServingReplica {
                id: ReplicaId::new(name, i),
                endpoint: Endpoint::loopback(9000 + i as u16),
                container_id: None,
                gpus: Vec::new(),
                free_vram_bytes: 0,
            })
            .collect(),
        ..ServingPool::default()
    };
    Snapshot {
        serving: vec![
            pool("batch", "tiny", Some((ApiFlavour::Openai, 512)), 1),
            pool("chat", "tiny", Some((ApiFlavour::Llamacpp, 4096)), 2),
            pool("cold", "big", None, 0),
        ],
        ..Snapshot::default()
    }
}

/// Uses `value`, so the work that made it is not optimised away.
fn consume<T>(value: T) {
    drop(std::hint::black_box(value));
}
