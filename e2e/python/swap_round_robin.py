"""Round-robins completions across several models with the official `openai` Python SDK.

Run by e2e/tests/swap.rs against a real daemon whose Pools cannot all be resident at once: every
request may have to wake its Pool and evict another. One request at a time, in order; the SDK's
own retries are off, so every failure shows. With --retries N a request that fails with a
retriable error (429, 5xx, a dropped connection) is sent again up to N times, as a client would.
Prints one JSON report on stdout.

    python swap_round_robin.py --base-url http://127.0.0.1:PORT/v1 --models a,b,c --requests 60
"""

import argparse
import json
import time

import openai


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--models", required=True, help="comma-separated model ids")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--retries", type=int, default=0)
    args = parser.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key="unused", max_retries=0, timeout=120)
    models = args.models.split(",")
    report = {"requests": [], "failures": [], "retried": []}
    started = time.monotonic()
    for i in range(args.requests):
        model = models[i % len(models)]
        t0 = time.monotonic()
        attempt = 0
        while True:
            try:
                reply = client.completions.create(model=model, prompt="Once upon a time",
                                                  max_tokens=args.max_tokens)
                report["requests"].append({
                    "model": model,
                    "ms": round((time.monotonic() - t0) * 1000),
                    "tokens": reply.usage.completion_tokens,
                    "finish_reason": reply.choices[0].finish_reason,
                    "attempts": attempt + 1,
                })
                break
            except (openai.APIStatusError, openai.APIConnectionError) as e:
                status = getattr(e, "status_code", None)
                retriable = status is None or status == 429 or status >= 500
                if retriable and attempt < args.retries:
                    report["retried"].append({"index": i, "model": model, "status": status,
                                              "error": str(e)[:300]})
                    attempt += 1
                    time.sleep(0.2)
                    continue
                report["failures"].append({"index": i, "model": model, "status": status,
                                           "error": str(e)[:500]})
                break
    report["total_ms"] = round((time.monotonic() - started) * 1000)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
