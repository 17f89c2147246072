//! Both engine adapters against the mock engine on a real socket: the same tokens as the mock's
//! non-streamed answer, stop strings, length limits, a crash mid-stream, a hang, a closed port,
//! a loading engine, a prompt over the context, and connection reuse.
//!
//! Each mock runs on a runtime of its own in a thread of its own, like a process: when an
//! injected crash ends it, the runtime is dropped and every socket it held closes, as the
//! kernel would close them when the real binary exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llorch_api::engine::{
    EngineClients, EngineError, EngineEvent, Finish, GenerateRequest, Prompt, TokenStream, Watchdog,
};
use llorch_manifests::ApiFlavour;
use llorch_manifests::task::{ChatMessage, ErrorCode};
use mock_engine::{Config, RunError};
use serde_json::{Value, json};
use tempfile::NamedTempFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

const FLAVOURS: [ApiFlavour; 2] = [ApiFlavour::Llamacpp, ApiFlavour::Openai];

/// A mock engine "process".
struct MockEngine {
    base: String,
    addr: SocketAddr,
    shutdown: CancellationToken,
    exited: Option<oneshot::Receiver<Result<(), RunError>>>,
    _model: NamedTempFile,
}

impl MockEngine {
    /// Starts a mock with `tweak`ed defaults; waits until it is loaded unless it has a load delay.
    async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let model = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
        std::fs::write(model.path(), mock_engine::model_file::fixture_model()).unwrap();
        let mut config = Config::for_model(model.path());
        tweak(&mut config);
        let wait_loaded = config.load_delay.is_zero();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (exit_tx, exited) = oneshot::channel();
        let stop = shutdown.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let result = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                mock_engine::run(config, listener, stop).await
            });
            // Like a process exit: every task, and so every open connection, goes with it.
            drop(runtime);
            let _ = exit_tx.send(result);
        });
        let engine = Self {
            base: format!("http://{addr}"),
            addr,
            shutdown,
            exited: Some(exited),
            _model: model,
        };
        if wait_loaded {
            engine.wait_healthy().await;
        }
        engine
    }

    async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        for _ in 0..500 {
            if let Ok(r) = http.get(format!("{}/health", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("mock engine at {} never became healthy", self.base);
    }

    /// The mock's non-streamed answer to `body` at `path`.
    async fn answer(&self, path: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "POST {path}");
        response.json().await.unwrap()
    }

    async fn exit(&mut self) -> Result<(), RunError> {
        let exited = self.exited.take().unwrap();
        tokio::time::timeout(Duration::from_secs(5), exited)
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for MockEngine {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What one generation produced.
#[derive(Debug, Default)]
struct Reply {
    tokens: Vec<String>,
    done: Option<(u32, Finish)>,
    error: Option<EngineError>,
    /// Items after `Done` or an error (there must be none).
    extra: usize,
}

impl Reply {
    fn text(&self) -> String {
        self.tokens.concat()
    }

    fn error(&self) -> &EngineError {
        self.error.as_ref().unwrap_or_else(|| panic!("no error: {self:?}"))
    }
}

async fn drain(mut stream: TokenStream) -> Reply {
    let mut reply = Reply::default();
    while let Some(item) = stream.next().await {
        if reply.done.is_some() || reply.error.is_some() {
            reply.extra += 1;
            continue;
        }
        match item {
            Ok(EngineEvent::Token(t)) => {
                assert!(!t.is_empty(), "empty token");
                reply.tokens.push(t);
            }
            Ok(EngineEvent::Delta(d)) => reply.tokens.extend(d.content),
            Ok(EngineEvent::Done { tokens_out, finish, .. }) => reply.done = Some((tokens_out, finish)),
            Err(err) => reply.error = Some(err),
        }
    }
    assert_eq!(reply.extra, 0, "items after the end: {reply:?}");
    reply
}

/// Streams `req` from `base` with the adapter for `api`; a failure to start is `error`.
async fn generate(clients: &EngineClients, api: ApiFlavour, base: &str, req: &GenerateRequest) -> Reply {
    generate_with(clients, api, base, req, Watchdog::default()).await
}

async fn generate_with(
    clients: &EngineClients,
    api: ApiFlavour,
    base: &str,
    req: &GenerateRequest,
    watchdog: Watchdog,
) -> Reply {
    let client = clients.for_api(api);
    let started = tokio::time::timeout(Duration::from_secs(10), watchdog.start(client.generate(base, req)))
        .await
        .expect("generate did not answer");
    match started {
        Ok(stream) => tokio::time::timeout(Duration::from_secs(10), drain(stream))
            .await
            .expect("stream did not end"),
        Err(err) => Reply {
            error: Some(err),
            ..Reply::default()
        },
    }
}

fn sampled(prompt: Prompt, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        prompt,
        max_tokens,
        temperature: Some(0.5),
        top_p: Some(0.75),
        seed: Some(42),
        stop: Vec::new(),
        passthrough: None,
    }
}

fn text_prompt() -> Prompt {
    Prompt::Text("Once upon a time".into())
}

fn messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage {
            role: "system".into(),
            content: "Be brief.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "Tell me a story.".into(),
        },
    ]
}

