// The read-only sections drawn from the snapshot (Pools, Replicas, GPUs), the pools' queue
// health (Queues) and one event of the live feed. Each function returns nodes; app.js puts
// them in place.

import { badge, bar, duration, gib, h, note, table, time } from "./dom.js";

const PHASE_TONE = { Ready: "ok", Starting: "warn", Draining: "warn", Terminating: "warn", Unhealthy: "bad", BackingOff: "bad", CircuitOpen: "bad" };

/** The Pool objects of a snapshot. */
export function poolsOf(snapshot) {
  return (snapshot.objects || []).filter((o) => o.object && o.object.kind === "Pool");
}

function conditions(status) {
  const list = status.conditions || [];
  if (list.length === 0) return note("none yet");
  return list.map((c) => {
    const tone = c.type === "Degraded" ? (c.status ? "bad" : "") : c.status ? "ok" : "warn";
    return h(
      "div",
      { class: "cond" },
      badge(`${c.type}=${c.status ? "True" : "False"}`, tone),
      h("span", { class: "mono" }, c.reason),
      c.message ? h("span", { class: "muted" }, " — " + c.message) : null,
    );
  });
}

function rollout(status) {
  const r = status.rollout;
  if (!r) return h("span", { class: "muted" }, "—");
  const tone = r.phase === "Complete" ? "ok" : r.phase === "RolledBack" ? "bad" : "warn";
  const models = r.fromModel || r.toModel ? ` (${r.fromModel || "?"} → ${r.toModel || "?"})` : "";
  return h(
    "div",
    {},
    badge(r.phase, tone),
    h("span", { class: "mono" }, `${r.fromRevision.slice(0, 8)} → ${r.toRevision.slice(0, 8)}`),
    models,
    r.message ? h("div", { class: "muted" }, r.message) : null,
  );
}

function scaling(status) {
  const s = status.scaling;
  if (!s) return h("span", { class: "muted" }, "fixed size");
  return h(
    "div",
    {},
    s.asleep ? badge("asleep", "warn") : badge("awake", "ok"),
    `${s.replicas} of ${s.minReplicas}–${s.maxReplicas}`,
    s.coldStartMs ? h("div", { class: "muted" }, `cold start ~${duration(s.coldStartMs)}`) : null,
  );
}

/** The Pools table. */
export function pools(snapshot) {
  const list = poolsOf(snapshot);
  if (list.length === 0) return [note(snapshot.synced ? "No Pool is declared. Apply one with `orchctl apply -f`." : "The controller has not finished its first scan yet.")];
  const serving = new Map((snapshot.serving || []).map((s) => [s.pool, s]));
  const rows = list.map((view) => {
    const name = view.object.name;
    const status = view.status || {};
    const counts = status.replicas || { desired: 0, ready: 0 };
    const serve = serving.get(name);
    const spec = (view.manifest && view.manifest.spec) || {};
    return h(
      "tr",
      { "data-pool": name },
      h("th", { scope: "row" }, name),
      h("td", {}, serve ? serve.model : spec.model || "—", h("div", { class: "muted" }, serve ? serve.engine : spec.engine || "")),
      h("td", { class: "ready" }, `${counts.ready}/${counts.desired}`, bar(counts.ready, counts.desired, `${name} ready replicas`)),
      h("td", {}, conditions(status)),
      h("td", {}, rollout(status)),
      h("td", {}, scaling(status)),
      h(
        "td",
        {},
        status.lastError ? h("div", { class: "error" }, status.lastError.message) : h("span", { class: "muted" }, "—"),
        serve && serve.blocked ? h("div", { class: "error" }, "Blocked: " + (serve.blocked.message || JSON.stringify(serve.blocked))) : null,
      ),
    );
  });
  return [table(["Pool", "Model / engine", "Ready", "Conditions", "Rollout", "Scaling", "Last error"], rows)];
}

/**
 * The Replicas table. `logs` maps replica id → {lines} or {error} for the open log panels;
 * `onLogs(id)` toggles one.
 */
