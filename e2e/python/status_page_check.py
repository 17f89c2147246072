"""The status page (`/ui`) in a real headless Chromium, against a real llama-orchd.

Driven by e2e/tests/ui.rs. Two modes:

- `live` (a daemon without tokens, serving the demo's Pools): the page loads with the Pools and
  the simulated GPUs; the script prints `{"step": "kill", ...}` and waits for a line on stdin
  while the Rust test kills an engine container through the runtime; then it waits (Playwright
  waits, no sleeps) for the page to show the crash without a reload; the keyboard reaches the
  playground's Submit and Enter submits; the tokens stream into the page, observed one DOM
  change at a time; the task then appears in the real Recent jobs list, its transcript shows
  the same text and its replay's verdict is shown; another client's task appears in the list
  without a click; screenshots are saved (the page, and the jobs
  section); faked records with hostile text stay text; a page on another origin cannot read
  `/v2`.
- `token` (a daemon that requires a token): the page shows the token form and no data; after
  the token is typed in, the Pools appear; "Sign out" brings the form back.

Prints one JSON report as its last stdout line; the Rust test asserts on it.
"""

import argparse
import json
import sys

from playwright.sync_api import sync_playwright

WAIT_MS = 60_000

CROSS_ORIGIN = r"""
async (daemon) => {
  try {
    const r = await fetch(daemon + "/v2/snapshot");
    return {status: r.status, body: (await r.text()).slice(0, 200)};
  } catch (e) {
    return {error: String(e)};
  }
}
"""

# Records the token count each time the output changes, from before the submit on.
OBSERVE = r"""
() => {
  const out = document.getElementById("pg-out");
  window.__counts = [];
  new MutationObserver(() => {
    const n = Number(out.dataset.tokens || "0");
    const seen = window.__counts;
    if (seen.length === 0 || seen[seen.length - 1] !== n) seen.push(n);
  }).observe(out, {childList: true, characterData: true, subtree: true, attributes: true});
}
"""


def emit(obj):
    print(json.dumps(obj), flush=True)


def replica_rows(page):
    return page.eval_on_selector_all(
        "#replicas-body tr[data-replica]",
        "rows => rows.map(r => ({id: r.dataset.replica, phase: r.dataset.phase, "
        "container: r.children[4].textContent}))",
    )


def live(page, args, report):
    response = page.goto(args.daemon + "/ui")
    report["status"] = response.status
    # Keyboard: the first Tab stop of a fresh page is the skip link.
    page.keyboard.press("Tab")
    report["first_tab"] = page.evaluate("document.activeElement.className")
    report["headers"] = {k: v for k, v in response.headers.items() if k in (
        "content-security-policy", "x-content-type-options", "content-type", "cache-control", "etag")}
    # The Pools and the simulated GPUs, from the live feed.
    page.wait_for_selector(f'#pools-body tr[data-pool="{args.pool}"]', timeout=WAIT_MS)
    page.wait_for_function(
        "pool => { const r = document.querySelector(`#pools-body tr[data-pool='${pool}'] td.ready`);"
        " return r && /^2\\/2/.test(r.textContent); }",
        arg=args.pool, timeout=WAIT_MS)
    page.wait_for_selector('#gpus-body [data-simulated="true"]', timeout=WAIT_MS)
    report["pools"] = page.eval_on_selector_all("#pools-body tr[data-pool]", "rs => rs.map(r => r.dataset.pool)")
    report["pool_row"] = page.text_content(f'#pools-body tr[data-pool="{args.pool}"]')
    report["gpus"] = page.eval_on_selector_all("#gpus-body tr[data-gpu]", "rs => rs.map(r => r.textContent)")
    report["gpu_note"] = page.text_content('#gpus-body [data-simulated="true"]')
    page.wait_for_selector(f'#queues-body tr[data-pool="{args.pool}"]', timeout=WAIT_MS)
    report["queue_row"] = page.text_content(f'#queues-body tr[data-pool="{args.pool}"]')
    report["conn"] = page.text_content("#conn")
    before = replica_rows(page)
    report["replicas_before"] = before

    # The logs toggle shows the replica's log tail.
    first = before[0]["id"]
    page.click(f'button[data-key="logs-{first}"]')
    page.wait_for_selector(f'pre[aria-label="log tail of {first}"]', timeout=WAIT_MS)
    report["logs_shown"] = True
    page.click(f'button[data-key="logs-{first}"]')

    # The test kills an engine container; the page must show it without a reload.
    page.evaluate("window.__noReload = 'still here'")
    emit({"step": "kill", "replicas": before})
    line = sys.stdin.readline().strip()
    report["killed"] = line
    page.wait_for_function(
        "([id, container]) => {"
        " const warned = [...document.querySelectorAll('#events-feed li.Warning')]"
        "   .some(li => li.dataset.replica === id);"
        " const row = document.querySelector(`#replicas-body tr[data-replica='${id}']`);"
        " const moved = row && (row.dataset.phase !== 'Ready' || row.children[4].textContent !== container);"
        " return warned && moved; }",
        arg=[args.victim, next(r["container"] for r in before if r["id"] == args.victim)],
        timeout=WAIT_MS)
    report["no_reload"] = page.evaluate("window.__noReload")
    report["replicas_after"] = replica_rows(page)
    report["warnings"] = page.eval_on_selector_all(
        "#events-feed li.Warning", "ls => ls.map(l => ({reason: l.dataset.reason, replica: l.dataset.replica, text: l.textContent}))")

    # Keyboard: Tab from the prompt reaches Submit; Enter submits.
    page.select_option("#pg-pool", args.pool)
    page.fill("#pg-max", str(args.max_tokens))
    page.fill("#pg-seed", str(args.seed))
    page.fill("#pg-prompt", args.prompt)
    page.focus("#pg-prompt")
    tabs = 0
    while page.evaluate("document.activeElement.id") != "pg-submit" and tabs < 10:
        page.keyboard.press("Tab")
        tabs += 1
    report["tabs_to_submit"] = tabs
    report["submit_focused"] = page.evaluate("document.activeElement.id") == "pg-submit"
    page.evaluate(OBSERVE)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => ['done', 'failed', 'canceled'].includes(document.getElementById('pg-out').dataset.state)",
        timeout=WAIT_MS)
    out = page.query_selector("#pg-out")
    report["playground"] = {
        "state": out.get_attribute("data-state"),
        "task_id": out.get_attribute("data-task-id"),
        "tokens": int(out.get_attribute("data-tokens") or "0"),
        "text": out.text_content(),
        "counts": page.evaluate("window.__counts"),
        "status": page.text_content("#pg-status"),
    }
    real_job(page, args, report)
    page.screenshot(path=args.screenshot, full_page=True)
    report["screenshot"] = args.screenshot
    faked_records(page, report)