/// The same sampling as [`sampled`], as the mock's JSON wants it.
fn reference_body(max_tokens: u32) -> Value {
    json!({ "max_tokens": max_tokens, "temperature": 0.5, "top_p": 0.75, "seed": 42 })
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

#[tokio::test]
async fn both_adapters_stream_the_mocks_non_streamed_text_for_the_same_seed() {
    let engine = MockEngine::start(|_| {}).await;
    let clients = EngineClients::new();
    let req = sampled(text_prompt(), 12);

    let native = engine
        .answer(
            "/completion",
            with(reference_body(12), "prompt", json!("Once upon a time")),
        )
        .await;
    let llama = generate(&clients, ApiFlavour::Llamacpp, &engine.base, &req).await;
    assert!(llama.error.is_none(), "{llama:?}");
    assert_eq!(llama.text(), native["content"].as_str().unwrap());
    assert_eq!(llama.tokens.len(), 12, "one event per token");
    assert_eq!(llama.done, Some((12, Finish::Length)));

    let completion = engine
        .answer(
            "/v1/completions",
            with(reference_body(12), "prompt", json!("Once upon a time")),
        )
        .await;
    let openai = generate(&clients, ApiFlavour::Openai, &engine.base, &req).await;
    assert!(openai.error.is_none(), "{openai:?}");
    assert_eq!(openai.text(), completion["choices"][0]["text"].as_str().unwrap());
    assert_eq!(openai.done, Some((12, Finish::Length)));
    assert_eq!(openai.text(), llama.text(), "one engine, one seed, one text");

    let other_seed = GenerateRequest { seed: Some(43), ..req };
    let different = generate(&clients, ApiFlavour::Llamacpp, &engine.base, &other_seed).await;
    assert_ne!(different.text(), llama.text(), "the seed must reach the engine");
}

#[tokio::test]
async fn both_adapters_stream_chat_through_the_chat_endpoint() {
    let engine = MockEngine::start(|_| {}).await;
    let clients = EngineClients::new();
    let chat = engine
        .answer(
            "/v1/chat/completions",
            with(reference_body(10), "messages", json!(messages())),
        )
        .await;
    let expected = chat["choices"][0]["message"]["content"].as_str().unwrap();
    let req = sampled(Prompt::Chat(messages()), 10);
    for api in FLAVOURS {
        let reply = generate(&clients, api, &engine.base, &req).await;
        assert!(reply.error.is_none(), "{api:?}: {reply:?}");
        assert_eq!(reply.text(), expected, "{api:?}");
        assert_eq!(
            reply.done,
            Some((10, Finish::Length)),
            "{api:?}: usage counts the tokens"
        );
    }
}

#[tokio::test]
async fn a_stop_string_ends_the_reply_before_it() {
    let engine = MockEngine::start(|_| {}).await;
    let clients = EngineClients::new();
    let full = generate(
        &clients,
        ApiFlavour::Llamacpp,
        &engine.base,
        &sampled(text_prompt(), 16),
    )
    .await;
    // Stop at the sixth token's word; the reply is whatever came before its first occurrence.
    let stop = full.tokens[5].clone();
    let full_text = full.text();
    let expected = &full_text[..full_text.find(&stop).unwrap()];
    let req = GenerateRequest {
        stop: vec![stop.clone()],
        ..sampled(text_prompt(), 16)
    };
    for api in FLAVOURS {
        let reply = generate(&clients, api, &engine.base, &req).await;
        assert_eq!(reply.text(), expected, "{api:?} with stop {stop:?}");
        let (tokens_out, finish) = reply.done.unwrap_or_else(|| panic!("{api:?}: {reply:?}"));
        assert_eq!(finish, Finish::Stop, "{api:?}");
        assert!(tokens_out < 16, "{api:?}: {tokens_out}");
    }
}

#[tokio::test]
async fn max_tokens_ends_the_reply_with_length() {
    let engine = MockEngine::start(|_| {}).await;
    let clients = EngineClients::new();
    for api in FLAVOURS {
        let reply = generate(
            &clients,
            api,
            &engine.base,
            &GenerateRequest::text("Once upon a time", 5),
        )
        .await;
        assert_eq!(reply.tokens.len(), 5, "{api:?}: {reply:?}");
        assert_eq!(reply.done, Some((5, Finish::Length)), "{api:?}");
    }
}

#[tokio::test]
async fn an_engine_that_dies_mid_stream_gives_its_tokens_then_a_retriable_reset() {
    for api in FLAVOURS {
        let mut engine = MockEngine::start(|c| c.exit_after_tokens = Some(3)).await;
        let clients = EngineClients::new();
        let reply = generate(
            &clients,
            api,
            &engine.base,
            &GenerateRequest::text("Once upon a time", 10),
        )
        .await;
        assert_eq!(reply.tokens.len(), 3, "{api:?}: {reply:?}");
        assert!(matches!(reply.error(), EngineError::Reset { .. }), "{api:?}: {reply:?}");
        assert_eq!(reply.error().code(), ErrorCode::WorkerReset);
        assert!(reply.error().retriable());
        assert!(matches!(
            engine.exit().await,
            Err(RunError::InjectedCrash { tokens: 3 })
        ));
    }
}

#[tokio::test]
async fn a_hung_engine_is_stalled_by_the_idle_watchdog() {
    for api in FLAVOURS {
        let engine = MockEngine::start(|c| c.hang_after_tokens = Some(2)).await;
        let clients = EngineClients::new();
        let watchdog = Watchdog {
            idle: Some(Duration::from_millis(300)),
            wall: None,
        };
        let began = Instant::now();
        let req = GenerateRequest::text("Once upon a time", 10);
        let reply = generate_with(&clients, api, &engine.base, &req, watchdog).await;
        assert_eq!(reply.tokens.len(), 2, "{api:?}: {reply:?}");
        assert!(
            matches!(reply.error(), EngineError::Stalled { after_ms: 300 }),
            "{api:?}: {reply:?}"
        );
        assert_eq!(reply.error().code(), ErrorCode::DecodeTimeout);
        assert!(began.elapsed() >= Duration::from_millis(300));
    }
}

#[tokio::test]
async fn a_closed_port_is_a_retriable_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clients = EngineClients::new();
    for api in FLAVOURS {
        let reply = generate(
            &clients,
            api,
            &format!("http://127.0.0.1:{port}"),
            &GenerateRequest::text("hi", 4),
        )
        .await;
        assert!(
            matches!(reply.error(), EngineError::Connect { .. }),
            "{api:?}: {reply:?}"
        );
        assert_eq!(reply.error().code(), ErrorCode::WorkerReset);
        assert!(reply.error().retriable());
        assert!(reply.tokens.is_empty());
    }
}

