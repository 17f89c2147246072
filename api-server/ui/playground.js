// The playground: submits `POST /v2/tasks` and streams `/v2/tasks/{id}/events` into the page,
// token by token; Cancel posts `/v2/tasks/{id}/cancel`. The output element carries the task id,
// its state and the token count as data attributes (what the browser test reads). The seed
// field starts at a fixed value so that a playground job replays identically.

import { AuthError, describe, events, postJson } from "./api.js";
import { duration, h, replace } from "./dom.js";

export class Playground {
  constructor(onAuth, onEnded) {
    this.form = document.getElementById("pg-form");
    this.pool = document.getElementById("pg-pool");
    this.submit = document.getElementById("pg-submit");
    this.cancelButton = document.getElementById("pg-cancel");
    this.status = document.getElementById("pg-status");
    this.out = document.getElementById("pg-out");
    this.onAuth = onAuth;
    this.onEnded = onEnded;
    this.task = null;
    this.abort = null;
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.run();
    });
    this.cancelButton.addEventListener("click", () => this.cancel());
  }

  /** Keeps the Pool choices in step with the snapshot, keeping the current choice. */
  setPools(names) {
    const current = this.pool.value;
    const same = names.length === this.pool.options.length && names.every((n, i) => this.pool.options[i].value === n);
    if (same) return;
    replace(this.pool, names.map((n) => h("option", { value: n }, n)));
    if (names.includes(current)) this.pool.value = current;
  }

  say(text) {
    this.status.textContent = text;
  }

  setState(state) {
    this.out.dataset.state = state;
    const busy = state === "submitting" || state === "queued" || state === "streaming";
    this.submit.disabled = busy;
    this.cancelButton.disabled = !busy || !this.task;
  }

  async run() {
    const data = new FormData(this.form);
    const body = {
      pool: String(data.get("pool") || ""),
      prompt: String(data.get("prompt") || ""),
      max_tokens: Number(data.get("max_tokens")),
      priority: String(data.get("priority") || "interactive"),
    };
    const seed = String(data.get("seed") || "").trim();
    if (seed !== "") body.seed = Number(seed);
    if (!body.pool) {
      this.say("Choose a Pool first (none is declared yet).");
      return;
    }
    this.task = null;
    this.out.textContent = "";
    this.out.dataset.tokens = "0";
    delete this.out.dataset.taskId;
    this.setState("submitting");
    this.say("Submitting…");
    let tokens = 0;
    try {
      const admitted = await postJson("/v2/tasks", body);
      this.task = admitted.task_id;
      this.out.dataset.taskId = this.task;
      this.setState("queued");
      this.say(`Task ${this.task}: queue position ${admitted.queue_position}, predicted start in ~${duration(admitted.predicted_start_ms)}.`);
      this.abort = new AbortController();
      let ended = false;
      for await (const frame of events(`/v2/tasks/${encodeURIComponent(this.task)}/events`, this.abort.signal)) {
        if (frame.event === "started") {
          this.setState("streaming");
          this.say(`Task ${this.task}: streaming (queue position ${frame.data.queue_position}).`);
        } else if (frame.event === "token") {
          tokens += 1;
          this.out.append(document.createTextNode(frame.data.t));
          this.out.dataset.tokens = String(tokens);
        } else if (frame.event === "end") {
          ended = true;
          this.setState("done");
          this.say(`Done: ${frame.data.tokens_out} tokens, finish reason ${frame.data.finish_reason}, decode ${duration(frame.data.decode_time_ms)}.`);
        } else if (frame.event === "error") {
          ended = true;
          this.setState("failed");
          this.say(`Failed: ${frame.data.code}: ${frame.data.message}`);
        }
      }
      if (!ended) {
        this.setState("canceled");
        this.say(`Task ${this.task} ended without a result (canceled, or the stream closed) after ${tokens} tokens.`);
      }
    } catch (e) {
      if (e.name === "AbortError") {
        this.setState("canceled");
        this.say(`Canceled after ${tokens} tokens.`);
      } else if (e instanceof AuthError) {
        this.setState("failed");
        this.onAuth(e);
      } else {
        this.setState("failed");
        this.say(describe(e));
      }
    } finally {
      this.abort = null;
      this.onEnded(this.task);
    }
  }

  async cancel() {
    if (!this.task) return;
    const task = this.task;
    this.cancelButton.disabled = true;
    this.say(`Canceling ${task}…`);
    try {
      await postJson(`/v2/tasks/${encodeURIComponent(task)}/cancel`, {});
    } catch (e) {
      this.say(describe(e));
    }
    if (this.abort) this.abort.abort();
  }
}
