//! The built `mock-engine` binary: exit codes, startup failures, the injected crash, signals,
//! and the stderr lines `docker logs` shows.

// Helpers outside #[test] functions may unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Process, SseReader, binary, model_file, model_file_with};
use serde_json::json;
use tokio::process::Command;

async fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(binary())
            .args(["--port", "0"])
            .args(args)
            .envs(envs.iter().copied())
            .output(),
    )
    .await
    .expect("exits")
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_missing_model_file_exits_1_naming_the_path() {
    let (code, stderr) = run_to_exit(&["--model", "/nonexistent/dir/model.gguf"], &[]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("error: failed to load model '/nonexistent/dir/model.gguf'"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_directory_is_not_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(&["--model", dir.path().to_str().unwrap()], &[]).await;
    assert_eq!(code, 1, "{stderr}");
}

#[tokio::test]
async fn a_file_that_is_not_gguf_is_refused_like_llama_cpp_does() {
    let model = model_file_with(b"mock weights");
    let path = model.path().to_str().unwrap();
    let (code, stderr) = run_to_exit(&["--model", path], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("invalid magic characters"), "{stderr}");
    assert!(stderr.contains("llama_model_load: error loading model: "), "{stderr}");
    assert!(
        stderr.contains(&format!("error: failed to load model '{path}'")),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unknown_architecture_is_refused_by_name() {
    let model = model_file_with(&llorch_gguf::fixture::tiny_model("brokenarch"));
    let (code, stderr) = run_to_exit(&["--model", model.path().to_str().unwrap()], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("unknown model architecture: 'brokenarch'"), "{stderr}");
}

#[tokio::test]
async fn fail_at_start_logs_a_load_error_and_exits_1_also_from_the_environment() {
    let model = model_file();
    let path = model.path().to_str().unwrap();
    let expected = format!("error: failed to load model '{path}'");
    let (code, stderr) = run_to_exit(&["--model", path, "--fail-at-start"], &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains(&expected), "{stderr}");
    let (code, stderr) = run_to_exit(&[], &[("MOCK_MODEL", path), ("MOCK_FAIL_AT_START", "1")]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test]
async fn unknown_flags_are_rejected_with_exit_code_2() {
    let model = model_file();
    let (code, stderr) = run_to_exit(
        &["--model", model.path().to_str().unwrap(), "--flash-attn-typo", "9"],
        &[],
    )
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("--flash-attn-typo"), "{stderr}");
}

#[tokio::test]
async fn the_banner_and_request_lines_tell_what_happened() {
    let model = model_file();
    let path = model.path().to_str().unwrap();
    let process = Process::start(&["-m", path, "-c", "1024", "-np", "2", "--metrics", "--slots"], &[]).await;
    process.wait_healthy().await;
    let client = reqwest::Client::new();
    let body = json!({"prompt":"x","n_predict":3,"stream":true});
    let events = SseReader::new(
        client
            .post(process.url("/completion"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .collect()
    .await;
    assert_eq!(events.len(), 4);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stderr = process.stderr_text();
    let banner = stderr.lines().next().unwrap();
    for needle in [path, "slots 2", "ctx 1024", &process.base] {
        assert!(banner.contains(needle), "banner lacks {needle:?}: {banner}");
    }
    assert!(stderr.contains("request: POST /completion 200 tokens=3"), "{stderr}");
    assert!(
        !stderr.contains("request: GET /health 200"),
        "passing probes are not: {stderr}"
    );
}

#[tokio::test]
async fn exit_after_tokens_kills_the_process_mid_stream_with_code_1() {
    let model = model_file();
    let mut process = Process::start(
        &["--model", model.path().to_str().unwrap(), "--exit-after-tokens", "5"],
        &[],
    )
    .await;
    process.wait_healthy().await;
    let client = reqwest::Client::new();
    // 3 tokens in a first request, then 2 of the next one's 10: 5 in total.
    let first = client
        .post(process.url("/completion"))
        .json(&json!({"prompt":"a","n_predict":3}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let body = json!({"prompt":"b","n_predict":10,"stream":true});
    let mut reader = SseReader::new(
        client
            .post(process.url("/completion"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    );
    let mut tokens = 0;
    loop {
        // The abrupt end surfaces as an error from the body stream.
        match tokio::time::timeout(Duration::from_secs(5), reader.try_next())
            .await
            .expect("ends in time")
        {
            Ok(Some(event)) => {
                let chunk: serde_json::Value = serde_json::from_str(&event).unwrap();
                assert_eq!(chunk["stop"], false, "the stream must not finish normally");
                tokens += 1;
            }
            Ok(None) => panic!("the stream ended cleanly instead of being cut"),
            Err(_) => break,
        }
    }
    assert_eq!(tokens, 2);
    assert_eq!(process.exit_code_within(Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn sigterm_stops_the_engine_promptly_even_mid_stream() {
    let model = model_file();
    let mut process = Process::start(&["--model", model.path().to_str().unwrap(), "--token-rate", "5"], &[]).await;
    process.wait_healthy().await;
    let body = json!({"prompt":"slow","n_predict":1000,"stream":true});
    let response = reqwest::Client::new()
        .post(process.url("/completion"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut reader = SseReader::new(response);
    assert!(reader.next().await.is_some());

    let started = Instant::now();
    let pid = process.child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    assert_eq!(process.exit_code_within(Duration::from_secs(5)).await, 0);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(process.stderr_text().contains("received SIGTERM"));
}

#[tokio::test]
async fn sigint_stops_an_idle_engine_at_once() {
    let model = model_file();
    let mut process = Process::start(&["--model", model.path().to_str().unwrap()], &[]).await;
    process.wait_healthy().await;
    let started = Instant::now();
    let pid = process.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    assert_eq!(process.exit_code_within(Duration::from_secs(5)).await, 0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}
