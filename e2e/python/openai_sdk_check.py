"""Drives llama-orch's OpenAI-compatible API with the official `openai` Python SDK.

Run by e2e/tests/openai_sdk.rs against a real daemon; prints one JSON report on stdout that the
Rust test asserts on. Every check records what it saw; an exception is recorded under `errors`
with its traceback instead of stopping the other checks, so a failing run says everything at once.

    python openai_sdk_check.py --base-url http://127.0.0.1:PORT --pool chat --model chat-model \
        --tight-pool tight --crash-pool crash
"""

import argparse
import json
import sys
import time
import traceback
import urllib.request

import openai

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me a story."},
]
PROMPT = "Once upon a time"


def collect_chat_stream(stream):
    """Reads a chat stream to its end; returns what a client would check."""
    seen = {"roles": [], "text": "", "finish_reason": None, "usage": None, "chunks": 0,
            "objects": set(), "ids": set()}
    for chunk in stream:
        seen["chunks"] += 1
        seen["objects"].add(chunk.object)
        seen["ids"].add(chunk.id)
        if chunk.usage is not None:
            seen["usage"] = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.role:
                seen["roles"].append(choice.delta.role)
            if choice.delta.content:
                seen["text"] += choice.delta.content
            if choice.finish_reason:
                seen["finish_reason"] = choice.finish_reason
    seen["objects"] = sorted(seen["objects"])
    seen["ids"] = len(seen["ids"])
    return seen


def collect_text_stream(stream):
    seen = {"text": "", "finish_reason": None, "usage": None, "chunks": 0, "objects": set()}
    for chunk in stream:
        seen["chunks"] += 1
        seen["objects"].add(chunk.object)
        if chunk.usage is not None:
            seen["usage"] = chunk.usage.model_dump()
        for choice in chunk.choices:
            seen["text"] += choice.text or ""
            if choice.finish_reason:
                seen["finish_reason"] = choice.finish_reason
    seen["objects"] = sorted(seen["objects"])
    return seen


def check_models(client, args):
    models = client.models.list()
    entries = {m.id: m.model_dump() for m in models.data}
    one = client.models.retrieve(args.pool)
    by_model = client.models.retrieve(args.model).model_dump()
    return {"ids": sorted(entries), "entry": entries.get(args.pool), "retrieved_id": one.id,
            "model_entry": by_model, "listed_model_entry": entries.get(args.model)}


def check_chat(client, args):
    params = dict(model=args.pool, messages=MESSAGES, max_tokens=8, seed=7, temperature=0.8)
    streamed = collect_chat_stream(client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **params))
    whole = client.chat.completions.create(**params)
    by_model = client.chat.completions.create(**{**params, "model": args.model})
    # A stop string taken from the reply itself ends it early with finish_reason "stop".
    words = whole.choices[0].message.content.split(" ")
    stop_word = " " + words[3] if len(words) > 3 else None
    stopped = None
    if stop_word:
        r = client.chat.completions.create(stop=[stop_word], **params)
        stopped = {"text": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
                   "stop": stop_word, "completion_tokens": r.usage.completion_tokens}
    return {
        "stream": streamed,
        "whole": {
            "object": whole.object,
            "id": whole.id,
            "model": whole.model,
            "role": whole.choices[0].message.role,
            "text": whole.choices[0].message.content,
            "finish_reason": whole.choices[0].finish_reason,
            "usage": whole.usage.model_dump(),
            "system_fingerprint": whole.system_fingerprint,
        },
        "by_model_name": {"model": by_model.model, "text": by_model.choices[0].message.content},
        "stopped": stopped,
    }


def check_completions(client, args):
    params = dict(model=args.pool, prompt=PROMPT, max_tokens=8, seed=11)
    streamed = collect_text_stream(client.completions.create(
        stream=True, stream_options={"include_usage": True}, **params))
    whole = client.completions.create(**params)
    other_seed = client.completions.create(**{**params, "seed": 12, "temperature": 0.9})
    return {
        "stream": streamed,
        "whole": {
            "object": whole.object,
            "text": whole.choices[0].text,
            "finish_reason": whole.choices[0].finish_reason,
            "usage": whole.usage.model_dump(),
        },
        "other_seed_text": other_seed.choices[0].text,
    }


