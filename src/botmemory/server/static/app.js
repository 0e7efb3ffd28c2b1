// The web chat and live memory inspector of botmemory. Plain JavaScript, no framework.
// Expiries count down from the server's clock (`now` of the memory view), not the browser's.
"use strict";

const SCOPES = [
  { id: "user", title: "User memory", rule: "Kept across sessions; a retention policy may expire a variable." },
  { id: "session", title: "Session memory", rule: "Until the session times out." },
  { id: "temp", title: "Temp memory", rule: "Until the flow ends or the dialog times out." },
  { id: "bot", title: "Bot memory", rule: "Shared by every user of the bot." },
];
const POLL_MS = 5000;
const $ = (id) => document.getElementById(id);

const page = {
  access: null, // "local", "admin", "bot" or "public"
  view: null, // the last memory view
  clockOffset: 0, // server epoch seconds minus performance.now() seconds
  refreshing: null,
  lastExpiredRefresh: -Infinity,
};

// -- talking to the server --------------------------------------------------------------
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = $("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data && data.message ? data.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return data;
}

const enc = encodeURIComponent;

function who() {
  return { bot: $("bot").value, user: $("user").value.trim(), channel: $("channel").value.trim() };
}

function userPath(suffix) {
  const { bot, user, channel } = who();
  return `/api/v1/bots/${enc(bot)}/users/${enc(user)}${suffix}?channel=${enc(channel)}`;
}

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

// -- bots and tokens --------------------------------------------------------------------
async function loadBots() {
  const chosen = $("bot").value || sessionStorage.getItem("botmemory.bot");
  let list;
  try {
    list = await api("GET", "/api/v1/bots");
  } catch (error) {
    say(`Could not list the bots: ${error.message}`, true);
    return;
  }
  page.access = list.access;
  const select = $("bot");
  select.replaceChildren(
    ...list.bots.map((bot) => {
      const option = new Option(bot.id + (bot.hasFlows ? "" : " (no flows)"), bot.id);
      option.disabled = !bot.hasFlows;
      return option;
    }),
  );
  const usable = list.bots.filter((bot) => bot.hasFlows).map((bot) => bot.id);
  if (chosen && usable.includes(chosen)) select.value = chosen;
  $("token-help").textContent = accessHelp(list.access, $("token").value.trim() !== "");
  if (!usable.length) say("No bot to talk to: enter a token, or add a bot with flows.", true);
}

function accessHelp(access, tokenGiven) {
  if (access === "local") {
    return "Local mode: no token is configured, so this page needs none (this machine only).";
  }
  if (access === "admin") return "Signed in with an admin token.";
  if (access === "bot") return "Signed in with a bot token: its own bots only.";
  if (tokenGiven) return "This token is not valid: only the public bots are shown.";
  return "Enter a token to inspect memory; without one you can only chat with public bots.";
}

// -- chat ---------------------------------------------------------------------------------
function addLine(who, text) {
  const item = document.createElement("li");
  item.className = who;
  const speaker = document.createElement("span");
  speaker.className = "speaker";
  speaker.textContent = who === "me" ? "You" : who === "bot" ? $("bot").value : "Note";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(speaker, body);
  $("log").append(item);
  item.scrollIntoView({ block: "end" });
}

async function send(event) {
  event.preventDefault();
  const input = $("message");
  const text = input.value;
  if (!text.trim()) return;
  const { bot, user, channel } = who();
  input.value = "";
  addLine("me", text);
  try {
    const answer = await api("POST", `/api/v1/bots/${enc(bot)}/converse/${enc(user)}`, {
      type: "text",
      text,
      channel,
    });
    for (const reply of answer.responses) addLine("bot", reply.text);
    say("");
  } catch (error) {
    addLine("note", `Not sent: ${error.message}`);
  }
  input.focus();
  await refresh();
}

// -- the inspector -----------------------------------------------------------------------
function serverNow() {
  return page.clockOffset + performance.now() / 1000;
}

