//! Unit tests of [`PromptCounter`]: scripted engines on real sockets (port 0) for the counted,
//! cached and fallback paths, and the mock engine for llama-server's real shapes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use llorch_manifests::identity::{Endpoint, ReplicaId};
use llorch_manifests::task::ChatMessage;
use llorch_manifests::{ApiFlavour, ServingContract, ServingPool, ServingReplica};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::engine::EngineClients;
use crate::tasks::validate::CountSource;

/// How a scripted engine answers `/tokenize`.
#[derive(Clone, Copy)]
enum Script {
    /// One token per whitespace word.
    Words,
    /// 500 with llama-server's error shape.
    Fails,
    /// Words, after this long.
    Slow(Duration),
}

struct Scripted {
    base: String,
    hits: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn scripted(script: Script) -> Scripted {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let tokenize = post(move |Json(body): Json<Value>| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            assert_eq!(body["add_special"], true, "{body}");
            let words = body["content"].as_str().unwrap_or_default().split_whitespace().count();
            match script {
                Script::Fails => {
                    let error = json!({"error": {"code": 500, "message": "boom", "type": "server_error"}});
                    return (StatusCode::INTERNAL_SERVER_ERROR, Json(error));
                }
                Script::Slow(wait) => tokio::time::sleep(wait).await,
                Script::Words => {}
            }
            (StatusCode::OK, Json(json!({ "tokens": vec![7; words] })))
        }
    });
    let template = post(|Json(body): Json<Value>| async move {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let prompt: Vec<String> = messages
            .iter()
            .map(|m| {
                format!(
                    "<{}> {}",
                    m["role"].as_str().unwrap_or(""),
                    m["content"].as_str().unwrap_or("")
                )
            })
            .collect();
        Json(json!({ "prompt": prompt.join("\n") }))
    });
    let app = Router::new()
        .route("/tokenize", tokenize)
        .route("/apply-template", template);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(until.cancelled_owned())
            .await
    });
    Scripted { base, hits, stop }
}

fn pool(bases: &[&str]) -> ServingPool {
    ServingPool {
        pool: "p".into(),
        model: "m".into(),
        replicas: bases
            .iter()
            .enumerate()
            .map(|(i, base)| ServingReplica {
                id: ReplicaId::new("p", i as u32),
                endpoint: Endpoint::external(base),
                container_id: None,
                gpus: vec![],
                free_vram_bytes: 0,
            })
            .collect(),
        ..ServingPool::default()
    }
}

fn contract(api: ApiFlavour, digest: &str) -> ServingContract {
    ServingContract {
        engine_version: "1".into(),
        api,
        ctx_size: 4096,
        model_digest: Some(digest.into()),
        model_file: None,
    }
}

fn counter(mode: CountMode) -> PromptCounter {
    let counter = PromptCounter::new(EngineClients::new().tokenizer().clone());
    counter.set_mode(mode);
    counter
}

fn text(s: &str) -> Prompt {
    Prompt::Text(s.to_string())
}

/// 30 words of 40 bytes: the estimate says ~308 tokens, the scripted engine 30.
fn long_words() -> Prompt {
    text(&vec!["x".repeat(40); 30].join(" "))
}

#[test]
fn modes_parse_by_name_and_unknown_names_are_refused() {
    assert_eq!("off".parse::<CountMode>().unwrap(), CountMode::Off);
    assert_eq!("near-limit".parse::<CountMode>().unwrap(), CountMode::NearLimit);
    assert_eq!("always".parse::<CountMode>().unwrap(), CountMode::Always);
    let err = "sometimes".parse::<CountMode>().unwrap_err().to_string();
    assert!(err.contains("`sometimes`") && err.contains("near-limit"), "{err}");
}

#[test]
fn only_a_prompt_whose_bytes_could_exceed_the_context_might_not_fit() {
    let prompt = text(&"a".repeat(1000));
    assert!(!might_not_fit(&prompt, 100, 2000));
    assert!(
        might_not_fit(&prompt, 1000, 2000),
        "1000 bytes + 2 specials + 1000 > 2000"
    );
    let chat = Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: "a".repeat(1000),
    }]);
    assert!(might_not_fit(&chat, 750, 2000), "the template's bytes count too");
    assert!(!might_not_fit(&chat, 500, 2000));
}

#[tokio::test]
async fn a_counted_prompt_is_cached_per_model_and_prompt() {
    let engine = scripted(Script::Words).await;
    let (pool, c) = (pool(&[&engine.base]), contract(ApiFlavour::Llamacpp, "sha256:a"));
    let counter = counter(CountMode::Always);
    let first = counter.count(&pool, &c, &long_words(), 10).await;
    assert_eq!(first, PromptCount::counted(30));
    assert_eq!(counter.count(&pool, &c, &long_words(), 10).await, first);
    assert_eq!(engine.hits.load(Ordering::SeqCst), 1, "the second count is a cache hit");
    let other_model = contract(ApiFlavour::Llamacpp, "sha256:b");
    assert_eq!(counter.count(&pool, &other_model, &long_words(), 10).await, first);
    assert_eq!(
        engine.hits.load(Ordering::SeqCst),
        2,
        "another model's tokenizer is asked"
    );
    counter.count(&pool, &c, &text("x y"), 10).await;
    assert_eq!((engine.hits.load(Ordering::SeqCst), counter.cached()), (3, 3));
}

