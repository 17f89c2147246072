// Calls to the daemon's /v2 API: the bearer token (kept in this tab's sessionStorage), JSON
// errors turned into sentences, and server-sent events read with fetch() (EventSource cannot
// send an Authorization header), parsed frame by frame.

const TOKEN_KEY = "llama-orch.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The daemon wants a (different) token. */
export class AuthError extends Error {}

/** Any other refusal, with the HTTP status and the daemon's sentence. */
export class ApiFailure extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code || "";
  }
}

function headers(extra) {
  const h = { ...extra };
  const t = token();
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

async function failure(response, path) {
  let text = "";
  try { text = await response.text(); } catch (e) { /* body lost */ }
  let message = "";
  let code = "";
  try {
    const body = JSON.parse(text);
    message = body.message || (body.error && body.error.message) || "";
    code = body.code || (body.error && body.error.code) || "";
  } catch (e) { /* not JSON */ }
  if (!message) message = text.slice(0, 300) || response.statusText || "no details";
  if (response.status === 401) return new AuthError(message);
  return new ApiFailure(response.status, `${path}: HTTP ${response.status}: ${message}`, code);
}

async function send(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiFailure(0, `${path}: the daemon cannot be reached (${e.message})`);
  }
  if (!response.ok) throw await failure(response, path);
  return response;
}

/** GET `path` as JSON. */
export async function getJson(path, signal) {
  const response = await send(path, { headers: headers({ Accept: "application/json" }), signal });
  return response.json();
}

/** POST `body` as JSON (the front door wants the content type on every write). */
export async function postJson(path, body, signal) {
  const response = await send(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(body ?? {}),
    signal,
  });
  return response.json();
}

/**
 * The server-sent events of `path`, as `{event, data}` with `data` parsed as JSON when it is
 * JSON. Ends when the server ends the stream; throws on a refusal or a broken connection.
 */
export async function* events(path, signal) {
  const response = await send(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (frame) yield frame;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** One SSE frame; `null` for a comment (keep-alive). */
export function parseFrame(text) {
  let event = "message";
  const data = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  const raw = data.join("\n");
  try {
    return { event, data: JSON.parse(raw), raw };
  } catch (e) {
    return { event, data: raw, raw };
  }
}

/** A sentence for any error this module throws. */
export function describe(error) {
  if (error instanceof AuthError) return "The daemon refused the token: " + error.message;
  if (error && error.message) return error.message;
  return String(error);
}