#[tokio::test]
async fn a_loading_engine_is_a_retriable_503_rejection() {
    let engine = MockEngine::start(|c| c.load_delay = Duration::from_secs(60)).await;
    let clients = EngineClients::new();
    for api in FLAVOURS {
        let reply = generate(&clients, api, &engine.base, &GenerateRequest::text("hi", 4)).await;
        match reply.error() {
            EngineError::Rejected { status, message } => {
                assert_eq!((*status, message.as_str()), (503, "Loading model"), "{api:?}");
            }
            other => panic!("{api:?}: {other:?}"),
        }
        assert_eq!(reply.error().code(), ErrorCode::PoolUnready);
        assert!(reply.error().retriable());
    }
}

#[tokio::test]
async fn a_prompt_over_the_context_is_invalid_params() {
    let engine = MockEngine::start(|c| c.ctx_size = 8).await;
    let clients = EngineClients::new();
    let long = GenerateRequest::text("one two three four five six seven eight nine ten", 4);
    for api in FLAVOURS {
        let reply = generate(&clients, api, &engine.base, &long).await;
        assert!(
            matches!(reply.error(), EngineError::Rejected { status: 400, message } if message.contains("context")),
            "{api:?}: {reply:?}"
        );
        assert_eq!(reply.error().code(), ErrorCode::InvalidParams);
        assert!(!reply.error().retriable());
    }
}

