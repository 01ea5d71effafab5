// Latch chat demo: plain JavaScript, no dependencies. Speaks the latch
// pub/sub protocol (docs/protocol.md) on /ws of the host that served the page.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"), toggle: $("toggle"), settings: $("settings"),
    name: $("name"), channel: $("channel"), messages: $("messages"),
    composer: $("composer"), text: $("text"), send: $("send"), client: $("client"),
  };

  // Channel names as the server accepts them (protocol: 1–128 bytes).
  const CHANNEL_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const MAX_SHOWN = 500; // older rows are dropped so a long session stays light

  let ws = null;         // the current socket, or null
  let wanted = true;     // false after the user pressed Disconnect
  let attempt = 0;       // failed connections in a row, for the backoff
  let retryTimer = 0;
  let countdownTimer = 0;
  let channel = channelFromHash() || "lobby";
  let subscribed = null; // channel acknowledged on this connection
  let nextId = 1;
  const pending = new Map(); // request id -> {op, channel}

  function channelFromHash() {
    let h = location.hash.slice(1);
    try { h = decodeURIComponent(h); } catch { return null; }
    return CHANNEL_RE.test(h) ? h : null;
  }

  function store(key, value) {
    try { localStorage.setItem(key, value); } catch { /* storage disabled: keep in memory only */ }
  }
  function load(key) {
    try { return localStorage.getItem(key); } catch { return null; }
  }

  function setState(kind, text) {
    ui.state.dataset.state = kind;
    ui.state.textContent = text;
    ui.send.disabled = kind !== "open";
    ui.toggle.textContent = kind === "closed" ? "Connect" : "Disconnect";
  }

  function wsURL() {
    return (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + "/ws";
  }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = countdownTimer = 0;
  }

  function connect() {
    clearTimers();
    wanted = true;
    setState("connecting", attempt > 0 ? "connecting (attempt " + (attempt + 1) + ")" : "connecting");
    let sock;
    try {
      sock = new WebSocket(wsURL(), ["latch.v1"]);
    } catch (e) {
      scheduleReconnect(0);
      return;
    }
    ws = sock;
    // Events of a socket we have replaced are ignored.
    sock.onopen = () => {
      if (ws !== sock) return;
      setState("open", "open");
      subscribed = null;
      subscribe(channel);
    };
    sock.onmessage = (ev) => {
      if (ws === sock) handle(ev.data);
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      subscribed = null;
      pending.clear();
      if (!wanted) {
        setState("closed", "closed (code " + ev.code + ")");
        return;
      }
      scheduleReconnect(ev.code);
    };
  }

  // Exponential backoff with jitter: 0.5 s doubling to 10 s, each wait drawn
  // from [half, full] so that tabs reconnecting after a restart spread out.
  function scheduleReconnect(code) {
    clearTimers();
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
    attempt++;
    const delay = base / 2 + Math.random() * (base / 2);
    const until = Date.now() + delay;
    const why = code ? " (closed " + code + ")" : "";
    const tick = () => {
      const s = Math.max(1, Math.ceil((until - Date.now()) / 1000));
      setState("reconnecting", "reconnecting in " + s + "s" + why);
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  function disconnect() {
    wanted = false;
    clearTimers();
    if (ws) {
      ws.close(1000); // onclose shows the code
    } else {
      setState("closed", "closed");
    }
  }

  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  function request(op, fields) {
    const id = String(nextId++);
    pending.set(id, { op, channel: fields.channel });
    if (!send({ op, ...fields, id })) pending.delete(id);
  }

  function subscribe(ch) {
    request("subscribe", { channel: ch });
  }

  function handle(raw) {
    let m;
    try {
      m = JSON.parse(raw);
    } catch {
      note("unreadable message from the server");
      return;
    }
    if (!m || typeof m !== "object") return;
    const req = m.id !== undefined ? pending.get(m.id) : undefined;
    if (req) pending.delete(m.id);
    switch (m.type) {
      case "welcome":
        ui.client.textContent = "you are " + m.client;
        break;
      case "message":
        // Messages of a channel we just left may still be in flight.
        if (m.channel === channel) addMessage(m.data);
        break;
      case "ack":
        if (req && req.op === "subscribe" && req.channel === channel) {
          subscribed = channel;
          attempt = 0; // a working session resets the backoff
        }
        break;
      case "pong":
        break;
      case "error":
        note("server: " + (m.code || "error") + (m.message ? " – " + m.message : ""));
        break;
    }
  }

  function hue(s) {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) % 360;
    return h;
  }

  function atBottom() {
    const el = ui.messages;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  }

  function append(row) {
    const stick = atBottom();
    ui.messages.append(row);
    while (ui.messages.childElementCount > MAX_SHOWN) ui.messages.firstElementChild.remove();
    if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  // Everything from the network is rendered with textContent: never as HTML.
  function addMessage(data) {
    let name = "?";
    let text;
    if (data && typeof data === "object" && !Array.isArray(data)) {
      if (data.name !== undefined) name = String(data.name);
      text = typeof data.text === "string" ? data.text : JSON.stringify(data.text !== undefined ? data.text : data);
    } else {
      text = JSON.stringify(data);
    }
    const row = document.createElement("div");
    row.className = "msg";
    if (name === myName()) row.classList.add("own");
    row.style.setProperty("--hue", hue(name));
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = name;
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = text;
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    row.append(who, body, time);
    append(row);
  }

  function note(text) {
    const row = document.createElement("div");
    row.className = "note";
    row.textContent = text;
    append(row);
  }

  function myName() {
    return ui.name.value.trim() || "anonymous";
  }

  function switchChannel(ch) {
    if (!CHANNEL_RE.test(ch)) {
      ui.channel.setCustomValidity("1–128 characters of A–Z a–z 0–9 _ - . :");
      ui.channel.reportValidity();
      return;
    }
    ui.channel.setCustomValidity("");
    if (location.hash.slice(1) !== encodeURIComponent(ch)) {
      history.replaceState(null, "", "#" + encodeURIComponent(ch));
    }
    if (ch === channel) return;
    if (subscribed) request("unsubscribe", { channel: subscribed });
    channel = ch;
    subscribed = null;
    ui.messages.replaceChildren();
    document.title = "Latch chat · " + ch;
    subscribe(ch);
  }

  ui.composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = ui.text.value.trim();
    if (!text) return;
    if (!send({ op: "publish", channel, data: { name: myName(), text }, id: String(nextId++) })) return;
    ui.text.value = "";
    ui.text.focus();
  });

  ui.settings.addEventListener("submit", (ev) => {
    ev.preventDefault();
    switchChannel(ui.channel.value.trim());
  });
  ui.channel.addEventListener("change", () => switchChannel(ui.channel.value.trim()));
  ui.name.addEventListener("change", () => store("latch.name", ui.name.value.trim()));
  window.addEventListener("hashchange", () => {
    const ch = channelFromHash();
    if (ch) {
      ui.channel.value = ch;
      switchChannel(ch);
    }
  });
  ui.toggle.addEventListener("click", () => {
    if (ui.state.dataset.state === "closed") {
      attempt = 0;
      connect();
    } else {
      disconnect();
    }
  });
  // Back online: no need to wait out the backoff.
  window.addEventListener("online", () => {
    if (wanted && !ws) connect();
  });
  window.addEventListener("pagehide", () => {
    wanted = false;
    if (ws) ws.close(1001);
  });
  // Restored from the back/forward cache: the socket was closed on pagehide.
  window.addEventListener("pageshow", (ev) => {
    if (ev.persisted && !ws) {
      attempt = 0;
      connect();
    }
  });

  ui.name.value = load("latch.name") || "guest-" + Math.floor(1000 + Math.random() * 9000);
  ui.channel.value = channel;
  document.title = "Latch chat · " + channel;
  connect();
  ui.text.focus();
})();
