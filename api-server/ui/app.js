// The status page: signs in when the daemon wants a token, follows the live feed
// (`/v2/events/stream`: the snapshot on every change, and each new event), polls the Pools'
// queue health, and wires the Recent jobs (polled, and re-read when the playground's task
// ends) and Playground sections.

import { AuthError, ApiFailure, describe, events, getJson, setToken, token } from "./api.js";
import { errorBox, h, note, replace } from "./dom.js";
import { Jobs } from "./jobs.js";
import { Playground } from "./playground.js";
import * as views from "./views.js";

const EVENTS_KEPT = 200;
const QUEUE_POLL_MS = 2000;
const RETRY_MAX_MS = 10000;

const $ = (id) => document.getElementById(id);

const page = {
  snapshot: null,
  logs: new Map(),
  stream: null,
  signedOut: false,
  queueTimer: null,
};

function connection(state, text) {
  const el = $("conn");
  el.dataset.state = state;
  el.textContent = text;
}

function showAuth(message) {
  if (page.stream) page.stream.abort();
  page.stream = null;
  clearInterval(page.queueTimer);
  page.queueTimer = null;
  jobs.stop();
  $("auth").hidden = false;
  $("app").hidden = true;
  $("sign-out").hidden = !token();
  $("auth-msg").textContent = message || "";
  connection("error", "Signed out");
  $("token").focus();
}

function onAuth(error) {
  showAuth(token() ? describe(error) : "This daemon needs an API token to show its data.");
}

function renderSnapshot() {
  const s = page.snapshot;
  if (!s) return;
  $("instance").textContent = s.instance ? `· ${s.instance}` : "";
  replace($("pools-body"), views.pools(s));
  replace($("replicas-body"), views.replicas(s, page.logs, toggleLogs));
  replace($("gpus-body"), views.gpus(s));
  playground.setPools(views.poolsOf(s).map((p) => p.object.name));
}

async function toggleLogs(id) {
  if (page.logs.has(id)) {
    page.logs.delete(id);
    renderSnapshot();
    return;
  }
  page.logs.set(id, {});
  renderSnapshot();
  try {
    const tail = await getJson(`/v2/replicas/${encodeURIComponent(id)}/logs?tail=50`);
    if (page.logs.has(id)) page.logs.set(id, { lines: tail.lines || [] });
  } catch (e) {
    if (e instanceof AuthError) return onAuth(e);
    if (page.logs.has(id)) page.logs.set(id, { error: describe(e) });
  }
  renderSnapshot();
}

function addEvent(e) {
  const feed = $("events-feed");
  feed.prepend(views.eventItem(e));
  while (feed.children.length > EVENTS_KEPT) feed.lastElementChild.remove();
}

async function refreshQueues() {
  if (!page.snapshot || document.hidden) return;
  const names = views.poolsOf(page.snapshot).map((p) => p.object.name);
  const healths = await Promise.all(
    names.map(async (pool) => {
      try {
        return { pool, health: await getJson(`/v2/pools/${encodeURIComponent(pool)}/health`) };
      } catch (e) {
        if (e instanceof AuthError) throw e;
        return { pool, error: describe(e) };
      }
    }),
  );
  replace($("queues-body"), views.queues(healths));
}

function pollQueues() {
  clearInterval(page.queueTimer);
  const tick = () =>
    refreshQueues().catch((e) => (e instanceof AuthError ? onAuth(e) : replace($("queues-body"), errorBox(describe(e)))));
  tick();
  page.queueTimer = setInterval(tick, QUEUE_POLL_MS);
}

/** Follows the live feed until signed out, reconnecting with a growing pause. */
async function follow() {
  let retry = 1000;
  while (!page.signedOut) {
    const abort = new AbortController();
    page.stream = abort;
    connection(retry > 1000 ? "retrying" : "connecting", "Connecting…");
    try {
      $("events-feed").replaceChildren();
      let first = true;
      for await (const frame of events("/v2/events/stream?backlog=50", abort.signal)) {
        if (frame.event === "snapshot") {
          page.snapshot = frame.data;
          renderSnapshot();
          if (first) {
            first = false;
            retry = 1000;
            connection("live", "Live");
            $("auth").hidden = true;
            $("app").hidden = false;
            $("sign-out").hidden = !token();
            pollQueues();
            jobs.start();
          }
        } else if (frame.event === "event") {
          addEvent(frame.data);
        } else if (frame.event === "lagged") {
          $("events-note").textContent = `The feed fell behind and skipped ${frame.data.missed} event(s); \`orchctl events\` lists them all.`;
        }
      }
      if (page.stream !== abort) return;
      connection("retrying", "The daemon closed the live feed; reconnecting…");
    } catch (e) {
      if (e.name === "AbortError") return;
      if (e instanceof AuthError) return onAuth(e);
      const what = e instanceof ApiFailure ? describe(e) : `The live feed broke: ${describe(e)}`;
      connection("error", `${what} — retrying in ${Math.round(retry / 1000)} s`);
      if (!page.snapshot) {
        for (const id of ["pools-body", "replicas-body", "gpus-body", "queues-body"]) replace($(id), errorBox(what));
      }
    }
    await new Promise((resolve) => setTimeout(resolve, retry));
    retry = Math.min(RETRY_MAX_MS, retry * 2);
  }
}

function start() {
  page.signedOut = false;
  $("auth").hidden = true;
  follow();
}

const jobs = new Jobs($("jobs-body"), $("job-detail"), onAuth);
const playground = new Playground(onAuth, (task) => {
  refreshQueues().catch(() => {});
  if (task) jobs.awaitJob(task);
  else jobs.refresh();
});

$("auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  setToken(value);
  $("token").value = "";
  start();
});

$("sign-out").addEventListener("click", () => {
  setToken("");
  page.signedOut = true;
  page.snapshot = null;
  page.logs.clear();
  for (const id of ["pools-body", "replicas-body", "gpus-body", "queues-body", "jobs-body", "job-detail"]) replace($(id), note("Signed out."));
  $("events-feed").replaceChildren();
  showAuth("Signed out: the token was forgotten.");
});

$("jobs-refresh").addEventListener("click", () => jobs.refresh());
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshQueues().catch(() => {});
});
window.addEventListener("error", (ev) => {
  replace($("events-note"), h("span", { class: "error" }, `The page hit an error: ${ev.message}`));
});

start();
