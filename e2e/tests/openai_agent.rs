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

/// The agent pool (the mock engine as llama-server, `api: llamacpp`) and its engine's URL, and
/// a `tgi` pool (the mock engine's TGI-native routes, `api: tgi`).
fn agent_daemon() -> (Daemon, String) {
    let d = Daemon::start(Runtime::docker());
    d.write_manifest(
        "agent.yaml",
        &mock_stack("agent-engine", "agent", 1, &d.model_path(), &[]),
    );
    let tgi = mock_stack("tgi-engine", "tgi", 1, &d.model_path(), &[]).replacen(
        "  version: \"0.1.0\"\n",
        "  version: \"0.1.0\"\n  api: tgi\n",
        1,
    );
    assert!(tgi.contains("api: tgi"), "{tgi}");
    d.write_manifest("tgi.yaml", &tgi);
    let embed = mock_stack("embed-engine", "embed", 1, &d.model_path(), &["--embeddings"]).replacen(
        "  slotsPerReplica: 2\n",
        "  slotsPerReplica: 2\n  workload: embeddings\n",
        1,
    );
    assert!(embed.contains("workload: embeddings"), "{embed}");
    d.write_manifest("embed.yaml", &embed);
    let s = d.wait_for("pools agent, tgi and embed Ready", READY, |s| {
        ["agent", "tgi", "embed"].into_iter().all(|p| pool_ready(s, p, 1))
    });
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
        .args(["--pool", "agent", "--engine-url", &engine, "--tgi-pool", "tgi"])
        .args(["--embed-pool", "embed"]);
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

    let tgi = &r["tgi"];
    assert!(!tgi["text"].as_str().unwrap().is_empty(), "{tgi}");
    assert_eq!(tgi["finish_reason"], "length", "4 of 4 tokens: {tgi}");
    assert_eq!(tgi["usage"]["completion_tokens"], 4, "{tgi}");
    assert_eq!(tgi["refused"]["status"], 400, "{tgi}");
    assert_eq!(tgi["refused"]["param"], "logprobs", "{tgi}");
    assert!(
        tgi["refused"]["message"].as_str().unwrap().contains("api: tgi"),
        "{tgi}"
    );

    let e = &r["embeddings"];
    assert_eq!(e["count"], 2, "{e}");
    assert_eq!(e["dims"], json!([16, 16]), "the mock's default dimension: {e}");
    assert_eq!(e["model"], "embed", "{e}");
    assert!(e["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{e}");
    assert!(e["max_diff"].as_f64().unwrap() < 1e-6, "base64 and floats agree: {e}");
    assert!((e["norm"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{e}");
    for case in ["chat_on_embed", "embed_on_chat"] {
        assert_eq!(e[case]["status"], 400, "{case}: {e}");
        assert_eq!(e[case]["param"], "model", "{case}: {e}");
    }
    assert!(
        e["chat_on_embed"]["message"]
            .as_str()
            .unwrap()
            .contains("workload: embeddings"),
        "{e}"
    );

    let stop = &r["stop_on_last"];
    assert_eq!(
        stop["finish_reason"], "stop",
        "the engine's reason, not a guess from the count: {stop}"
    );
    assert!(
        !stop["text"].as_str().unwrap().ends_with(stop["last"].as_str().unwrap()),
        "the stop string is not in the text: {stop}"
    );

    let native = &r["native_end"];
    assert_eq!(native["end"]["finish_reason"], "length", "{native}");
    assert_eq!(native["end"]["tokens_out"], 3, "{native}");
    assert_eq!(native["end"]["tokens_in"], native["engine_prompt_tokens"], "{native}");
}

/// `${LLORCH_CACHE:-~/.cache/llama-orch-ci}/node-openai/node_modules`, where `scripts/test.sh`
/// installs the `openai` npm package.
fn node_modules() -> PathBuf {
    let dir = llama_orch_e2e::python::venv_named("node-openai").join("node_modules");
    assert!(
        dir.join("openai").exists(),
        "{} has no `openai` package; run:\n  mkdir -p {1} && cd {1} && npm install openai@6.49.0   (scripts/test.sh does this)",
        dir.display(),
        dir.parent().unwrap().display()
    );
    dir
}

#[test]
fn the_node_sdk_runs_tool_calls_an_agent_loop_and_logprobs() {
    let node_path = node_modules();
    let (d, _engine) = agent_daemon();
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", node_path)
        .arg(script("node/openai_agent_check.mjs"))
        .args([
            "--base-url",
            &format!("{}/v1", d.url),
            "--pool",
            "agent",
            "--embed-pool",
            "embed",
        ]);
    let r = report(cmd, &d);
    assert_tool_calls(&r);
    assert_agent_loop(&r);
    let lp = &r["logprobs"];
    assert_eq!(lp["whole_entries"], lp["completion_tokens"], "{lp}");
    assert_eq!(lp["joined_tokens"], lp["whole_text"], "{lp}");
    let e = &r["embeddings"];
    assert_eq!(
        (e["count"].clone(), e["dims"].clone()),
        (json!(2), json!([16, 16])),
        "{e}"
    );
    assert!(e["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{e}");
}