export function replicas(snapshot, logs, onLogs) {
  const list = snapshot.replicas || [];
  if (list.length === 0) return [note("No replicas.")];
  const rows = [];
  for (const r of list) {
    const open = logs.has(r.id);
    const kv = typeof r.kvCacheUsageRatio === "number" ? `${(100 * r.kvCacheUsageRatio).toFixed(0)}%` : null;
    rows.push(
      h(
        "tr",
        { "data-replica": r.id, "data-phase": r.phase },
        h("th", { scope: "row", class: "mono" }, r.id),
        h("td", { class: "phase" }, badge(r.phase, PHASE_TONE[r.phase])),
        h("td", {}, (r.gpus || []).length ? (r.gpus || []).join(", ") + (r.gpusSimulated ? " (simulated)" : "") : "—"),
        h("td", { class: "mono" }, r.endpoint || "—"),
        h("td", { class: "mono" }, r.containerId ? r.containerId.slice(0, 12) : "—"),
        h("td", {}, String(r.restarts || 0)),
        h("td", {}, r.readySince ? time(r.readySince) : "—"),
        h("td", {}, kv || "—"),
        h(
          "td",
          {},
          h(
            "button",
            { type: "button", "data-key": "logs-" + r.id, "aria-expanded": String(open), onclick: () => onLogs(r.id) },
            open ? "Hide logs" : "Logs",
          ),
        ),
      ),
    );
    if (open) {
      const entry = logs.get(r.id);
      const body = entry.error
        ? h("p", { class: "error", role: "alert" }, entry.error)
        : entry.lines
          ? h("pre", { class: "logs", "aria-label": `log tail of ${r.id}` }, entry.lines.length ? entry.lines.join("\n") : "(the container wrote nothing yet)")
          : note("Loading logs…");
      rows.push(h("tr", { class: "logs-row" }, h("td", { colSpan: 9 }, body)));
    }
  }
  return [table(["Replica", "Phase", "GPUs", "Endpoint", "Container", "Restarts", "Ready since", "KV cache", "Logs"], rows)];
}

/** The GPUs, with VRAM bars; a simulated inventory says so in words. */
export function gpus(snapshot) {
  const list = snapshot.gpus || [];
  const out = [];
  if (snapshot.gpusSimulated) out.push(h("p", { class: "badge warn", "data-simulated": "true" }, "Simulated GPU inventory (from config.yaml gpus.simulate): no real GPU is used"));
  if (list.length === 0) {
    out.push(note(snapshot.gpuSource === "none"
      ? "No GPUs: config gpus: none (only Pools on external Engines run on this daemon)."
      : "No GPU in the inventory."));
    return out;
  }
  const rows = list.map((g) =>
    h(
      "tr",
      { "data-gpu": g.index },
      h("th", { scope: "row" }, String(g.index)),
      h("td", {}, g.name, g.simulated ? [" ", badge("simulated", "warn")] : null),
      h("td", {}, bar(g.usedBytes, g.totalBytes, `GPU ${g.index} VRAM used`, 90), `${gib(g.usedBytes)} / ${gib(g.totalBytes)}`),
      h("td", {}, typeof g.utilizationPct === "number" ? [bar(g.utilizationPct, 100, `GPU ${g.index} utilization`, 90), `${g.utilizationPct}%`] : "—"),
      h("td", {}, (g.errors || []).map((e) => h("div", { class: "error" }, e))),
    ),
  );
  out.push(table(["#", "Name", "VRAM", "Utilization", "Errors"], rows));
  return out;
}

/** Queue depth and predicted wait per Pool, from `/v2/pools/{name}/health`; errors per Pool. */
export function queues(healths) {
  if (healths.length === 0) return [note("No Pool is declared.")];
  const rows = healths.map(({ pool, health, error }) => {
    if (error) return h("tr", { "data-pool": pool }, h("th", { scope: "row" }, pool), h("td", { colSpan: 5 }, h("span", { class: "error" }, error)));
    return h(
      "tr",
      { "data-pool": pool },
      h("th", { scope: "row" }, pool, health.draining ? [" ", badge("draining", "warn")] : null),
      h("td", { class: "depth" }, String(health.queued)),
      h("td", {}, `${health.queuedInteractive ?? "—"} / ${health.queuedBatch ?? "—"}`),
      h("td", {}, `${health.inFlight} (${health.slotsBusy ?? "?"} of ${health.slotsTotal ?? "?"} slots)`),
      h("td", {}, health.predictedWaitMs === undefined ? h("span", { class: "muted", title: "no task has been submitted to this Pool yet" }, "no estimate yet") : duration(health.predictedWaitMs)),
    );
  });
  return [table(["Pool", "Queued", "Interactive / batch", "Running", "Predicted wait"], rows)];
}

/** One event of the feed. */
export function eventItem(e) {
  const object = e.object ? `${e.object.kind.toLowerCase()}/${e.object.name}` : "daemon";
  return h(
    "li",
    { class: e.type, "data-reason": e.reason, "data-replica": e.replica || "" },
    time(e.ts),
    " ",
    badge(e.reason, e.type === "Warning" ? "bad" : ""),
    h("span", { class: "mono" }, object + (e.replica ? ` (${e.replica})` : "")),
    " ",
    e.message,
  );
}