#[tokio::test]
async fn dropping_a_stream_frees_the_engines_only_slot() {
    let engine = MockEngine::start(|c| c.token_interval = Some(Duration::from_millis(20))).await;
    let clients = EngineClients::new();
    let client = clients.for_api(ApiFlavour::Llamacpp);
    let mut abandoned = client
        .generate(&engine.base, &GenerateRequest::text("Once upon a time", 1_000))
        .await
        .unwrap();
    assert!(matches!(abandoned.next().await, Some(Ok(EngineEvent::Token(_)))));
    drop(abandoned);
    // With one slot, this waits forever unless the dropped stream let go of it.
    let reply = generate(
        &clients,
        ApiFlavour::Llamacpp,
        &engine.base,
        &GenerateRequest::text("hi", 2),
    )
    .await;
    assert_eq!(reply.done, Some((2, Finish::Length)), "{reply:?}");
}

/// Forwards connections to `target`, counting them. From the engine to the client it holds
/// back the last 5 bytes of every read for [`TAIL_DELAY`]: the chunked-encoding terminator
/// (`0\r\n\r\n`) then arrives after the final event, as it does from llama-server, whose
/// cpp-httplib writes it separately with `TCP_NODELAY` on.
async fn counting_proxy(target: SocketAddr) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let outbound = TcpStream::connect(target).await.unwrap();
            let (mut from_client, mut to_client) = inbound.into_split();
            let (mut from_engine, mut to_engine) = outbound.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut from_client, &mut to_engine).await });
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = from_engine.read(&mut buf).await {
                    let split = n.saturating_sub(5);
                    to_client.write_all(&buf[..split]).await.unwrap();
                    tokio::time::sleep(TAIL_DELAY).await;
                    if to_client.write_all(&buf[split..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (base, accepted)
}

const TAIL_DELAY: Duration = Duration::from_millis(10);

#[tokio::test]
async fn finished_streams_give_their_connection_back_to_the_pool() {
    let engine = MockEngine::start(|_| {}).await;
    let (base, accepted) = counting_proxy(engine.addr).await;
    let clients = EngineClients::new();
    let chat = sampled(Prompt::Chat(messages()), 4);
    for round in 0..3 {
        for api in FLAVOURS {
            for req in [&GenerateRequest::text("Once upon a time", 4), &chat] {
                let reply = generate(&clients, api, &base, req).await;
                assert_eq!(reply.done.map(|d| d.0), Some(4), "round {round}, {api:?}: {reply:?}");
                // The terminator comes a TAIL_DELAY or two after `Done` and is read in the
                // background; a next request sent before that opens a second connection.
                tokio::time::sleep(TAIL_DELAY * 15).await;
            }
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "12 streams, one connection");
}
