// Latch chat demo, built on latch.js (the client SDK the server serves at /latch.js).
// Sign-in asks the server's demo mode for a token (GET /demo/token?user=NAME); the chat
// channels are in the namespace "chat", which keeps history and presence and sends join/leave
// (docs/auth.md). Everything from the network is rendered with textContent, never as HTML.

import { Client } from "./latch.js";

const $ = (id) => document.getElementById(id);
const ui = {
  state: $("state"), toggle: $("toggle"), signout: $("signout"),
  signin: $("signin"), name: $("name"), notice: $("notice"),
  chat: $("chat"), channels: $("channels"), open: $("open"), channel: $("channel"),
  online: $("online"), onlineCount: $("online-count"),
  current: $("current"), messages: $("messages"),
  composer: $("composer"), text: $("text"), send: $("send"), client: $("client"),
};

const USER_RE = /^[A-Za-z0-9_-]{1,32}$/; // what /demo/token accepts
const CHANNEL_RE = /^chat:[A-Za-z0-9_.:-]{1,123}$/; // a channel of namespace chat, 128 bytes at most
const CHANNELS = ["chat:lobby", "chat:random", "chat:help"];
const HISTORY = 50; // publications shown when a channel opens
const MAX_SHOWN = 500; // older rows are dropped so a long session stays light
const USER_KEY = "latch.user"; // sessionStorage: per tab, so two tabs can be two users

let me = ""; // the signed-in user, "" when signed out
let client = null; // the Client while signed in
let channel = channelFromHash() || CHANNELS[0];
let view = null; // the open channel: {channel, sub, first, replayed, offsets}
const online = new Map(); // client id -> user, of the open channel
const channels = [...CHANNELS];
let lastCode = 0; // close code of the last lost connection, shown while reconnecting
let retryAt = 0; // when the next attempt starts at the latest (ms), 0 when none is pending
let countdown = 0;

/** A token fetch that failed; latch.js retries after it. */
class TokenError extends Error {}

function channelFromHash() {
  let h = location.hash.slice(1);
  try { h = decodeURIComponent(h); } catch { return null; }
  if (h && !h.startsWith("chat:")) h = "chat:" + h;
  return CHANNEL_RE.test(h) ? h : null;
}

