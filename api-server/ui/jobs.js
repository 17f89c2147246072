// Recent jobs from the records API (`/v2/artifacts?kind=job`): the list, one record's
// transcript, and a replay with its verdict. Records are written by the daemon's writer
// thread just after a task ends, so after the playground's own task the list is re-read until
// that task's record is there (a short, bounded backoff); it is also re-read every few seconds
// while the tab is visible (the live feed says nothing about tasks). A daemon without the
// records API (404) or with records off (503) says so.

import { ApiFailure, AuthError, describe, getJson, postJson } from "./api.js";
import { badge, errorBox, h, note, replace, table, time } from "./dom.js";

const LIMIT = 20;
/** How often the list is re-read while the tab is visible (other clients' jobs show up). */
const POLL_MS = 5000;
/** Pauses while waiting for a just-ended task's record (about 10 s in all). */
const AWAIT_STEPS_MS = [100, 200, 300, 500, 800, 1000, 1000, 2000, 2000, 2000];

const VERDICT_WORDS = {
  identical: "identical — the same tokens and finish reason",
  different: "different — the replay ran and parted from the record",
  notReproducible: "not reproducible — the Pool no longer serves what the record ran on",
};

export class Jobs {
  constructor(list, detail, onAuth) {
    this.list = list;
    this.detail = detail;
    this.onAuth = onAuth;
    this.available = true;
    this.shown = null;
    this.timer = null;
  }

  /** Re-reads the list; answers the task ids it shows (empty when it could not). */
  async refresh() {
    try {
      const page = await getJson(`/v2/artifacts?kind=job&limit=${LIMIT}`);
      this.available = true;
      const items = page.items || [];
      const key = JSON.stringify(items.map((i) => [i.id, i.job]));
      if (key === this.shown) return items.map((i) => i.job);
      this.shown = key;
      if (items.length === 0) {
        replace(this.list, note("No job records yet: submit a task (the Playground below) and it appears here."));
        return [];
      }
      replace(this.list, table(["When", "Job", "Pool", "Model", "State", "Tokens", "Finish", "Actions"], items.map((i) => this.row(i))));
      return items.map((i) => i.job);
    } catch (e) {
      this.shown = null;
      this.fail(e, this.list);
      return [];
    }
  }

  row(item) {
    const s = item.summary || {};
    const key = item.job || item.id;
    return h(
      "tr",
      { "data-job": key, "data-artifact": item.id },
      h("td", {}, item.createdAt ? time(item.createdAt) : "—"),
      h("th", { scope: "row", class: "mono", title: item.id }, String(key)),
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
  }

  /** After a task this page ran ends: refresh until its record is listed (or give up quietly). */
  async awaitJob(taskId) {
    for (const pause of [0, ...AWAIT_STEPS_MS]) {
      if (pause) await new Promise((resolve) => setTimeout(resolve, pause));
      const jobs = await this.refresh();
      if (!this.available || jobs.includes(taskId)) return;
    }
  }

  /** Re-reads the list now and every POLL_MS while the tab is visible, until `stop`. */
  start() {
    this.stop();
    this.refresh();
    this.timer = setInterval(() => {
      if (!document.hidden && this.available) this.refresh();
    }, POLL_MS);
  }

  /** Stops polling; the next refresh redraws (the section may have been overwritten). */
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.shown = null;
  }

  fail(e, where) {
    if (e instanceof AuthError) return this.onAuth(e);
    if (e instanceof ApiFailure && where === this.list && (e.status === 404 || e.status === 503)) {
      this.available = false;
      const why = e.status === 404 ? "it has no /v2/artifacts route" : "records are off (`records.enabled: false`)";
      replace(where, note(`Job records are not available on this daemon: ${why}.`));
      return;
    }
    if (e instanceof ApiFailure && e.status === 403) {
      replace(where, errorBox("That record is another identity's job: only its submitter may read or replay it."));
      return;
    }
    replace(where, errorBox(describe(e)));
  }

  async show(id) {
    replace(this.detail, note(`Loading record ${id}…`));
    try {
      const record = await getJson(`/v2/artifacts/${encodeURIComponent(id)}`);
      const transcript = record.transcript || [];
      // `data` is the SSE data line exactly as the client read it: a JSON string.
      const text = transcript
        .filter((f) => f.event === "token")
        .map((f) => (typeof f.data === "string" ? safeJson(f.data) : f.data))
        .map((d) => (d && typeof d.t === "string" ? d.t : ""))
        .join("");
      const frames = transcript.map((f) =>
        h("li", {}, h("span", { class: "mono" }, f.event || "message"), " ", typeof f.data === "string" ? f.data : JSON.stringify(f.data)),
      );
      const engine = record.engine ? `${record.engine.name} ${record.engine.version}` : "—";
      const seed = record.request && record.request.seed != null ? String(record.request.seed) : "none (replay may differ)";
      replace(
        this.detail,
        h("h3", {}, "Record ", h("span", { class: "mono", "data-task": record.taskId || "" }, record.taskId || id)),
        h(
          "p",
          { class: "muted" },
          `Pool ${record.pool || "—"} · replica ${record.replica || "—"} · engine ${engine} · model ${(record.model && record.model.name) || "—"}`,
          ` · seed ${seed} · ${record.state || "?"}, ${record.tokensOut ?? "?"} tokens, finish ${record.finishReason || "—"}`,
        ),
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
      const parts = [
        h("p", { class: "verdict-" + v.verdict, "data-verdict": v.verdict, role: "status" }, "Verdict: ", h("strong", {}, VERDICT_WORDS[v.verdict] || String(v.verdict))),
      ];
      if (v.replayTaskId) parts.push(h("p", { class: "muted" }, "Replay task: ", h("span", { class: "mono" }, v.replayTaskId)));
      if (v.firstDifference) {
        const d = v.firstDifference;
        parts.push(h("p", {}, `First difference at token ${d.index}: recorded `, h("code", {}, String(d.recorded)), ", replayed ", h("code", {}, String(d.replayed))));
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
