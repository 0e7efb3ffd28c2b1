// The web chat and memory inspector of botmemory. Plain JavaScript modules, no framework.
"use strict";

import {
  $,
  ApiError,
  api,
  apply,
  authHeaders,
  enc,
  say,
  token,
  unreachable,
  unreachableText,
  who,
} from "./api.js";
import { inspector, refresh, resetInspector, startInspector, tick } from "./inspector.js";
import { listKeys, resetStore, startStore, store, tickKeys } from "./kvs.js";

const POLL_MS = 5000;
const RETRY_MS = 5000;

const page = {
  access: null, // "local", "admin", "bot", "public", or "invalid" (a token the server refused)
  bots: [], // the bots listed for the caller
  listener: null, // the AbortController of the push stream
};

// -- bots and tokens --------------------------------------------------------------------------
async function listBots() {
  try {
    return await api("GET", "/api/v1/bots");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401 || !token()) throw error;
    const anonymous = await api("GET", "/api/v1/bots", undefined, { withToken: false });
    return { ...anonymous, access: "invalid" };
  }
}

async function loadBots() {
  const chosen = $("bot").value || sessionStorage.getItem("botmemory.bot");
  let list;
  try {
    list = await listBots();
  } catch (error) {
    say(`Could not list the bots: ${error.message}`, true);
    return;
  }
  page.access = list.access;
  page.bots = list.bots;
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
  else if (usable.length) select.value = usable[0];
  showProblems(list.problems || []);
  showAccess(usable.length > 0);
}

const HELP = {
  local: "Local mode: no token is configured, so this page needs none (this machine only).",
  admin: "Signed in with an admin token: every bot, its memory and the janitor.",
  bot: "Signed in with a bot token: the memory and keys of its own bot.",
  invalid: "This token is not valid here: check it, or clear it to chat with the public bots only.",
  public: "Without a token you can chat with the public bots only; enter a token to inspect memory.",
};

function showAccess(canChat) {
  const access = page.access;
  $("token-help").textContent = HELP[access] || "";
  const inspects = ["local", "admin", "bot"].includes(access);
  inspector.enabled = inspects;
  store.enabled = inspects;
  $("inspector").hidden = !inspects;
  $("store").hidden = !inspects;
  $("run-janitor").hidden = !["local", "admin"].includes(access);
  $("message").disabled = !canChat;
  $("send-button").disabled = !canChat;
  $("no-bot").hidden = canChat;
  $("no-bot").textContent = noBotText(access);
  if (!inspects) {
    resetInspector();
    resetStore();
  }
  if (canChat) say("");
}

function noBotText(access) {
  if (access === "public" || access === "invalid") {
    return "No bot here answers without a valid token: enter an admin or bot token above.";
  }
  return "No bot with flows to talk to: add bots/<botId>/flows/main.flow.json to the data folder.";
}

function showProblems(problems) {
  const box = $("problems");
  box.hidden = problems.length === 0;
  $("problem-list").replaceChildren(
    ...problems.map((problem) => {
      const item = document.createElement("li");
      item.textContent = problem;
      return item;
    }),
  );
}

// -- chat -----------------------------------------------------------------------------------------
function addLine(kind, text, label) {
  const item = document.createElement("li");
  item.className = kind;
  const speaker = document.createElement("span");
  speaker.className = "speaker";
  speaker.textContent = label || (kind === "me" ? "You" : kind === "bot" ? $("bot").value : "Note");
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
  const { bot, user, channel } = who();
  if (!text.trim() || !bot) return;
  if (unreachable(user)) return addLine("note", `Not sent: ${unreachableText("user id", user)}`);
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
  await Promise.all([refresh(), listKeys()]);
}

// -- the push channel: what the bot says with no message of ours ----------------------------------
function canListen() {
  const bot = page.bots.find((b) => b.id === who().bot);
  if (!bot || !bot.hasFlows || !who().user || unreachable(who().user)) return false;
  return ["local", "admin", "bot"].includes(page.access) || bot.conversePublic;
}

function onPushed(name, data) {
  const bot = who().bot;
  if (name === "replies") {
    for (const text of data.responses) addLine("bot", text, `${bot} (${data.reason})`);
  } else if (name === "sessionEnded") {
    addLine("note", "The session timed out: session and temp memory are gone.");
  }
  refresh();
}

async function readStream(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block);
      const data = /^data: (.*)$/m.exec(block);
      if (name && data) onPushed(name[1], JSON.parse(data[1]));
    }
  }
}

async function listen() {
  if (page.listener) page.listener.abort();
  if (!canListen()) return;
  const controller = new AbortController();
  page.listener = controller;
  const path = `/api/v1/bots/${enc(who().bot)}/users/${enc(who().user)}/events?channel=${enc(who().channel)}`;
  const withToken = page.access !== "invalid";
  while (!controller.signal.aborted) {
    try {
      const response = await fetch(path, { headers: authHeaders(withToken), signal: controller.signal });
      if (response.ok) await readStream(response, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

// -- start -----------------------------------------------------------------------------------------
async function applySetup(event) {
  if (event) event.preventDefault();
  sessionStorage.setItem("botmemory.token", token());
  await loadBots();
  apply();
  sessionStorage.setItem("botmemory.bot", $("bot").value);
  listen();
  await Promise.all([refresh(), listKeys()]);
}

async function poll() {
  if (document.visibilityState !== "visible") return;
  try {
    const list = await listBots();
    showProblems(list.problems || []);
  } catch (error) {
    // the next Apply says what is wrong
  }
  await Promise.all([refresh(), listKeys()]);
}

function start() {
  $("token").value = sessionStorage.getItem("botmemory.token") || "";
  $("setup").addEventListener("submit", applySetup);
  $("bot").addEventListener("change", () => {
    apply();
    sessionStorage.setItem("botmemory.bot", $("bot").value);
    resetInspector();
    listen();
    refresh();
    listKeys();
  });
  $("send").addEventListener("submit", send);
  startInspector((text) => addLine("note", text));
  startStore();
  setInterval(() => {
    tick();
    tickKeys();
  }, 1000);
  setInterval(poll, POLL_MS);
  applySetup();
}

document.addEventListener("DOMContentLoaded", start);
