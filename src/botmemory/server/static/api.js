// Talking to the server: one fetch wrapper, the conversation picked in the form, the status line.
"use strict";

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return $("token").value.trim();
}

export function authHeaders(withToken = true) {
  const headers = { Accept: "application/json" };
  if (withToken && token()) headers.Authorization = `Bearer ${token()}`;
  return headers;
}

export async function api(method, path, body, { withToken = true } = {}) {
  const headers = authHeaders(withToken);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data && data.message ? data.message : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

// The conversation last applied (Apply, or another bot chosen): what the page shows and
// acts on. Typing in the form changes nothing until it is applied.
const applied = { bot: "", user: "", channel: "" };

export function apply() {
  applied.bot = $("bot").value;
  applied.user = $("user").value.trim();
  applied.channel = $("channel").value.trim();
}

export function who() {
  return { ...applied };
}

export function userPath(suffix, { bot, user, channel } = who()) {
  if (unreachable(user)) throw new ApiError(0, unreachableText("user id", user));
  return `/api/v1/bots/${enc(bot)}/users/${enc(user)}${suffix}?channel=${enc(channel)}`;
}

// A browser resolves a URL path segment "." or ".." away, even written %2E: an id or a
// key that is one of them cannot be sent from this page (the API and the CLI take them).
export function unreachable(text) {
  return text === "." || text === "..";
}

export function unreachableText(what, text) {
  return `The ${what} "${text}" cannot be used from a browser, which resolves "." and ".." in a URL away: use the CLI or the API (curl --path-as-is).`;
}

export function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

// Server time: expiries count down from the server's clock (`now` of a view), not the browser's.
const clock = { offset: 0 };

export function setServerNow(now) {
  clock.offset = now - performance.now() / 1000;
}

export function serverNow() {
  return clock.offset + performance.now() / 1000;
}

export function countdown(expiresAt) {
  if (expiresAt === null || expiresAt === undefined) return { text: "never", expired: false };
  let left = Math.floor(expiresAt - serverNow());
  if (left <= 0) return { text: "expired (the janitor removes it)", expired: true };
  const parts = [];
  for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]]) {
    if (left >= size || (unit === "s" && !parts.length)) {
      parts.push(`${Math.floor(left / size)}${unit}`);
      left %= size;
    }
  }
  return { text: `in ${parts.slice(0, 2).join(" ")}`, expired: false };
}

// A JSON value in a cell: short ones whole, long ones folded in a <details> to expand.
const SHORT = 160;

export function valueCell(cell, value, key, expanded) {
  const text = JSON.stringify(value);
  cell.replaceChildren();
  if (text.length <= SHORT) {
    cell.textContent = text;
    return;
  }
  const details = document.createElement("details");
  details.open = expanded.has(key);
  details.addEventListener("toggle", () => {
    if (details.open) expanded.add(key);
    else expanded.delete(key);
  });
  const summary = document.createElement("summary");
  summary.textContent = `${text.slice(0, SHORT)}… (${text.length} characters: show all)`;
  const full = document.createElement("pre");
  full.textContent = JSON.stringify(value, null, 2);
  details.append(summary, full);
  cell.append(details);
}

export function parseJson(text) {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, message: `not JSON: ${error.message} (write strings in "quotes")` };
  }
}
