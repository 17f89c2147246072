// Recent jobs from the records API (`/v2/artifacts?kind=job`): the list, one record's
// transcript, and a replay with its verdict. A daemon without the records API (404) says so.

import { ApiFailure, AuthError, describe, getJson, postJson } from "./api.js";
import { badge, errorBox, h, note, replace, table, time } from "./dom.js";

const LIMIT = 20;

export class Jobs {
  constructor(list, detail, onAuth) {
    this.list = list;
    this.detail = detail;
    this.onAuth = onAuth;
    this.available = true;
  }

  async refresh() {
    try {
      const page = await getJson(`/v2/artifacts?kind=job&limit=${LIMIT}`);
      this.available = true;
      const items = page.items || [];
      if (items.length === 0) {
        replace(this.list, note("No job records yet: submit a task (the Playground below) and it appears here."));
        return;
      }
      const rows = items.map((item) => {
        const s = item.summary || {};
        const key = item.job || item.id;
        return h(
          "tr",
          { "data-job": key },
          h("td", {}, item.createdAt ? time(item.createdAt) : "—"),
          h("th", { scope: "row", class: "mono" }, String(key).slice(0, 18)),
          h("td", {}, item.pool || "—"),
          h("td", {}, s.model || "—"),
          h("td", {}, s.state ? badge(s.state, s.state === "done" ? "ok" : s.state === "failed" ? "bad" : "") : "—"),
          h("td", {}, s.tokensOut ?? "—"),
          h("td", {}, s.finishReason || "—"),
          h(
            "td",
            {},
            h("button", { type: "button", "data-key": "view-" + item.id, onclick: () => this.show(item.id) }, "Transcript"),
            " ",
            h("button", { type: "button", "data-key": "replay-" + item.id, onclick: (ev) => this.replay(item.id, ev.currentTarget) }, "Replay"),
          ),
        );
      });
      replace(this.list, table(["When", "Job", "Pool", "Model", "State", "Tokens", "Finish", "Actions"], rows));
    } catch (e) {
      this.fail(e, this.list);
    }
  }

  fail(e, where) {
    if (e instanceof AuthError) return this.onAuth(e);
    if (e instanceof ApiFailure && e.status === 404 && where === this.list) {
      this.available = false;
      replace(where, note("Records are not available on this daemon (it has no /v2/artifacts route)."));
      return;
    }
    replace(where, errorBox(describe(e)));
  }

  async show(id) {
    replace(this.detail, note(`Loading record ${id}…`));
    try {
      const record = await getJson(`/v2/artifacts/${encodeURIComponent(id)}`);
      const transcript = record.transcript || [];
      const text = transcript
        .filter((f) => f.event === "token")
        .map((f) => (typeof f.data === "string" ? safeJson(f.data) : f.data))
        .map((d) => (d && typeof d.t === "string" ? d.t : ""))
        .join("");
      const frames = transcript.map((f) =>
        h("li", {}, h("span", { class: "mono" }, f.event || "message"), " ", typeof f.data === "string" ? f.data : JSON.stringify(f.data)),
      );
      replace(
        this.detail,
        h("h3", {}, "Record ", h("span", { class: "mono" }, record.job || id)),
        h("pre", { class: "out", "aria-label": "recorded text" }, text || "(no tokens)"),
        h("details", {}, h("summary", {}, `${transcript.length} SSE frames as the client read them`), h("ol", { class: "feed" }, frames)),
      );
    } catch (e) {
      this.fail(e, this.detail);
    }
  }

  async replay(id, button) {
    if (button) button.disabled = true;
    replace(this.detail, h("p", { role: "status" }, `Replaying ${id}… (resubmitted to a replica with the same engine and model)`));
    try {
      const v = await postJson(`/v2/artifacts/${encodeURIComponent(id)}/replay`, {});
      const parts = [h("p", { class: "verdict-" + v.verdict, "data-verdict": v.verdict }, "Verdict: ", h("strong", {}, v.verdict))];
      if (v.replayTaskId) parts.push(h("p", { class: "muted" }, "Replay task: ", h("span", { class: "mono" }, v.replayTaskId)));
      if (v.firstDifference) {
        const d = v.firstDifference;
        parts.push(h("p", {}, `First difference at frame ${d.index}: recorded `, h("code", {}, JSON.stringify(d.recorded)), ", replayed ", h("code", {}, JSON.stringify(d.replayed))));
      }
      for (const c of v.changed || []) {
        parts.push(h("p", {}, `Changed ${c.what}: `, h("code", {}, String(c.recorded)), " → ", h("code", {}, String(c.now))));
      }
      replace(this.detail, parts);
    } catch (e) {
      this.fail(e, this.detail);
    } finally {
      if (button) button.disabled = false;
    }
  }
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}