def real_job(page, args, report):
    """The playground's task in the real Recent jobs list: the page refreshes the list itself
    once the record is written (no click, no sleep); its transcript and its replay's verdict."""
    task_id = report["playground"]["task_id"]
    row = f'#jobs-body tr[data-job="{task_id}"]'
    page.wait_for_selector(row, timeout=WAIT_MS)
    job = {"row": page.text_content(row), "artifact": page.get_attribute(row, "data-artifact")}
    page.click(f'{row} button:text("Transcript")')
    page.wait_for_selector(f'#job-detail [data-task="{task_id}"]', timeout=WAIT_MS)
    job["text"] = page.text_content('#job-detail pre[aria-label="recorded text"]')
    job["detail"] = page.text_content("#job-detail p.muted")
    page.click(f'{row} button:text("Replay")')
    page.wait_for_selector("#job-detail [data-verdict]", timeout=WAIT_MS)
    job["verdict"] = page.get_attribute("#job-detail [data-verdict]", "data-verdict")
    job["verdict_text"] = page.text_content("#job-detail")
    # Another client's task (through Playwright's own HTTP client, not the page) shows up in
    # the list without a click: the page polls it.
    admitted = page.context.request.post(args.daemon + "/v2/tasks", data={
        "pool": args.pool, "prompt": "another client", "max_tokens": 3, "seed": args.seed}).json()
    other = admitted["task_id"]
    events = page.context.request.get(f"{args.daemon}/v2/tasks/{other}/events", timeout=WAIT_MS).text()
    job["other_ended"] = "event: end" in events
    page.wait_for_selector(f'#jobs-body tr[data-job="{other}"]', timeout=WAIT_MS)
    job["other"] = other
    path = args.screenshot.replace(".png", "-jobs.png")
    page.locator("#jobs").screenshot(path=path)
    job["screenshot"] = path
    report["jobs"] = page.text_content("#jobs-body")
    report["real_job"] = job


HOSTILE = '<img src=x onerror="window.__xss=1">'


