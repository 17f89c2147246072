//! End-to-end: what coding agents need from the OpenAI front door, with the official `openai`
//! SDKs for Python and Node against a real daemon and the mock engine on real Docker: tool
//! calls (whole and streamed) and a tool-call round trip to a final answer, request fields
//! reaching the engine as written, logprobs and reasoning relayed, `usage.prompt_tokens` equal
//! to the engine's own count, and a 400 naming a field the engine cannot honour. The scripts
//! (`e2e/python/openai_agent_check.py`, `e2e/node/openai_agent_check.mjs`) print JSON reports;
//! this file asserts on them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(30);

fn script(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn report(mut cmd: Command, d: &Daemon) -> Value {
    let out = cmd.output().expect("run the SDK script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}\n{}", d.log());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the SDK script printed no JSON report ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    eprintln!("report:\n{r:#}");
    r
}

/// The agent pool (the mock engine as llama-server, `api: llamacpp`) and its engine's URL.
fn agent_daemon() -> (Daemon, String) {
    let d = Daemon::start(Runtime::docker());
    d.write_manifest(
        "agent.yaml",
        &mock_stack("agent-engine", "agent", 1, &d.model_path(), &[]),
    );
    let s = d.wait_for("pool agent Ready", READY, |s| pool_ready(s, "agent", 1));
    let engine = s.serving("agent").unwrap().replicas[0].endpoint.as_str().to_owned();
    (d, engine)
}

fn assert_tool_calls(r: &Value) {
    let whole = &r["tool_calls"]["whole"];
    assert_eq!(whole["finish_reason"], "tool_calls", "{whole}");
    assert_eq!(whole["content"], Value::Null, "{whole}");
    assert_eq!(whole["call"]["name"], "get_weather");
    assert_eq!(whole["call"]["type"], "function");
    assert_eq!(whole["call"]["arguments"], json!({"city": "mock", "days": 1}));
    assert!(whole["call"]["id"].as_str().unwrap().starts_with("call_"), "{whole}");
    let streamed = &r["tool_calls"]["streamed"];
    assert_eq!(streamed["finish_reason"], "tool_calls", "{streamed}");
    assert_eq!(streamed["name"], "get_weather");
    assert_eq!(streamed["arguments"], whole["call"]["arguments"]);
    assert!(
        streamed["chunks"].as_u64().unwrap() >= 3,
        "header + 2 fragments at least: {streamed}"
    );
    assert_eq!(streamed["id"], whole["call"]["id"], "same seedless request, same id");
}

fn assert_agent_loop(r: &Value) {
    let l = &r["agent_loop"];
    assert_eq!(l["first_finish"], "tool_calls", "{l}");
    assert_eq!(l["tool"], "get_weather");
    assert!(
        l["final_content"]
            .as_str()
            .unwrap()
            .starts_with("Tool result: Sunny, 21 C"),
        "the engine got the tool's result: {l}"
    );
    assert_eq!(l["final_tool_calls"], Value::Null, "{l}");
    assert_ne!(l["final_finish"], "tool_calls", "{l}");
}

#[test]
fn the_python_sdk_runs_tool_calls_an_agent_loop_logprobs_and_relays_every_field() {
    let python = llama_orch_e2e::python::with_openai();
    let (d, engine) = agent_daemon();
    let mut cmd = Command::new(python);
    cmd.arg(script("python/openai_agent_check.py"))
        .args(["--base-url", &format!("{}/v1", d.url)])
        .args(["--pool", "agent", "--engine-url", &engine]);
    let r = report(cmd, &d);
    assert_tool_calls(&r);
    assert_agent_loop(&r);

    let f = &r["fields"];
    assert_eq!(f["path"], "/v1/chat/completions");
    assert_eq!(
        f["received"], f["sent"],
        "every field reached the engine as written: {f}"
    );
    let keys = f["received_keys"].as_array().unwrap();
    assert!(
        keys.contains(&json!("max_tokens")) && keys.contains(&json!("stream")),
        "{f}"
    );
    assert!(!keys.contains(&json!("model")), "the data plane owns `model`: {f}");

    let lp = &r["logprobs"];
    assert_eq!(
        lp["whole_entries"], lp["completion_tokens"],
        "one entry per token: {lp}"
    );
    assert_eq!(lp["joined_tokens"], lp["whole_text"], "{lp}");
    assert!(lp["top_logprobs"].as_array().unwrap().iter().all(|n| n == 2), "{lp}");
    assert_eq!(lp["streamed_entries"], lp["whole_entries"], "{lp}");
    assert_eq!(lp["legacy_tokens"], lp["legacy_completion_tokens"], "{lp}");
    assert!(
        !lp["reasoning"].as_str().unwrap_or("").is_empty(),
        "reasoning_content relayed: {lp}"
    );

    let p = &r["prompt_tokens"];
    assert_eq!(
        p["chat_usage"], p["chat_engine"],
        "usage.prompt_tokens is the engine's count: {p}"
    );
    assert_eq!(p["text_usage"], p["text_engine"], "{p}");
    assert_ne!(p["text_usage"], p["bytes_over_4"], "not the bytes/4 estimate: {p}");

    let refused = &r["refusals"];
    for (case, field) in [("unknown_field", "guided_json"), ("not_honoured", "suffix")] {
        let e = &refused[case];
        assert_eq!(e["status"], 400, "{case}: {e}");
        assert_eq!(e["param"], field, "{case}: {e}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("`{field}`")) && msg.contains("`agent-engine`") && msg.contains("api: llamacpp"),
            "{case}: the message names the field, the engine and its API: {msg}"
        );
    }
}