def check_errors(client, args):
    out = {}
    try:
        client.chat.completions.create(model="no-such-pool", messages=MESSAGES, max_tokens=4)
        out["unknown_model"] = "no error"
    except openai.NotFoundError as e:
        out["unknown_model"] = {"status": e.status_code, "code": e.code, "param": e.param, "type": e.type}
    try:
        client.chat.completions.create(model=args.pool, messages=MESSAGES, max_tokens=4, n=2)
        out["n_2"] = "no error"
    except openai.BadRequestError as e:
        out["n_2"] = {"status": e.status_code, "code": e.code, "param": e.param}
    return out


def task_state(args, task_id):
    url = f"{args.base_url.removesuffix('/v1')}/v2/tasks/{task_id}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r).get("state")


def check_rate_limit(client, args):
    """Fills a pool of one slot and a one-place queue, then expects a 429 with Retry-After."""
    tight = client.with_options(max_retries=0)
    params = dict(model=args.tight_pool, messages=MESSAGES, max_tokens=200, stream=True)
    held, error, attempts = [], None, 0
    try:
        while error is None and attempts < 6:
            attempts += 1
            try:
                held.append(tight.chat.completions.create(**params))
            except openai.RateLimitError as e:
                error = e
        if error is None:
            return {"got_429": False, "attempts": attempts}
        body = error.body if isinstance(error.body, dict) else {}
        report = {
            "got_429": True,
            "attempts": attempts,
            "status": error.status_code,
            "retry_after": error.response.headers.get("retry-after"),
            "x_backoff_ms": error.response.headers.get("x-backoff-ms"),
            "code": error.code,
            "type": error.type,
            "retriable": body.get("retriable"),
        }
        task_ids = [s.response.headers.get("x-llorch-task-id") for s in held]
    finally:
        # Closing the streams is a client disconnect: each task must be canceled.
        for s in held:
            s.close()
    states = {}
    deadline = time.time() + 10
    while time.time() < deadline:
        states = {t: task_state(args, t) for t in task_ids}
        if all(s == "canceled" for s in states.values()):
            break
        time.sleep(0.1)
    report["held"] = len(task_ids)
    report["states_after_disconnect"] = sorted(states.values())
    # The slot and the queue place are free again: a short request gets through at once.
    r = tight.chat.completions.create(model=args.tight_pool, messages=MESSAGES, max_tokens=2)
    report["after"] = r.choices[0].finish_reason
    return report


def check_mid_stream_error(client, args):
    """An engine that dies mid-stream: the SDK raises the error line sent after the tokens."""
    stream = client.with_options(max_retries=0).chat.completions.create(
        model=args.crash_pool, messages=MESSAGES, max_tokens=50, stream=True)
    text = ""
    try:
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
    except openai.APIError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"raised": type(e).__name__, "code": e.code, "retriable": body.get("retriable"),
                "text_before": text}
    return {"raised": None, "text_before": text}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--model", required=True, help="the Model the pool serves")
    p.add_argument("--tight-pool", required=True)
    p.add_argument("--crash-pool", required=True, help="a pool whose engine exits after 3 tokens")
    args = p.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="sk-dummy", timeout=60)
    report = {"openai_version": openai.__version__, "errors": {}}
    for name, check in [("models", check_models), ("chat", check_chat),
                        ("completions", check_completions), ("errors_shape", check_errors),
                        ("rate_limit", check_rate_limit),
                        ("mid_stream_error", check_mid_stream_error)]:
        try:
            report[name] = check(client, args)
        except Exception:  # noqa: BLE001 - every failure goes into the report
            report["errors"][name] = traceback.format_exc()
    json.dump(report, sys.stdout, indent=2, default=str)
    print()


if __name__ == "__main__":
    main()
