//! End-to-end: the OpenAI-compatible API (`/v1`) driven by the official `openai` Python SDK and
//! by `curl -N`, against a real daemon with mock-engine pools on real Docker: streaming and whole
//! replies, usage, a full queue (429 + `Retry-After`), disconnects and an engine dying mid-stream.
//! The SDK runs from the virtual environment `scripts/test.sh` prepares; without it the test fails
//! with the command to run. `e2e/python/openai_sdk_check.py` prints a JSON report; this file
//! asserts on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use serde_json::Value;

const READY: Duration = Duration::from_secs(30);

/// A pool of the mock engine with `slots` per replica and the given queue.
fn pool(d: &Daemon, name: &str, slots: u32, queue: &str, engine_args: &[&str]) -> String {
    mock_stack(&format!("{name}-engine"), name, 1, &d.model_path(), engine_args).replace(
        "slotsPerReplica: 2",
        &format!("slotsPerReplica: {slots}\n  queue: {queue}"),
    )
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/openai_sdk_check.py")
}

fn run_sdk_checks(python: &Path, d: &Daemon) -> Value {
    let out = Command::new(python)
        .arg(script())
        .args(["--base-url", &format!("{}/v1", d.url)])
        .args([
            "--pool",
            "chat",
            "--model",
            "chat-model",
            "--tight-pool",
            "tight",
            "--crash-pool",
            "crash",
        ])
        .output()
        .expect("run the SDK script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}\n{}", d.log());
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the SDK script printed no JSON report ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn assert_usage(usage: &Value, completion_tokens: u64, what: &str) {
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    assert!(prompt > 0, "{what}: prompt_tokens in {usage}");
    assert_eq!(usage["completion_tokens"], completion_tokens, "{what}: {usage}");
    assert_eq!(usage["total_tokens"], prompt + completion_tokens, "{what}: {usage}");
}

fn assert_sdk_report(r: &Value) {
    assert_eq!(r["errors"], serde_json::json!({}), "checks that raised:\n{r:#}");

    let models = &r["models"];
    assert_eq!(
        models["ids"],
        serde_json::json!(["chat", "chat-model", "crash", "crash-model", "tight", "tight-model"]),
        "Pools and the Models they serve: {models}"
    );
    assert_eq!(models["entry"]["owned_by"], "llama-orch");
    assert_eq!(models["entry"]["root"], "chat-model");
    assert_eq!(models["entry"]["meta"]["ready"], true, "{models}");
    assert_eq!(models["retrieved_id"], "chat");
    // The Model's name resolves in GET /v1/models/{id} as it does in a request.
    assert_eq!(models["model_entry"], models["listed_model_entry"], "{models}");
    assert_eq!(models["model_entry"]["meta"]["pools"], serde_json::json!(["chat"]));
    assert_eq!(models["model_entry"]["meta"]["state"], "ready");

    let chat = &r["chat"];
    let (stream, whole) = (&chat["stream"], &chat["whole"]);
    assert_eq!(stream["roles"], serde_json::json!(["assistant"]), "role first, once");
    assert_eq!(stream["objects"], serde_json::json!(["chat.completion.chunk"]));
    assert_eq!(stream["ids"], 1, "one id per stream");
    assert_eq!(stream["finish_reason"], "length", "8 of max 8 tokens");
    assert_usage(&stream["usage"], 8, "chat stream");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["role"], "assistant");
    assert_eq!(whole["model"], "chat");
    assert!(whole["id"].as_str().unwrap().starts_with("chatcmpl-"), "{whole}");
    assert!(whole["system_fingerprint"].as_str().is_some_and(|f| f.contains('@')));
    assert_eq!(whole["finish_reason"], "length");
    assert_usage(&whole["usage"], 8, "chat");
    let text = whole["text"].as_str().unwrap();
    assert!(!text.is_empty());
    assert_eq!(stream["text"], text, "same seed: same text streamed and not");
    assert_eq!(
        chat["by_model_name"]["text"], text,
        "a Model name reaches the pool serving it"
    );
    assert_eq!(
        chat["by_model_name"]["model"], "chat-model",
        "the requested model is echoed"
    );
    let stopped = &chat["stopped"];
    assert_eq!(stopped["finish_reason"], "stop", "{stopped}");
    assert!(stopped["completion_tokens"].as_u64().unwrap() < 8, "{stopped}");
    assert!(
        text.starts_with(stopped["text"].as_str().unwrap())
            && !stopped["text"]
                .as_str()
                .unwrap()
                .contains(stopped["stop"].as_str().unwrap()),
        "{stopped}"
    );

    let cmpl = &r["completions"];
    let (stream, whole) = (&cmpl["stream"], &cmpl["whole"]);
    assert_eq!(stream["objects"], serde_json::json!(["text_completion"]));
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(stream["finish_reason"], "length");
    assert_eq!(whole["finish_reason"], "length");
    assert_usage(&stream["usage"], 8, "completions stream");
    assert_usage(&whole["usage"], 8, "completions");
    assert!(!whole["text"].as_str().unwrap().is_empty());
    assert_eq!(stream["text"], whole["text"], "same seed: same text streamed and not");
    assert_ne!(cmpl["other_seed_text"], whole["text"], "another seed, another text");

    let errors = &r["errors_shape"];
    assert_eq!(errors["unknown_model"]["status"], 404, "{errors}");
    assert_eq!(errors["unknown_model"]["code"], "POOL_UNAVAILABLE");
    assert_eq!(errors["unknown_model"]["param"], "model");
    assert_eq!(errors["n_2"]["status"], 400);
    assert_eq!(errors["n_2"]["code"], "INVALID_PARAMS");
    assert_eq!(errors["n_2"]["param"], "n");

    let rl = &r["rate_limit"];
    assert_eq!(rl["got_429"], true, "{rl}");
    assert_eq!(rl["attempts"], 3, "one running, one queued, the third refused: {rl}");
    assert_eq!(rl["status"], 429);
    assert_eq!(rl["code"], "ADMISSION_REJECT");
    assert_eq!(rl["type"], "rate_limit_error");
    assert_eq!(rl["retriable"], true);
    let retry_after: u64 = rl["retry_after"].as_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{rl}");
    assert!(rl["x_backoff_ms"].as_str().is_some(), "{rl}");
    assert_eq!(
        rl["states_after_disconnect"],
        serde_json::json!(["canceled", "canceled"]),
        "closing a stream cancels its task: {rl}"
    );
    assert_eq!(rl["after"], "length", "slot and queue place were given back: {rl}");

    let crash = &r["mid_stream_error"];
    assert_eq!(crash["raised"], "APIError", "the error line after the tokens: {crash}");
    assert_eq!(crash["code"], "WORKER_RESET", "{crash}");
    assert_eq!(crash["retriable"], true, "{crash}");
    assert!(
        !crash["text_before"].as_str().unwrap().is_empty(),
        "tokens came first: {crash}"
    );
}

