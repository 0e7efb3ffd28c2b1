// The memory inspector: the four memories with countdowns, each variable editable in place.
"use strict";

import {
  $,
  api,
  countdown,
  enc,
  parseJson,
  say,
  setServerNow,
  unreachable,
  unreachableText,
  userPath,
  valueCell,
  who,
} from "./api.js";

const SCOPES = [
  { id: "user", title: "User memory", rule: "Kept across sessions; a retention policy may expire a variable." },
  { id: "session", title: "Session memory", rule: "Until the session times out." },
  { id: "temp", title: "Temp memory", rule: "Until the flow ends or the dialog times out." },
  { id: "bot", title: "Bot memory", rule: "Shared by every user of the bot." },
];

export const inspector = {
  view: null, // the last memory view
  editing: null, // "scope/name" of the variable being edited: the view is not redrawn meanwhile
  expanded: new Set(), // "scope/name" of the long values shown whole
  refreshing: null,
  enabled: false, // whether the caller may read memory
  lastExpiredRefresh: -Infinity,
};

// Whose memory is on screen: edits and deletions go to that user, whatever the form says now.
function shown() {
  const view = inspector.view;
  return { bot: view.botId, user: view.userId, channel: view.channel };
}

function variablePath(scope, name) {
  const { bot, user, channel } = shown();
  const owner = scope === "bot" ? bot : user;
  return `/api/v1/bots/${enc(bot)}/memory/${scope}/${enc(owner)}/${enc(name)}?channel=${enc(channel)}`;
}

function sameConversation(view, { bot, user, channel }) {
  const shown = "botId" in view ? { bot: view.botId, user: view.userId, channel: view.channel } : view;
  return shown.bot === bot && shown.user === user && shown.channel === channel;
}

function button(label, onClick, className = "small") {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = label;
  element.addEventListener("click", onClick);
  return element;
}

function startEdit(row, scope, name, value) {
  inspector.editing = `${scope}/${name}`;
  const cell = row.querySelector("td.value");
  const area = document.createElement("textarea");
  area.value = JSON.stringify(value, null, 2);
  area.rows = Math.min(12, area.value.split("\n").length + 1);
  area.setAttribute("aria-label", `New value of ${scope}.${name} (JSON)`);
  const save = button("Save", () => saveEdit(scope, name, area.value));
  const cancel = button("Cancel", () => {
    inspector.editing = null;
    render(inspector.view);
  });
  const help = document.createElement("p");
  help.className = "help";
  help.textContent =
    scope === "session" || scope === "temp"
      ? "An edit never prolongs the session: it fails once the session or dialog has timed out."
      : "JSON: strings in quotes.";
  cell.replaceChildren(area, save, cancel, help);
  area.focus();
}

async function saveEdit(scope, name, text) {
  const parsed = parseJson(text);
  if (!parsed.ok) return say(`${scope}.${name}: ${parsed.message}`, true);
  try {
    await api("PUT", variablePath(scope, name), { value: parsed.value });
    say(`Saved ${scope}.${name}.`);
    inspector.editing = null;
  } catch (error) {
    say(`Not saved: ${error.message}`, true);
    return;
  }
  await refresh();
}

async function deleteVariable(scope, name) {
  try {
    await api("DELETE", variablePath(scope, name));
    say(`Deleted ${scope}.${name}.`);
  } catch (error) {
    say(`Not deleted: ${error.message}`, true);
  }
  await refresh();
}

function variableRow(body, scope, name, variable) {
  const row = body.insertRow();
  row.dataset.name = name;
  const internal = name.startsWith("_");
  if (internal) row.className = "internal";
  const nameCell = document.createElement("th");
  nameCell.scope = "row";
  nameCell.textContent = internal ? `${name} (dialog position)` : name;
  row.append(nameCell);
  const valueCellElement = row.insertCell();
  valueCellElement.className = "value";
  valueCell(valueCellElement, variable.value, `${scope}/${name}`, inspector.expanded);
  const expires = row.insertCell();
  expires.className = "expires";
  expires.dataset.expiresAt = variable.expiresAt === null ? "" : String(variable.expiresAt);
  if (variable.expiresAtIso) expires.title = variable.expiresAtIso;
  const actions = row.insertCell();
  actions.className = "row-actions";
  if (!internal) {
    const edit = button("Edit", () => startEdit(row, scope, name, variable.value));
    edit.setAttribute("aria-label", `Edit ${scope}.${name}`);
    const remove = button("Delete", () => deleteVariable(scope, name), "small danger");
    remove.setAttribute("aria-label", `Delete ${scope}.${name}`);
    actions.append(edit, remove);
  }
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
    const cell = body.insertRow().insertCell();
    cell.colSpan = 4;
    cell.className = "empty";
    cell.textContent = "(empty)";
  }
  for (const name of names) variableRow(body, scope.id, name, variables[name]);
  return section;
}