function countdown(expiresAt) {
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

function scopeSection(scope, variables) {
  const section = $("scope-template").content.firstElementChild.cloneNode(true);
  section.id = `scope-${scope.id}`;
  const heading = section.querySelector("h3");
  heading.id = `scope-${scope.id}-title`;
  heading.textContent = scope.title;
  section.querySelector("table").setAttribute("aria-labelledby", heading.id);
  section.querySelector(".rule").textContent = scope.rule;
  const body = section.querySelector("tbody");
  const names = Object.keys(variables).sort();
  if (!names.length) {
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 3;
    cell.className = "empty";
    cell.textContent = "(empty)";
  }
  for (const name of names) {
    const variable = variables[name];
    const row = body.insertRow();
    row.dataset.name = name;
    if (name.startsWith("_")) row.className = "internal";
    const nameCell = document.createElement("th");
    nameCell.scope = "row";
    nameCell.textContent = name.startsWith("_") ? `${name} (dialog position)` : name;
    row.append(nameCell);
    const value = JSON.stringify(variable.value);
    const valueCell = row.insertCell();
    valueCell.className = "value";
    valueCell.textContent = value.length > 160 ? `${value.slice(0, 160)}…` : value;
    valueCell.title = value;
    const expiresCell = row.insertCell();
    expiresCell.className = "expires";
    expiresCell.dataset.expiresAt = variable.expiresAt === null ? "" : String(variable.expiresAt);
    if (variable.expiresAtIso) expiresCell.title = variable.expiresAtIso;
  }
  return section;
}

function render(view) {
  page.view = view;
  page.clockOffset = view.now - performance.now() / 1000;
  $("scopes").replaceChildren(...SCOPES.map((s) => scopeSection(s, view.scopes[s.id])));
  tick();
}

function tick() {
  const view = page.view;
  if (!view) return;
  let expired = false;
  for (const cell of document.querySelectorAll("td.expires")) {
    const at = cell.dataset.expiresAt === "" ? null : Number(cell.dataset.expiresAt);
    const left = countdown(at);
    cell.textContent = left.text;
    cell.classList.toggle("expired", left.expired);
    expired ||= left.expired;
  }
  const session = $("session");
  if (view.session.alive) {
    session.textContent = `Session ${view.sessionId}: times out ${countdown(view.session.expiresAt).text}.`;
  } else {
    session.textContent = `No live session for ${view.userId}: the next message starts one.`;
  }
  // something just expired: look again (the server hides it now), at most every 5 s
  if (expired && performance.now() - page.lastExpiredRefresh > 5000) {
    page.lastExpiredRefresh = performance.now();
    setTimeout(refresh, 1000);
  }
}

async function refresh() {
  const { bot, user } = who();
  if (!bot || !user || page.access === "public") return;
  if (page.refreshing) return page.refreshing;
  page.refreshing = api("GET", userPath("/memory"))
    .then(render)
    .catch((error) => say(`Memory: ${error.message}`, true))
    .finally(() => {
      page.refreshing = null;
    });
  return page.refreshing;
}

// -- buttons -------------------------------------------------------------------------------
async function runJanitor() {
  try {
    const run = await api("POST", "/api/v1/janitor/run");
    say(
      `Janitor removed ${run.total}: ${run.userVariables} user variables, ${run.userFields} fields, ` +
        `${run.sessions} sessions, ${run.temp} temp memories, ${run.kvs} keys.`,
    );
  } catch (error) {
    say(`Janitor: ${error.message}`, true);
  }
  await refresh();
}

async function endSession() {
  try {
    const result = await api("DELETE", userPath("/session"));
    say(result.ended ? "Session ended: session and temp memory are empty." : "There was no live session.");
    if (result.ended) addLine("note", "Session ended.");
  } catch (error) {
    say(`End session: ${error.message}`, true);
  }
  await refresh();
}

async function eraseUser() {
  const { user } = who();
  if (!window.confirm(`Erase everything stored for ${user}?`)) return;
  try {
    const result = await api("DELETE", userPath(""));
    const counts = Object.entries(result.deleted).map(([kind, n]) => `${n} ${kind}`).join(", ");
    say(`Erased ${user}: ${counts || "nothing was stored"}.`);
    addLine("note", `${user} was erased.`);
  } catch (error) {
    say(`Erase: ${error.message}`, true);
  }
  await refresh();
}

// -- start ---------------------------------------------------------------------------------
async function applySetup(event) {
  if (event) event.preventDefault();
  sessionStorage.setItem("botmemory.token", $("token").value.trim());
  await loadBots();
  sessionStorage.setItem("botmemory.bot", $("bot").value);
  await refresh();
}

function start() {
  $("token").value = sessionStorage.getItem("botmemory.token") || "";
  $("setup").addEventListener("submit", applySetup);
  $("bot").addEventListener("change", () => {
    sessionStorage.setItem("botmemory.bot", $("bot").value);
    refresh();
  });
  $("send").addEventListener("submit", send);
  $("refresh").addEventListener("click", refresh);
  $("run-janitor").addEventListener("click", runJanitor);
  $("end-session").addEventListener("click", endSession);
  $("erase-user").addEventListener("click", eraseUser);
  setInterval(tick, 1000);
  setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, POLL_MS);
  applySetup();
}

document.addEventListener("DOMContentLoaded", start);
