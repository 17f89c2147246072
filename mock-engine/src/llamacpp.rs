//! llama-server's native API: `/health`, `/props`, `/slots`, `/metrics` and `/completion`,
//! with the JSON shapes llama-server uses (field names from its `tools/server` code).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::access_log::TokenTally;
use crate::api_error::ApiError;
use crate::emitter::{Emitted, Emitter, Summary};
use crate::generation::GenerationSpec;
use crate::metrics::Gauges;
use crate::request::{DEFAULT_TEMPERATURE, DEFAULT_TOP_P, ValidRequest, parse_native};
use crate::sse::stream_response;
use crate::state::{AppState, BUILD_INFO};
use crate::tokens::Sampling;

/// `GET /health`: 200 `{"status":"ok"}` once loaded, unless `--health` says otherwise.
/// (While loading, the router's gate answers 503 "Loading model" for every route.)
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.config.health.is_healthy(state.uptime()) {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        ApiError::unavailable(format!(
            "Service unavailable (injected by mock-engine --health {})",
            state.config.health
        ))
        .into_response()
    }
}

/// `GET /props`.
pub async fn props(State(state): State<Arc<AppState>>) -> Json<Value> {
    let config = &state.config;
    let defaults = Sampling {
        seed: config.default_seed,
        temperature: DEFAULT_TEMPERATURE,
        top_p: DEFAULT_TOP_P,
    };
    Json(json!({
        "default_generation_settings": {
            "id": 0,
            "id_task": -1,
            "n_ctx": config.n_ctx_slot(),
            "speculative": false,
            "is_processing": false,
            "params": params_json(-1, &defaults, &[], true),
            "prompt": "",
            "next_token": { "has_next_token": true, "has_new_line": false, "n_remain": -1, "n_decoded": 0, "stopping_word": "" },
        },
        "total_slots": config.parallel,
        "model_alias": config.alias,
        "model_path": config.model_path.display().to_string(),
        "chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:",
        "chat_template_caps": {},
        "modalities": { "vision": false, "audio": false },
        "build_info": BUILD_INFO,
        "is_sleeping": false,
        "embeddings": config.embeddings,
        // llama-server flags the mock accepts and ignores, as they were given.
        "mock_ignored_flags": { "n_gpu_layers": config.n_gpu_layers, "jinja": config.jinja },
    }))
}

/// `GET /slots` (with llama-server's `?fail_on_no_slot=1`).
pub async fn slots(State(state): State<Arc<AppState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let views = state.slots.views();
    let fail_on_no_slot = query.get("fail_on_no_slot").is_some_and(|v| v == "1" || v == "true");
    if fail_on_no_slot && views.iter().all(|s| s.is_processing) {
        return ApiError::unavailable("no slot available").into_response();
    }
    let config = &state.config;
    let defaults = Sampling {
        seed: config.default_seed,
        temperature: DEFAULT_TEMPERATURE,
        top_p: DEFAULT_TOP_P,
    };
    let slots: Vec<Value> = views
        .iter()
        .map(|slot| {
            let mut view = json!({
                "id": slot.id,
                "id_task": slot.id_task,
                "n_ctx": config.n_ctx_slot(),
                "speculative": false,
                "is_processing": slot.is_processing,
                "params": params_json(-1, &defaults, &[], true),
                "next_token": {
                    "has_next_token": slot.is_processing,
                    "has_new_line": false,
                    "n_remain": -1,
                    "n_decoded": slot.n_decoded,
                },
            });
            // llama-server (llama.cpp of llama-cpp-python 0.3.36) reports the tokens a busy
            // slot's context holds, prompt and generated so far, as `n_prompt_tokens`.
            if slot.is_processing {
                view["n_prompt_tokens"] = json!(slot.n_tokens());
            }
            view
        })
        .collect();
    Json(Value::Array(slots)).into_response()
}

/// `GET /metrics` (served whether or not `--metrics` was given).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let gauges = Gauges {
        requests_processing: state.slots.busy(),
        requests_deferred: state.slots.waiting(),
        kv_cache_usage_ratio: state.slots.kv_cache_usage_ratio(state.config.n_ctx_slot()),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(gauges),
    )
        .into_response()
}

/// `POST /completion` (and `/completions`).
pub async fn completion(
    State(state): State<Arc<AppState>>,
    Extension(tally): Extension<TokenTally>,
    body: Bytes,
) -> Response {
    let request = match parse_native(&body, state.config.default_seed) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let emitter = match Emitter::start(Arc::clone(&state), &request, tally).await {
        Ok(emitter) => emitter,
        Err(err) => return err.into_response(),
    };
    let id_slot = emitter.id_slot();
    if request.stream {
        let model = state.config.alias.clone();
        let render = move |emitted: Emitted| match emitted {
            Emitted::Piece(piece) => vec![json!({
                "index": 0,
                "content": piece.text,
                "tokens": piece.token_ids,
                "stop": false,
                "id_slot": id_slot,
                "tokens_predicted": piece.n_decoded,
                "tokens_evaluated": request.prompt_tokens,
            })],
            // In a stream the final message repeats no content, as llama-server's.
            Emitted::Done(summary) => vec![final_json(&request, &summary, &model, id_slot, String::new())],
        };
        return stream_response(emitter, render, false);
    }
    let summary = emitter.collect().await;
    let content = summary.content.clone();
    Json(final_json(&request, &summary, &state.config.alias, id_slot, content)).into_response()
}

fn final_json(request: &ValidRequest, summary: &Summary, model: &str, id_slot: usize, content: String) -> Value {
    json!({
        "index": 0,
        "content": content,
        "tokens": [],
        "id_slot": id_slot,
        "stop": true,
        "model": model,
        "tokens_predicted": summary.tokens_predicted,
        "tokens_evaluated": summary.tokens_evaluated,
        "generation_settings": request_params_json(&request.spec, request.stream),
        "prompt": request.spec.prompt,
        "has_new_line": summary.content.contains('\n'),
        "truncated": false,
        "stop_type": summary.stop_type.as_str(),
        "stopping_word": summary.stopping_word,
        "tokens_cached": 0,
        "timings": summary.timings.to_json(),
    })
}

fn request_params_json(spec: &GenerationSpec, stream: bool) -> Value {
    let n_predict = spec.n_predict.map_or(-1, i64::from);
    params_json(n_predict, &spec.sampling, &spec.stop, stream)
}

/// llama-server's sampling `params` object (the subset the mock honours, plus fixed defaults).
fn params_json(n_predict: i64, sampling: &Sampling, stop: &[String], stream: bool) -> Value {
    json!({
        "n_predict": n_predict,
        "seed": sampling.seed,
        "temperature": sampling.temperature,
        "dynatemp_range": 0.0,
        "dynatemp_exponent": 1.0,
        "top_k": 40,
        "top_p": sampling.top_p,
        "min_p": 0.05,
        "typical_p": 1.0,
        "repeat_last_n": 64,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "mirostat": 0,
        "stop": stop,
        "max_tokens": n_predict,
        "n_keep": 0,
        "n_discard": 0,
        "ignore_eos": false,
        "stream": stream,
        "n_probs": 0,
        "min_keep": 0,
        "grammar": "",
        "samplers": ["top_k", "top_p", "min_p", "temperature"],
        "timings_per_token": false,
    })
}
