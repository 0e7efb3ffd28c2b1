// The bot's key-value store: list keys by prefix with their expiry, view, set, delete.
"use strict";

import { $, api, countdown, enc, parseJson, say, unreachable, unreachableText, valueCell, who } from "./api.js";

const SHOWN = 50; // keys read with their values; the rest are only counted
const expanded = new Set();
export const store = { enabled: false };

// The key as one path segment (its "/" as %2F, which the server reads as "/"), so that a
// "." or ".." between slashes reaches the server instead of being resolved away.
function kvsPath(key = "") {
  return `/api/v1/bots/${enc(who().bot)}/kvs${key ? `/${enc(key)}` : ""}`;
}

function keyRow(body, entry) {
  const row = body.insertRow();
  row.dataset.key = entry.key;
  const name = document.createElement("th");
  name.scope = "row";
  name.textContent = entry.key;
  row.append(name);
  const value = row.insertCell();
  value.className = "value";
  valueCell(value, entry.value, entry.key, expanded);
  const expires = row.insertCell();
  expires.className = "expires";
  expires.dataset.expiresAt = entry.expiresAt === null ? "" : String(entry.expiresAt);
  expires.textContent = countdown(entry.expiresAt).text;
  const actions = row.insertCell();
  actions.className = "row-actions";
  if (entry.unreadable) return;
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "small";
  edit.textContent = "Edit";
  edit.setAttribute("aria-label", `Edit key ${entry.key}`);
  edit.addEventListener("click", () => {
    $("kvs-key").value = entry.key;
    $("kvs-value").value = JSON.stringify(entry.value, null, 2);
    $("kvs-expiry").value = "";
    $("kvs-value").focus();
  });
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "small danger";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete key ${entry.key}`);
  remove.addEventListener("click", () => deleteKey(entry.key));
  actions.append(edit, remove);
}

export async function listKeys() {
  if (!store.enabled || !who().bot) return;
  const prefix = $("kvs-prefix").value;
  let keys;
  try {
    keys = (await api("GET", `${kvsPath()}?prefix=${enc(prefix)}`)).keys;
  } catch (error) {
    say(`Key-value store: ${error.message}`, true);
    return;
  }
  const entries = await Promise.all(
    keys.slice(0, SHOWN).map((key) =>
      unreachable(key)
        ? { key, value: unreachableText("key", key), expiresAt: null, unreadable: true }
        : api("GET", kvsPath(key)).catch(() => null),
    ),
  );
  const body = $("kvs-keys");
  body.replaceChildren();
  for (const entry of entries) if (entry) keyRow(body, entry);
  const found = keys.length === 1 ? "1 key" : `${keys.length} keys`;
  const more = keys.length > SHOWN ? ` (the first ${SHOWN} shown)` : "";
  $("kvs-count").textContent = `${found}${prefix ? ` starting with "${prefix}"` : ""}${more}.`;
}

async function setKey(event) {
  event.preventDefault();
  const key = $("kvs-key").value.trim();
  if (unreachable(key)) return say(unreachableText("key", key), true);
  const parsed = parseJson($("kvs-value").value);
  if (!parsed.ok) return say(`Key ${key}: ${parsed.message}`, true);
  const expiry = $("kvs-expiry").value.trim();
  const body = expiry ? { value: parsed.value, expiry } : { value: parsed.value };
  try {
    await api("PUT", kvsPath(key), body);
    say(`Stored key ${key}${expiry ? `, expiring in ${expiry}` : ", never expiring"}.`);
  } catch (error) {
    say(`Key not stored: ${error.message}`, true);
    return;
  }
  await listKeys();
}

async function deleteKey(key) {
  try {
    await api("DELETE", kvsPath(key));
    say(`Deleted key ${key}.`);
  } catch (error) {
    say(`Key not deleted: ${error.message}`, true);
  }
  await listKeys();
}

export function tickKeys() {
  for (const cell of document.querySelectorAll("#kvs-keys td.expires")) {
    const at = cell.dataset.expiresAt === "" ? null : Number(cell.dataset.expiresAt);
    const left = countdown(at);
    cell.textContent = left.text;
    cell.classList.toggle("expired", left.expired);
  }
}

export function startStore() {
  $("kvs-list").addEventListener("submit", (event) => {
    event.preventDefault();
    listKeys();
  });
  $("kvs-set").addEventListener("submit", setKey);
}

export function resetStore() {
  $("kvs-keys").replaceChildren();
  $("kvs-count").textContent = "";
}
