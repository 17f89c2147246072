//! End-to-end: admission's context check uses the engine's own prompt token count (the mock
//! engine's word tokenizer, through llama-server's `/tokenize`), not the bytes/4 estimate,
//! when the two disagree — both ways — and the refusal names the count it used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use llama_orch_e2e::sse::TaskClient;
use serde_json::json;

const READY: Duration = Duration::from_secs(30);
/// `mock_stack`'s Model declares `ctxMax: 4096`, the Pool's context.
const CTX: usize = 4096;

fn start() -> (Daemon, TaskClient) {
    let d = Daemon::start(Runtime::docker());
    d.write_manifest(
        "count.yaml",
        &mock_stack("count-engine", "count", 1, &d.model_path(), &[]),
    );
    d.wait_for("pool Ready", READY, |s| pool_ready(s, "count", 1));
    let c = TaskClient::new(&d.url);
    (d, c)
}

#[test]
fn the_engines_count_decides_whether_a_prompt_fits_the_context() {
    let (_d, c) = start();

    // 200 words of 99 bytes: ~5000 tokens by bytes/4 (over the context), 201 by the engine's
    // `/tokenize` (with BOS).
    let long_words = vec!["x".repeat(99); 200].join(" ");
    assert!(long_words.len().div_ceil(4) > CTX, "the estimate alone would refuse it");
    let a = c.submit(&json!({"pool": "count", "prompt": long_words, "max_tokens": 8, "seed": 1}));
    assert_eq!(a.status, 202, "admitted on the engine's count: {:?}", a.body);
    let id = a.body["task_id"].as_str().unwrap();
    let events = c.events(id);
    let end = &events.last().unwrap().data;
    // The engine's own report after the reply (the mock's completion count leaves BOS out).
    assert_eq!(end["tokens_in"], 200, "{end}");

    // 3000 one-letter words: ~1500 tokens by bytes/4, 3001 by the engine; with 1200 to
    // generate it fits by the estimate and not by the count.
    let short_words = vec!["a"; 3000].join(" ");
    assert!(
        short_words.len().div_ceil(4) + 1200 <= CTX,
        "the estimate alone would admit it"
    );
    let r = c.submit(&json!({"pool": "count", "prompt": short_words, "max_tokens": 1200}));
    assert_eq!(r.status, 400, "{:?}", r.body);
    let body = r.body.to_string();
    assert!(
        body.contains("3001 tokens, counted by the engine") && body.contains("context of 4096 tokens"),
        "the refusal names the counted tokens: {body}"
    );

    // The same prompt with room to generate is admitted: the count came from the cache.
    let ok = c.submit(&json!({"pool": "count", "prompt": short_words, "max_tokens": 16}));
    assert_eq!(ok.status, 202, "{:?}", ok.body);
}