#[tokio::test]
async fn chat_is_counted_after_the_engines_template() {
    let engine = scripted(Script::Words).await;
    let (pool, c) = (pool(&[&engine.base]), contract(ApiFlavour::Llamacpp, "sha256:a"));
    let chat = Prompt::Chat(vec![
        ChatMessage {
            role: "system".into(),
            content: "be brief".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "hello there".into(),
        },
    ]);
    // "<system> be brief\n<user> hello there": 6 words.
    assert_eq!(
        counter(CountMode::Always).count(&pool, &c, &chat, 1).await,
        PromptCount::counted(6)
    );
}

#[tokio::test]
async fn near_limit_asks_only_when_the_prompt_might_not_fit() {
    let engine = scripted(Script::Words).await;
    let (pool, c) = (pool(&[&engine.base]), contract(ApiFlavour::Llamacpp, "sha256:a"));
    let counter = counter(CountMode::NearLimit);
    let roomy = counter.count(&pool, &c, &long_words(), 10).await;
    assert_eq!(roomy, PromptCount::estimated(estimate_tokens(&long_words())));
    assert_eq!(engine.hits.load(Ordering::SeqCst), 0);
    let tight = counter.count(&pool, &c, &long_words(), 4000).await;
    assert_eq!(tight, PromptCount::counted(30));
    assert_eq!(
        counter.count(&pool, &c, &long_words(), 10).await,
        PromptCount::counted(30),
        "once cached, the count is used whatever the margin"
    );
}

#[tokio::test]
async fn every_failure_to_count_falls_back_to_the_estimate() {
    let estimate = PromptCount::estimated(estimate_tokens(&long_words()));
    let ok = scripted(Script::Words).await;
    let failing = scripted(Script::Fails).await;
    let slow = scripted(Script::Slow(Duration::from_secs(5))).await;
    let llamacpp = contract(ApiFlavour::Llamacpp, "sha256:a");
    let always = counter(CountMode::Always);
    let cases = [
        ("off", counter(CountMode::Off), pool(&[&ok.base]), llamacpp.clone()),
        (
            "openai",
            counter(CountMode::Always),
            pool(&[&ok.base]),
            contract(ApiFlavour::Openai, "d"),
        ),
        (
            "tgi",
            counter(CountMode::Always),
            pool(&[&ok.base]),
            contract(ApiFlavour::Tgi, "d"),
        ),
        ("no replica", counter(CountMode::Always), pool(&[]), llamacpp.clone()),
        (
            "an error",
            counter(CountMode::Always),
            pool(&[&failing.base]),
            llamacpp.clone(),
        ),
        (
            "closed port",
            counter(CountMode::Always),
            pool(&["http://127.0.0.1:9"]),
            llamacpp.clone(),
        ),
    ];
    for (what, counter, pool, contract) in cases {
        assert_eq!(
            counter.count(&pool, &contract, &long_words(), 10).await,
            estimate,
            "{what}"
        );
        assert_eq!(counter.cached(), 0, "{what}: nothing is cached");
    }
    assert_eq!(ok.hits.load(Ordering::SeqCst), 0, "neither off nor other APIs ask");
    let started = tokio::time::Instant::now();
    let slow_pool = pool(&[&slow.base]);
    assert_eq!(always.count(&slow_pool, &llamacpp, &long_words(), 10).await, estimate);
    let waited = started.elapsed();
    assert!(
        waited >= COUNT_WAIT && waited < Duration::from_secs(1),
        "a slow engine costs the bounded wait, not its time: {waited:?}"
    );
    assert_eq!(failing.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_cache_stays_within_its_bound() {
    let engine = scripted(Script::Words).await;
    let (pool, c) = (pool(&[&engine.base]), contract(ApiFlavour::Llamacpp, "sha256:a"));
    let counter = PromptCounter::with_limits(EngineClients::new().tokenizer().clone(), 16, COUNT_WAIT);
    counter.set_mode(CountMode::Always);
    for i in 0..100 {
        let counted = counter.count(&pool, &c, &text(&format!("prompt {i}")), 1).await;
        assert_eq!(counted.source, CountSource::Counted);
    }
    assert!(counter.cached() <= 16, "{} counts held", counter.cached());
    assert_eq!(engine.hits.load(Ordering::SeqCst), 100);
}

#[tokio::test]
async fn the_mock_engine_counts_words_plus_bos_and_its_chat_template() {
    let model = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    std::fs::write(model.path(), mock_engine::model_file::fixture_model()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(mock_engine::run(
        mock_engine::Config::for_model(model.path()),
        listener,
        stop.clone(),
    ));
    let (pool, c) = (pool(&[&base]), contract(ApiFlavour::Llamacpp, "sha256:a"));
    let counter = counter(CountMode::Always);
    let mut counted = PromptCount::estimated(0);
    for _ in 0..200 {
        counted = counter.count(&pool, &c, &long_words(), 1).await;
        if counted.source == CountSource::Counted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counted, PromptCount::counted(31), "30 words and BOS");
    let chat = Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: "one two three".into(),
    }]);
    let chat = counter.count(&pool, &c, &chat, 1).await;
    assert_eq!(chat.source, CountSource::Counted);
    assert!(chat.tokens > 4, "the template adds tokens to 3 words and BOS: {chat:?}");
    stop.cancel();
}
