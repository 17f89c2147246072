"""A real headless Chromium attacks llama-orchd the way a web page the user opens could.

Driven by e2e/tests/browser.rs. Pages are served by Playwright's request routing under
made-up origins (no server needed): `http://attacker.test` (any site), `http://trusted.test`
(listed in the daemon's `cors.allowedOrigins`: the positive control showing the browser does
reach the daemon), and a DNS-rebinding page, `http://rebind.test:<daemon port>`, whose name
Chromium resolves to 127.0.0.1 (`--host-resolver-rules`). Chromium's own Private Network Access
checks are switched off: the daemon must not rely on one browser's extra defence (Firefox and
Safari have none). Prints one JSON report; the Rust test asserts on it and on the daemon's state.
"""

import argparse
import json

from playwright.sync_api import sync_playwright

ATTEMPTS = r"""
async ({daemon, pool}) => {
  const out = {};
  const task = JSON.stringify({pool, prompt: "Once upon a time", max_tokens: 4});
  const manifest = JSON.stringify({files: [{name: "evil.yaml", text:
    "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: evil}\n" +
    "spec: {engine: " + pool + "-engine, model: " + pool + "-model, replicas: 1}\n"}]});
  const tries = {
    submit_text_plain_no_cors: () => fetch(daemon + "/v2/tasks",
      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: task}),
    submit_json_cors: () => fetch(daemon + "/v2/tasks",
      {method: "POST", headers: {"Content-Type": "application/json"}, body: task}),
    drain_no_cors: () => fetch(daemon + "/v2/pools/" + pool + "/drain",
      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"}),
    reload_no_cors: () => fetch(daemon + "/v2/pools/" + pool + "/reload",
      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"}),
    apply_manifest_no_cors: () => fetch(daemon + "/v2/manifests",
      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: manifest}),
    apply_manifest_cors: () => fetch(daemon + "/v2/manifests",
      {method: "POST", headers: {"Content-Type": "application/json"}, body: manifest}),
    delete_manifest_no_cors: () => fetch(daemon + "/v2/manifests/pools/" + pool,
      {method: "DELETE", mode: "no-cors"}),
    read_snapshot_cors: () => fetch(daemon + "/v2/snapshot"),
  };
  for (const [name, attempt] of Object.entries(tries)) {
    try {
      const r = await attempt();
      let body = "";
      try { body = await r.text(); } catch (e) {}
      out[name] = {status: r.status, type: r.type, body: body.slice(0, 300)};
    } catch (e) {
      out[name] = {error: String(e)};
    }
  }
  return out;
}
"""

SAME_ORIGIN = r"""
async ({pool}) => {
  const out = {};
  const task = JSON.stringify({pool, prompt: "Once upon a time", max_tokens: 4});
  const manifest = JSON.stringify({files: [{name: "evil.yaml", text:
    "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: evil}\n" +
    "spec: {engine: " + pool + "-engine, model: " + pool + "-model, replicas: 1}\n"}]});
  for (const [name, attempt] of Object.entries({
    read_snapshot: () => fetch("/v2/snapshot"),
    submit_json: () => fetch("/v2/tasks",
      {method: "POST", headers: {"Content-Type": "application/json"}, body: task}),
    apply_manifest: () => fetch("/v2/manifests",
      {method: "POST", headers: {"Content-Type": "application/json"}, body: manifest}),
  })) {
    try {
      const r = await attempt();
      out[name] = {status: r.status, body: (await r.text()).slice(0, 300)};
    } catch (e) {
      out[name] = {error: String(e)};
    }
  }
  return out;
}
"""

TRUSTED = r"""
async ({daemon, pool}) => {
  const r = await fetch(daemon + "/v2/tasks", {method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({pool, prompt: "Once upon a time", max_tokens: 4})});
  return {status: r.status, body: await r.json()};
}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--pool", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    port = a.daemon.rsplit(":", 1)[1]
    page_html = "<!doctype html><title>a page</title><p>nothing to see</p>"
    report = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=a.chromium,
            args=[
                "--no-sandbox",
                "--host-resolver-rules=MAP rebind.test 127.0.0.1",
                "--disable-features=PrivateNetworkAccessSendPreflights,"
                "PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests,"
                "LocalNetworkAccessChecks",
            ],
        )
        context = browser.new_context()
        for origin in ("http://attacker.test", "http://trusted.test"):
            context.route(origin + "/**", lambda route: route.fulfill(
                status=200, content_type="text/html", body=page_html))
        page = context.new_page()
        page.goto("http://attacker.test/")
        report["attacker"] = page.evaluate(ATTEMPTS, {"daemon": a.daemon, "pool": a.pool})

        rebound = context.new_page()
        nav = rebound.goto(f"http://rebind.test:{port}/healthz")
        report["rebinding_navigation"] = nav.status if nav else None
        report["rebinding"] = rebound.evaluate(SAME_ORIGIN, {"pool": a.pool})

        trusted = context.new_page()
        trusted.goto("http://trusted.test/")
        report["trusted"] = trusted.evaluate(TRUSTED, {"daemon": a.daemon, "pool": a.pool})
        browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
