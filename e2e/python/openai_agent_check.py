"""What a coding agent needs from llama-orch's OpenAI front door, with the official `openai`
Python SDK: tool calls (whole and streamed), a tool-call round trip that ends in an answer,
request fields reaching the engine as written, logprobs, reasoning, the engine's own prompt
token count, and a 400 naming a field the engine cannot honour.

    python openai_agent_check.py --base-url http://127.0.0.1:PORT/v1 --pool agent \
        --engine-url http://127.0.0.1:ENGINE_PORT

`--engine-url` is the mock engine behind the pool: its `/debug/requests` shows what reached
it, and its `/apply-template` + `/tokenize` count a prompt as the engine does. Prints one JSON
report on stdout; the Rust test (e2e/tests/openai_agent.rs) asserts on it.
"""
import argparse
import json
import urllib.request

import openai

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]


def engine(args, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(args.engine_url + path, data=data,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def call_of(message):
    c = message.tool_calls[0]
    return {"id": c.id, "type": c.type, "name": c.function.name,
            "arguments": json.loads(c.function.arguments)}


def check_tool_calls(client, args):
    whole = client.chat.completions.create(
        model=args.pool, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=32)
    streamed = {"name": "", "arguments": "", "id": None, "finish_reason": None, "chunks": 0}
    for chunk in client.chat.completions.create(
            model=args.pool, messages=ASK, tools=[WEATHER], tool_choice="required",
            max_tokens=32, stream=True):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for d in choice.delta.tool_calls or []:
            streamed["chunks"] += 1
            streamed["id"] = d.id or streamed["id"]
            if d.function and d.function.name:
                streamed["name"] += d.function.name
            if d.function and d.function.arguments:
                streamed["arguments"] += d.function.arguments
        streamed["finish_reason"] = choice.finish_reason or streamed["finish_reason"]
    streamed["arguments"] = json.loads(streamed["arguments"])
    return {
        "whole": {"call": call_of(whole.choices[0].message), "content": whole.choices[0].message.content,
                  "finish_reason": whole.choices[0].finish_reason, "usage": whole.usage.model_dump()},
        "streamed": streamed,
    }


def check_agent_loop(client, args):
    """Tool call -> tool result message -> final answer, as an agent runs it."""
    messages = list(ASK)
    first = client.chat.completions.create(
        model=args.pool, messages=messages, tools=[WEATHER], max_tokens=32)
    msg = first.choices[0].message
    messages.append(msg.model_dump(exclude_none=True))
    for call in msg.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"})
    final = client.chat.completions.create(
        model=args.pool, messages=messages, tools=[WEATHER], max_tokens=8)
    return {"first_finish": first.choices[0].finish_reason, "tool": msg.tool_calls[0].function.name,
            "final_finish": final.choices[0].finish_reason,
            "final_content": final.choices[0].message.content,
            "final_tool_calls": final.choices[0].message.tool_calls}


# Fields a client sends that the data plane does not own: they must reach the engine as written.
RELAYED = {
    "temperature": 0.7, "top_p": 0.9, "seed": 7, "stop": ["\n\n"], "user": "agent-1",
    "frequency_penalty": 0.5, "presence_penalty": 0.25, "logit_bias": {"15": -100},
    "response_format": {"type": "json_object"}, "parallel_tool_calls": False,
    "tool_choice": "none", "tools": [WEATHER],
}
EXTRAS = {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1, "mirostat": 0}


def check_fields_reach_engine(client, args):
    client.chat.completions.create(
        model=args.pool, messages=ASK, max_tokens=4, extra_body=EXTRAS, **RELAYED)
    received = engine(args, "/debug/requests")[-1]
    sent = {**RELAYED, **EXTRAS, "messages": ASK}
    return {"path": received["path"], "sent": sent,
            "received": {k: received["body"].get(k) for k in sent},
            "received_keys": sorted(received["body"])}


def check_logprobs_and_reasoning(client, args):
    whole = client.chat.completions.create(
        model=args.pool, messages=ASK, max_tokens=5, logprobs=True, top_logprobs=2)
    lp = whole.choices[0].logprobs.content
    streamed_entries = 0
    for chunk in client.chat.completions.create(
            model=args.pool, messages=ASK, max_tokens=5, logprobs=True, top_logprobs=2, stream=True):
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            streamed_entries += len(chunk.choices[0].logprobs.content)
    text = client.completions.create(model=args.pool, prompt="Once upon a time", max_tokens=4, logprobs=2)
    thought = client.chat.completions.create(
        model=args.pool, messages=ASK, max_tokens=4, reasoning_effort="low")
    dumped = thought.choices[0].message.model_dump()
    return {
        "whole_entries": len(lp), "whole_text": whole.choices[0].message.content,
        "joined_tokens": "".join(e.token for e in lp),
        "top_logprobs": [len(e.top_logprobs) for e in lp],
        "completion_tokens": whole.usage.completion_tokens,
        "streamed_entries": streamed_entries,
        "legacy_tokens": len(text.choices[0].logprobs.tokens),
        "legacy_completion_tokens": text.usage.completion_tokens,
        "reasoning": dumped.get("reasoning_content"),
        "reasoning_content_after": thought.choices[0].message.content,
    }


def check_prompt_tokens(client, args):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Name three colours of the rainbow, please, in order."}]
    whole = client.chat.completions.create(model=args.pool, messages=messages, max_tokens=3)
    prompt = engine(args, "/apply-template", {"messages": messages})["prompt"]
    counted = len(engine(args, "/tokenize", {"content": prompt})["tokens"])
    text = "The quick brown fox jumps over the lazy dog " * 7
    comp = client.completions.create(model=args.pool, prompt=text, max_tokens=3)
    text_counted = len(engine(args, "/tokenize", {"content": text})["tokens"])
    return {"chat_usage": whole.usage.prompt_tokens, "chat_engine": counted,
            "text_usage": comp.usage.prompt_tokens, "text_engine": text_counted,
            "bytes_over_4": (len(text) + 3) // 4}


def check_stop_on_last_token(client, args):
    """A stop string that matches on the last token max_tokens allows: `stop`, not `length`."""
    params = dict(model=args.pool, prompt="Once upon a time", max_tokens=4, seed=5)
    base = client.completions.create(logprobs=1, **params)
    last = base.choices[0].logprobs.tokens[-1]
    stopped = client.completions.create(stop=[last], **params)
    return {"last": last, "base_text": base.choices[0].text, "text": stopped.choices[0].text,
            "finish_reason": stopped.choices[0].finish_reason, "usage": stopped.usage.model_dump()}


def check_refusals(client, args):
    out = {}
    for name, call in [
        ("unknown_field", lambda: client.chat.completions.create(
            model=args.pool, messages=ASK, max_tokens=4, extra_body={"guided_json": {"type": "object"}})),
        ("not_honoured", lambda: client.completions.create(
            model=args.pool, prompt="Once", max_tokens=4, suffix="The end.")),
    ]:
        try:
            call()
            out[name] = "no error"
        except openai.BadRequestError as e:
            out[name] = {"status": e.status_code, "param": e.param, "code": e.code, "message": e.message}
    return out


def check_tgi(client, args):
    """A Pool whose engine speaks TGI's native API: raw prompts go to /generate_stream."""
    whole = client.completions.create(model=args.tgi_pool, prompt="Once upon a time", max_tokens=4, seed=3)
    try:
        client.completions.create(model=args.tgi_pool, prompt="Once", max_tokens=4, logprobs=2)
        refused = "no error"
    except openai.BadRequestError as e:
        refused = {"status": e.status_code, "param": e.param, "message": e.message}
    return {"text": whole.choices[0].text, "finish_reason": whole.choices[0].finish_reason,
            "usage": whole.usage.model_dump(), "refused": refused}


def check_native_end(client, args):
    """The native /v2 `end` event carries the engine's finish_reason and tokens_in."""
    root = args.base_url.rsplit("/v1", 1)[0]
    body = json.dumps({"pool": args.pool, "prompt": "Once upon a time", "max_tokens": 3}).encode()
    req = urllib.request.Request(root + "/v2/tasks", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        admitted = json.load(r)
    end, event = None, None
    with urllib.request.urlopen(root + admitted["events_url"], timeout=30) as r:
        for line in r:
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "end":
                end = json.loads(line[6:])
                break
    counted = len(engine(args, "/tokenize", {"content": "Once upon a time"})["tokens"])
    return {"end": end, "engine_prompt_tokens": counted}


def check_embeddings(client, args):
    """A Pool with `workload: embeddings`: the SDK's default base64 and floats agree."""
    b64 = client.embeddings.create(model=args.embed_pool, input=["hello world", "good night"])
    floats = client.embeddings.create(model=args.embed_pool, input=["hello world", "good night"],
                                      encoding_format="float")
    out = {"count": len(b64.data), "dims": [len(d.embedding) for d in b64.data],
           "model": b64.model, "usage": b64.usage.model_dump(),
           "max_diff": max(abs(a - b) for x, y in zip(b64.data, floats.data)
                           for a, b in zip(x.embedding, y.embedding)),
           "norm": sum(v * v for v in floats.data[0].embedding) ** 0.5}
    for name, call in [
        ("chat_on_embed", lambda: client.chat.completions.create(
            model=args.embed_pool, messages=ASK, max_tokens=4)),
        ("embed_on_chat", lambda: client.embeddings.create(model=args.pool, input="x")),
    ]:
        try:
            call()
            out[name] = "no error"
        except openai.BadRequestError as e:
            out[name] = {"status": e.status_code, "param": e.param, "message": e.message}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--engine-url", required=True)
    p.add_argument("--tgi-pool", required=True, help="a pool whose engine has `api: tgi`")
    p.add_argument("--embed-pool", required=True, help="a pool with `workload: embeddings`")
    args = p.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="unused", max_retries=0, timeout=30)
    report = {}
    for name, check in [("tool_calls", check_tool_calls), ("agent_loop", check_agent_loop),
                        ("fields", check_fields_reach_engine), ("logprobs", check_logprobs_and_reasoning),
                        ("prompt_tokens", check_prompt_tokens), ("refusals", check_refusals),
                        ("tgi", check_tgi), ("native_end", check_native_end),
                        ("embeddings", check_embeddings), ("stop_on_last", check_stop_on_last_token)]:
        report[name] = check(client, args)
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