function wsURL() {
  const u = new URL("ws", location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

// --- sign-in ---

async function getToken() {
  let res;
  try {
    res = await fetch("demo/token?user=" + encodeURIComponent(me), { cache: "no-store" });
  } catch (err) {
    throw new TokenError("latch: cannot fetch a token: " + err.message);
  }
  if (res.status === 404) {
    signOut("This server is not in demo mode, so it hands out no tokens (/demo/token answered 404). " +
      "Start it with `latch serve` and no configuration file to try the chat.");
    throw new TokenError("latch: the server is not in demo mode");
  }
  if (!res.ok) {
    const why = (await res.text().catch(() => "")).trim();
    if (res.status === 400) {
      signOut("The server refused the name: " + (why || "HTTP 400"));
    }
    throw new TokenError("latch: token: HTTP " + res.status + (why ? ": " + why : ""));
  }
  const body = await res.json();
  return body.token;
}

function signIn(name) {
  me = name;
  try { sessionStorage.setItem(USER_KEY, name); } catch { /* storage off: no sign-in after reload */ }
  ui.notice.hidden = true;
  ui.signin.hidden = true;
  ui.chat.hidden = false;
  ui.toggle.hidden = ui.signout.hidden = false;
  client = new Client(wsURL(), { getToken, name });
  client.on("state", renderState);
  client.on("connected", ({ client: id }) => {
    lastCode = 0;
    ui.client.textContent = "client " + id;
  });
  client.on("disconnected", ({ code }) => {
    lastCode = code;
    renderState();
  });
  client.on("reconnecting", ({ delay }) => retryIn(delay));
  client.on("error", (err) => {
    if (!(err instanceof TokenError)) note(err.message);
  });
  openChannel(channel);
  client.connect();
  ui.text.focus();
}

/** Ends the session; with a message, shows it on the sign-in form. */
function signOut(message) {
  const c = client;
  client = null;
  view = null;
  me = "";
  stopCountdown();
  try { sessionStorage.removeItem(USER_KEY); } catch { /* nothing stored */ }
  if (c) c.close();
  ui.chat.hidden = true;
  ui.toggle.hidden = ui.signout.hidden = true;
  ui.signin.hidden = false;
  ui.notice.hidden = !message;
  ui.notice.textContent = message || "";
  ui.messages.replaceChildren();
  ui.client.textContent = "";
  online.clear();
  renderOnline();
  renderState();
  ui.name.focus();
}

// --- connection state ---

// latch.js says when it will try again: the page counts down to it.
function retryIn(delay) {
  retryAt = Date.now() + delay;
  clearInterval(countdown);
  countdown = setInterval(renderState, 250);
  renderState();
}

function stopCountdown() {
  clearInterval(countdown);
  countdown = 0;
  retryAt = 0;
}

function setState(kind, text) {
  ui.state.dataset.state = kind;
  ui.state.textContent = text;
}

function renderState() {
  const st = client ? client.state : "signed out";
  ui.send.disabled = st !== "connected";
  ui.toggle.textContent = st === "connected" || st === "connecting" ? "Go offline" : "Go online";
  if (st !== "connecting") stopCountdown();
  if (st !== "connected") {
    online.clear();
    renderOnline();
  }
  switch (st) {
    case "connected":
      setState("open", "connected as " + client.user);
      break;
    case "connecting":
      if (retryAt === 0) {
        setState("connecting", "connecting");
      } else {
        const s = Math.ceil((retryAt - Date.now()) / 1000);
        const why = lastCode ? " (closed " + lastCode + ")" : "";
        setState("reconnecting", (s > 0 ? "reconnecting in " + s + "s" : "reconnecting…") + why);
      }
      break;
    case "signed out":
      setState("closed", "signed out");
      break;
    case "closed":
      setState("closed", "offline");
      break;
    default: // "disconnected": given up, after a close code reconnecting would not fix
      setState("closed", "disconnected" + (lastCode ? " (code " + lastCode + ")" : ""));
  }
}

// --- channels ---

function renderChannels() {
  const items = channels.map((ch) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.channel = ch;
    b.textContent = ch;
    if (ch === channel) {
      b.className = "active";
      b.setAttribute("aria-current", "true");
    }
    b.addEventListener("click", () => openChannel(ch));
    li.append(b);
    return li;
  });
  ui.channels.replaceChildren(...items);
}

function openChannel(ch) {
  if (!channels.includes(ch)) channels.push(ch);
  const changed = ch !== channel;
  channel = ch;
  renderChannels();
  ui.current.textContent = ch;
  document.title = "Latch chat · " + ch;
  if (location.hash.slice(1) !== encodeURIComponent(ch)) {
    history.replaceState(null, "", "#" + encodeURIComponent(ch));
  }
  if (!client || (view && !changed)) return;
  if (view) view.sub.unsubscribe().catch((err) => note(err.message));
  ui.messages.replaceChildren();
  online.clear();
  renderOnline();
  subscribe(ch);
}

function subscribe(ch) {
  // first: no subscribe acknowledged yet; replayed: messages before the ack of a resubscribe,
  // which latch.js asks to recover; offsets: what is on screen, so history and live never double.
  const v = { channel: ch, sub: null, first: true, replayed: 0, offsets: new Set() };
  view = v;
  v.sub = client.subscribe(ch, {
    onMessage: (data, { offset }) => {
      if (view !== v) return;
      if (v.sub.state === "subscribing") v.replayed++;
      addMessage(v, data, offset, Date.now());
    },
    onJoin: ({ client: id, user }) => {
      if (view !== v) return;
      online.set(id, user);
      renderOnline();
    },
    onLeave: ({ client: id }) => {
      if (view !== v) return;
      online.delete(id);
      renderOnline();
    },
    onSubscribed: ({ recovered }) => {
      if (view !== v) return;
      const n = v.replayed;
      v.replayed = 0;
      if (v.first) {
        v.first = false;
        loadHistory(v);
      } else if (recovered) {
        note("recovered " + n + " missed message" + (n === 1 ? "" : "s"), "recovery");
      } else {
        // A gap the server cannot fill (or a new epoch: its history is gone): start afresh.
        ui.messages.replaceChildren();
        v.offsets.clear();
        note("could not recover, reloaded history", "recovery");
        loadHistory(v);
      }
      loadPresence(v);
    },
    onUnsubscribed: ({ reason, error }) => {
      if (view !== v) return;
      if (reason === "error") note("cannot open " + ch + ": " + error.message);
      else if (reason === "server") note("the server ended the subscription to " + ch);
    },
  });
}

async function loadHistory(v) {
  let h;
  try {
    h = await client.history(v.channel, { limit: HISTORY, reverse: true });
  } catch (err) {
    if (view === v) note("history: " + err.message);
    return;
  }
  if (view !== v) return;
  for (const p of h.publications) addMessage(v, p.data, p.offset, p.time);
}

async function loadPresence(v) {
  let p;
  try {
    p = await client.presence(v.channel);
  } catch (err) {
    if (view === v) note("presence: " + err.message);
    return;
  }
  if (view !== v) return;
  online.clear();
  for (const c of p.clients) online.set(c.client, c.user);
  renderOnline();
}

function renderOnline() {
  const count = new Map(); // user -> connections: one user may have several tabs open
  for (const user of online.values()) count.set(user, (count.get(user) || 0) + 1);
  const users = [...count.keys()].sort((a, b) => a.localeCompare(b));
  ui.online.replaceChildren(...users.map((user) => {
    const li = document.createElement("li");
    li.dataset.user = user;
    li.style.setProperty("--hue", hue(user));
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = user || "anonymous";
    li.append(name);
    if (user === me) li.classList.add("me");
    if (count.get(user) > 1) {
      const n = document.createElement("span");
      n.className = "tabs";
      n.textContent = "×" + count.get(user);
      li.append(n);
    }
    return li;
  }));
  ui.onlineCount.textContent = users.length ? String(users.length) : "";
}

// --- messages ---

function hue(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) % 360;
  return h;
}