/// `curl -N` reads a chat stream as raw SSE: `data:` lines ending in `data: [DONE]`.
fn assert_curl_stream(d: &Daemon) {
    let body = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}"#;
    let out = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--max-time",
            "30",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ])
        .arg(format!("{}/v1/chat/completions", d.url))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    // Role chunk, 4 content chunks, the finish chunk, [DONE].
    assert_eq!(data.len(), 7, "{text}");
    let first: Value = serde_json::from_str(data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
}

#[test]
fn the_official_openai_sdk_streams_completes_sees_retry_after_and_mid_stream_errors() {
    let python = llama_orch_e2e::python::with_openai();
    let d = Daemon::start(Runtime::docker());
    d.write_manifest("chat.yaml", &pool(&d, "chat", 2, "{capacity: 8}", &[]));
    d.write_manifest(
        "tight.yaml",
        &pool(
            &d,
            "tight",
            1,
            "{capacity: 1, fullPolicy: reject}",
            &["--token-rate", "20"],
        ),
    );
    // Its engine exits after its third token: an error after the stream began.
    d.write_manifest(
        "crash.yaml",
        &pool(&d, "crash", 1, "{capacity: 4}", &["--exit-after-tokens", "3"]),
    );
    d.wait_for("pools Ready", READY, |s| {
        ["chat", "tight", "crash"].into_iter().all(|p| pool_ready(s, p, 1))
    });
    assert_curl_stream(&d);
    let report = run_sdk_checks(&python, &d);
    eprintln!("SDK report:\n{report:#}");
    assert_sdk_report(&report);
}
