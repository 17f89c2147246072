// Building the page from data without ever parsing data as HTML: every string goes in as a
// text node (textContent), never through innerHTML.

/**
 * An element: `attrs` are set as properties or attributes (`class`, `data-*`, `aria-*`),
 * children are nodes or strings (text), `null`/`undefined`/`false` skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "onclick") el.addEventListener("click", value);
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "title" || key === "for")
      el.setAttribute(key, String(value));
    else el[key] = value;
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces `container`'s children, keeping keyboard focus on the element with the same `data-key`. */
export function replace(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute("data-key") : null;
  container.replaceChildren();
  append(container, children);
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

/** An error, in words. */
export function errorBox(message) {
  return h("p", { class: "error", role: "alert" }, message);
}

/** A muted sentence (an empty list, a hint). */
export function note(message) {
  return h("p", { class: "muted" }, message);
}

/** A table with a header row. */
export function table(headings, rows, caption) {
  return h(
    "table",
    {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows),
  );
}

/** A small label; `tone` is ok, warn or bad. */
export function badge(text, tone, title) {
  return h("span", { class: "badge" + (tone ? " " + tone : ""), title }, text);
}

/**
 * A horizontal bar for `value` of `max`, with its numbers as text for screen readers; from
 * `hotAt` percent on (VRAM, utilization) it turns to the warning colour.
 */
export function bar(value, max, label, hotAt = Infinity) {
  const pct = max > 0 ? Math.min(100, Math.max(0, (100 * value) / max)) : 0;
  const fill = h("span", {});
  fill.style.width = pct.toFixed(1) + "%";
  return h(
    "div",
    { class: "bar" + (pct >= hotAt ? " hot" : ""), role: "img", "aria-label": `${label}: ${pct.toFixed(0)}%` },
    fill,
  );
}

/** Bytes as GiB with one decimal. */
export function gib(bytes) {
  return (bytes / 1024 ** 3).toFixed(1) + " GiB";
}

/** Milliseconds as a short duration. */
export function duration(ms) {
  if (ms === undefined || ms === null) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** An RFC 3339 time as local clock time (the full value in the title). */
export function time(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return h("span", {}, ts || "");
  return h("time", { dateTime: ts, title: ts }, d.toLocaleTimeString());
}