def faked_records(page, report):
    """Recent jobs with hostile text in every field the records API carries, answered by
    Playwright's routing in the API's shapes: the list, a transcript (`data` is the SSE data
    line as a string), a replay verdict. The hostile text must appear as text, never markup."""
    job = "task-recorded-0"
    item = {"id": "sha256:" + "ab" * 32, "kind": "job", "job": job, "pool": "chat",
            "createdAt": "2026-12-03T10:00:00Z", "sizeBytes": 512,
            "summary": {"state": "done", "model": HOSTILE, "tokensOut": 2, "finishReason": "length"}}
    record = {"kind": "job", "taskId": job, "pool": "chat", "replica": HOSTILE,
              "engine": {"name": HOSTILE, "version": "1", "api": "llamacpp"},
              "model": {"name": HOSTILE, "digest": None, "file": None},
              "request": {"prompt": HOSTILE, "max_tokens": 2, "seed": 1, "priority": "interactive"},
              "state": "done", "finishReason": "length", "tokensOut": 2, "transcript": [
                  {"event": "started", "data": json.dumps({"queue_position": 0, "predicted_start_ms": 0})},
                  {"event": "token", "data": json.dumps({"t": "Hello ", "i": 0})},
                  {"event": "token", "data": json.dumps({"t": HOSTILE, "i": 1})},
                  {"event": "end", "data": json.dumps({"tokens_out": 2, "decode_time_ms": 5, "finish_reason": "length"})}]}
    verdict = {"verdict": "different", "replayTaskId": "task-replay-1",
               "firstDifference": {"index": 2, "recorded": HOSTILE, "replayed": "world"},
               "changed": [{"what": "engineVersion", "recorded": HOSTILE, "now": "2"}]}

    def answer(route):
        url, method = route.request.url, route.request.method
        if method == "POST" and url.endswith("/replay"):
            body = verdict
        elif "/v2/artifacts?" in url:
            body = {"items": [item], "next": None}
        else:
            body = record
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v2/artifacts**", answer)
    page.click("#jobs-refresh")
    page.wait_for_selector(f'#jobs-body tr[data-job="{job}"]', timeout=WAIT_MS)
    report["records_row"] = page.text_content(f'#jobs-body tr[data-job="{job}"]')
    page.click(f'#jobs-body tr[data-job="{job}"] button:text("Transcript")')
    page.wait_for_selector(f'#job-detail [data-task="{job}"]', timeout=WAIT_MS)
    report["records_text"] = page.text_content('#job-detail pre[aria-label="recorded text"]')
    page.click(f'#jobs-body tr[data-job="{job}"] button:text("Replay")')
    page.wait_for_selector("#job-detail [data-verdict]", timeout=WAIT_MS)
    report["records_verdict"] = page.text_content("#job-detail")
    report["records_injected"] = page.evaluate(
        "document.querySelectorAll('#jobs img, #job-detail img').length + (window.__xss ? 100 : 0)")
    page.unroute("**/v2/artifacts**")


def dark_wide(browser, args, report):
    """The same page at 1920x1080 in dark mode, for the record."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, color_scheme="dark")
    page = context.new_page()
    page.goto(args.daemon + "/ui")
    page.wait_for_selector(f'#pools-body tr[data-pool="{args.pool}"]', timeout=WAIT_MS)
    report["dark_background"] = page.evaluate("getComputedStyle(document.body).backgroundColor")
    path = args.screenshot.replace(".png", "-dark-1920.png")
    page.screenshot(path=path)
    report["screenshot_dark"] = path
    context.close()


def cross_origin(context, args, report):
    page = context.new_page()
    page.route("http://attacker.test/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>attacker</title>"))
    page.goto("http://attacker.test/")
    report["cross_origin"] = page.evaluate(CROSS_ORIGIN, args.daemon)
    page.close()


def token(page, args, report):
    page.goto(args.daemon + "/ui")
    page.wait_for_selector("#auth:not([hidden])", timeout=WAIT_MS)
    report["form_first"] = page.is_visible("#token") and not page.is_visible("#pools")
    report["auth_msg"] = page.text_content("#auth-msg")
    # The token field has focus: type it and press Enter.
    report["token_focused"] = page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(args.token)
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#pools-body tr[data-pool="{args.pool}"]', timeout=WAIT_MS)
    report["pools"] = page.eval_on_selector_all("#pools-body tr[data-pool]", "rs => rs.map(r => r.dataset.pool)")
    report["stored"] = page.evaluate("sessionStorage.length")
    page.click("#sign-out")
    page.wait_for_selector("#auth:not([hidden])", timeout=WAIT_MS)
    report["signed_out_form"] = page.is_visible("#token")
    report["stored_after_sign_out"] = page.evaluate("sessionStorage.length")
    page.screenshot(path=args.screenshot, full_page=True)
    report["screenshot"] = args.screenshot


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["live", "token"], required=True)
    parser.add_argument("--daemon", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--victim", default="")
    parser.add_argument("--prompt", default="Once upon a time")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    report = {"console_errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and report["console_errors"].append(m.text))
        page.on("pageerror", lambda e: report["console_errors"].append("pageerror: " + str(e)))
        try:
            if args.mode == "live":
                live(page, args, report)
                cross_origin(context, args, report)
                dark_wide(browser, args, report)
            else:
                token(page, args, report)
        except Exception as e:  # the report says where it stopped, with the page's state
            report["failed"] = f"{type(e).__name__}: {e}"
            try:
                report["page_text"] = page.inner_text("body")[:4000]
                page.screenshot(path=args.screenshot, full_page=True)
            except Exception:
                pass
        browser.close()
    emit(report)


if __name__ == "__main__":
    main()