function render(view) {
  inspector.view = view;
  setServerNow(view.now);
  $("scopes").replaceChildren(...SCOPES.map((s) => scopeSection(s, view.scopes[s.id])));
  tick();
}

export function tick() {
  let expired = false;
  for (const cell of document.querySelectorAll("#scopes td.expires")) {
    const at = cell.dataset.expiresAt === "" ? null : Number(cell.dataset.expiresAt);
    const left = countdown(at);
    cell.textContent = left.text;
    cell.classList.toggle("expired", left.expired);
    expired ||= left.expired;
  }
  const view = inspector.view;
  if (!view) return;
  const session = $("session");
  const left = countdown(view.session.expiresAt);
  if (!view.session.alive) {
    session.textContent = `No live session for ${view.userId}: the next message starts one.`;
  } else if (left.expired) {
    session.textContent = `Session ${view.sessionId} has timed out: the janitor ends it on its next run.`;
  } else {
    session.textContent = `Session ${view.sessionId}: times out ${left.text} without a message.`;
  }
  // something just expired: look again (the server hides it now), at most every 5 s
  if ((expired || left.expired) && performance.now() - inspector.lastExpiredRefresh > 5000) {
    inspector.lastExpiredRefresh = performance.now();
    setTimeout(refresh, 1000);
  }
}

export async function refresh() {
  const asked = who();
  if (inspector.view && !sameConversation(inspector.view, asked)) resetInspector();
  if (!asked.bot || !asked.user || !inspector.enabled || inspector.editing) return;
  if (unreachable(asked.user)) return say(unreachableText("user id", asked.user), true);
  if (inspector.refreshing) return inspector.refreshing;
  inspector.refreshing = api("GET", userPath("/memory", asked))
    .then((view) => {
      if (!inspector.editing && sameConversation(view, who())) render(view);
    })
    .catch((error) => {
      if (!sameConversation(asked, who())) return; // a stale request: another is shown
      resetInspector(); // not the memory of another user under this one's name
      say(`Memory: ${error.message}`, true);
    })
    .finally(() => {
      inspector.refreshing = null;
    });
  return inspector.refreshing;
}

// -- the buttons above the memories ----------------------------------------------------------
async function runJanitor() {
  try {
    const run = await api("POST", "/api/v1/janitor/run");
    say(
      run.skipped // another process holds the janitor lock: this run removed nothing
        ? "Janitor run skipped: another process is running the janitor."
        : `Janitor removed ${run.total} item(s): ${run.userVariables} user variables, ` +
            `${run.userFields} fields, ${run.sessions} sessions, ${run.temp} temp memories, ` +
            `${run.kvs} keys.`,
    );
  } catch (error) {
    say(`Janitor: ${error.message}`, true);
  }
  await refresh();
}

async function endSession(note) {
  try {
    const result = await api("DELETE", userPath("/session"));
    say(result.ended ? "Session ended: session and temp memory are empty." : "There was no live session.");
    if (result.ended) note("Session ended.");
  } catch (error) {
    say(`End session: ${error.message}`, true);
  }
  await refresh();
}

async function eraseUser(note) {
  const { user } = who();
  if (!window.confirm(`Erase everything stored for ${user}?`)) return;
  try {
    const result = await api("DELETE", userPath(""));
    const counts = Object.entries(result.deleted).map(([kind, n]) => `${n} ${kind}`).join(", ");
    say(`Erased ${user}: ${counts || "nothing was stored"}.`);
    note(`${user} was erased.`);
  } catch (error) {
    say(`Erase: ${error.message}`, true);
  }
  await refresh();
}

export function startInspector(note) {
  $("refresh").addEventListener("click", refresh);
  $("run-janitor").addEventListener("click", runJanitor);
  $("end-session").addEventListener("click", () => endSession(note));
  $("erase-user").addEventListener("click", () => eraseUser(note));
}

export function resetInspector() {
  inspector.view = null;
  inspector.editing = null;
  $("scopes").replaceChildren();
  $("session").textContent = "No session yet.";
}