function atBottom() {
  const el = ui.messages;
  return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
}

/** Puts a row in place: messages in offset order (history may arrive after live ones). */
function place(row, offset) {
  const stick = atBottom();
  let before = null;
  if (offset !== undefined) {
    for (const el of ui.messages.children) {
      if (el.dataset.offset !== undefined && Number(el.dataset.offset) > offset) {
        before = el;
        break;
      }
    }
  }
  ui.messages.insertBefore(row, before);
  while (ui.messages.childElementCount > MAX_SHOWN) ui.messages.firstElementChild.remove();
  if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function addMessage(v, data, offset, time) {
  if (offset !== undefined) {
    if (v.offsets.has(offset)) return;
    v.offsets.add(offset);
  }
  let user = "?";
  let text;
  if (data && typeof data === "object" && !Array.isArray(data)) {
    if (data.user !== undefined) user = String(data.user);
    text = typeof data.text === "string" ? data.text : JSON.stringify(data.text !== undefined ? data.text : data);
  } else {
    text = JSON.stringify(data);
  }
  const row = document.createElement("div");
  row.className = "msg";
  if (user === me) row.classList.add("own");
  if (offset !== undefined) row.dataset.offset = String(offset);
  row.style.setProperty("--hue", hue(user));
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = user;
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = text;
  const t = document.createElement("time");
  const d = new Date(time);
  t.dateTime = d.toISOString();
  t.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  t.title = d.toLocaleString();
  row.append(who, body, t);
  place(row, offset);
}

function note(text, kind) {
  const row = document.createElement("div");
  row.className = "note" + (kind ? " " + kind : "");
  row.textContent = text;
  place(row, undefined);
}

// --- wiring ---

ui.signin.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = ui.name.value.trim();
  if (!USER_RE.test(name)) {
    ui.name.setCustomValidity("1–32 characters of A–Z a–z 0–9 _ -");
    ui.name.reportValidity();
    return;
  }
  ui.name.setCustomValidity("");
  signIn(name);
});
ui.name.addEventListener("input", () => ui.name.setCustomValidity(""));

ui.signout.addEventListener("click", () => signOut(""));

ui.toggle.addEventListener("click", () => {
  if (!client) return;
  if (client.state === "connected" || client.state === "connecting") {
    client.close(); // really closes the WebSocket: the server sends a leave, and recovery follows
  } else {
    client.connect();
  }
});

ui.open.addEventListener("submit", (ev) => {
  ev.preventDefault();
  let ch = ui.channel.value.trim();
  if (ch && !ch.startsWith("chat:")) ch = "chat:" + ch;
  if (!CHANNEL_RE.test(ch)) {
    ui.channel.setCustomValidity("chat: then 1–123 characters of A–Z a–z 0–9 _ - . :");
    ui.channel.reportValidity();
    return;
  }
  ui.channel.setCustomValidity("");
  ui.channel.value = "";
  openChannel(ch);
});
ui.channel.addEventListener("input", () => ui.channel.setCustomValidity(""));

window.addEventListener("hashchange", () => {
  const ch = channelFromHash();
  if (ch && ch !== channel) openChannel(ch);
});

ui.composer.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = ui.text.value.trim();
  if (!text || !view || client?.state !== "connected") return;
  ui.text.value = "";
  ui.text.focus();
  view.sub.publish({ user: me, text }).catch((err) => {
    note("not sent: " + err.message);
    if (!ui.text.value) ui.text.value = text;
  });
});

renderChannels();
ui.current.textContent = channel;
document.title = "Latch chat · " + channel;
let saved = null;
try { saved = sessionStorage.getItem(USER_KEY); } catch { /* storage off */ }
if (saved && USER_RE.test(saved)) {
  ui.name.value = saved;
  signIn(saved);
} else {
  renderState();
  ui.name.focus();
}
