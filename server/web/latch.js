// latch.js: a small client for the latch pub/sub protocol (docs/protocol.md), as an ES module with no
// dependencies. Browsers use the global WebSocket; Node 20 has none, so pass one:
//
//   import { Client } from "./latch.js";
//   const c = new Client("ws://localhost:8080/ws", { getToken }); // Node 20: add WebSocket: require("ws")
//   c.on("connected", ({ client, user }) => console.log("connected", client, user));
//   const sub = c.subscribe("chat:lobby", { onMessage: (data, { offset }) => console.log(offset, data) });
//   c.connect();
//   await sub.publish({ text: "hi" });
//
// Concurrency: everything runs on the event loop. A connection is one object (conn, below) holding the
// socket and the requests sent on it; callbacks from an older socket are ignored by comparing it with
// this._conn, so a late event can never touch the connection that replaced it.

const OPEN = 1; // WebSocket.OPEN, the same number in every implementation (WHATWG WebSockets)
const MAX_TIMER = 2 ** 31 - 1; // setTimeout fires at once for longer delays

/** An error answered by the server (`code` is its error code) or made by the client: code "timeout"
 * (no answer in time), "disconnected" (the connection ended before the answer), "closed". */
export class LatchError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message || code);
    this.name = "LatchError";
    /** @type {string} */
    this.code = code;
  }
}

/**
 * The delay before reconnection attempt number `attempt` (0 after a connection that worked): "full
 * jitter", uniformly random between minDelay and a cap that doubles with every attempt up to maxDelay,
 * so clients dropped together by a restart do not come back together.
 * @param {number} attempt @param {number} minDelay @param {number} maxDelay @param {() => number} [random]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, minDelay, maxDelay, random = Math.random) {
  const cap = Math.max(minDelay, Math.min(maxDelay, minDelay * 2 ** (attempt + 1)));
  return minDelay + random() * (cap - minDelay);
}

/**
 * How long to wait before refreshing a token that expires at `expiresMs`: until 30 s before expiry, or
 * 10% of the remaining lifetime when that is smaller, but never closer to expiry than 1 s.
 * @param {number} expiresMs @param {number} nowMs @returns {number} milliseconds, >= 0
 */
export function refreshDelay(expiresMs, nowMs) {
  const lifetime = expiresMs - nowMs;
  const lead = Math.max(1000, Math.min(30000, lifetime / 10));
  return Math.max(0, lifetime - lead);
}

/** Whether reconnecting after close `code` can help. */
function retryable(code, hasGetToken, authRetried) {
  if (code === 4003) return false; // disconnected by the server API: it wants this client gone
  // 4001 unauthorized, 4002 token expired: the same token would fail again; a fresh one may work: one try.
  if (code === 4001 || code === 4002) return hasGetToken && !authRetried;
  return true; // 1001 restart, 1006 network, 1008 slow consumer, 1009, 1011, ...: worth another try
}

/**
 * A latch connection that reconnects by itself and restores its subscriptions.
 *
 * States ("state" event, `client.state`): "disconnected" (not started, or given up after a close code
 * that reconnecting would not fix), "connecting" (opening, authenticating, or waiting to retry),
 * "connected", "closed" (after close()). connect() starts again from "disconnected" or "closed".
 *
 * Events (on/off): "connected" {client, user}; "disconnected" {code, reason, willReconnect}, after every
 * connection or attempt that ends; "reconnecting" {delay, attempt}, when the next attempt is scheduled:
 * in delay ms, the attempt-th in a row; "error" (a LatchError or Error: a failed token fetch or refresh, a
 * subscription refused, an error from the server without id, an exception thrown by a callback);
 * "state" {state, previous}.
 */
export class Client {
  /**
   * @param {string} url the ws:// or wss:// address of the server's /ws
   * @param {object} [opts]
   * @param {string} [opts.token] sent in {"op":"connect"} on the first connection (and every one when
   *   there is no getToken)
   * @param {() => Promise<string|null>} [opts.getToken] returns a fresh token: called before each
   *   connection (but the first, when `token` is set) and to refresh a token before it expires; null or
   *   "" connects anonymously; throwing counts as a failed attempt
   * @param {typeof WebSocket} [opts.WebSocket] the WebSocket constructor (default: the global one)
   * @param {number} [opts.minDelay=500] smallest reconnection delay, ms
   * @param {number} [opts.maxDelay=20000] largest reconnection delay, ms
   * @param {number} [opts.timeout=10000] how long a request (and the connection's handshake) may take, ms
   * @param {string} [opts.name] a label for this client, put in front of its error messages
   */
  constructor(url, opts = {}) {
    const WS = opts.WebSocket || globalThis.WebSocket;
    if (typeof WS !== "function") {
      throw new TypeError("latch: no WebSocket: pass one as {WebSocket} (Node 20 has no global WebSocket)");
    }
    this.url = url;
    this.name = opts.name || "";
    /** @type {"disconnected"|"connecting"|"connected"|"closed"} */
    this.state = "disconnected";
    /** The client id of the current connection ("" when not connected). */
    this.clientId = "";
    /** The authenticated user of the current connection ("" for anonymous). */
    this.user = "";

    this._WS = WS;
    this._token = opts.token || null;
    this._tokenUsed = false; // the static token was used once: getToken from then on, if given
    this._getToken = opts.getToken || null;
    this._minDelay = opts.minDelay ?? 500;
    this._maxDelay = opts.maxDelay ?? 20000;
    this._timeout = opts.timeout ?? 10000;

    this._listeners = new Map(); // event -> Set of functions
    this._subs = new Map(); // channel -> Subscription, kept across connections
    this._queue = []; // requests made while connecting, sent once connected
    this._conn = null; // the current connection: {ws, pending, token, live, timer}
    this._gen = 0; // bumped by close(): an _open() still awaiting its token then gives up
    this._nextId = 1;
    this._attempt = 0; // attempts since the last connection that worked, for the backoff
    this._authRetried = false; // used the one retry after 4001/4002
    this._retryTimer = null;
    this._refreshTimer = null;
    this._inError = false; // an "error" listener is running: what it throws is not fed back to it
  }

  /** Adds an event listener. @param {string} event @param {Function} fn @returns {this} */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return this;
  }

  /** Removes an event listener. @param {string} event @param {Function} fn @returns {this} */
  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
    return this;
  }

  /** Starts connecting (and reconnecting until close()). Does nothing while connecting or connected. */
  connect() {
    if (this.state === "connecting" || this.state === "connected") return;
    this._attempt = 0;
    this._authRetried = false;
    this._setState("connecting");
    this._open();
  }

  /** Closes the connection (code 1000) and stops reconnecting. Subscriptions are kept: a later
   * connect() restores them. Requests not answered yet reject with code "disconnected". */
  close() {
    this._gen++;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    const active = this.state === "connecting" || this.state === "connected";
    if (this._conn) this._teardown(this._conn);
    this._rejectQueue("closed");
    this._setState("closed");
    if (active) this._emit("disconnected", { code: 1000, reason: "closed by the client", willReconnect: false });
  }

  /**
   * Subscribes to a channel, now or as soon as connected, and again after every reconnection.
   * @param {string} channel
   * @param {object} [opts]
   * @param {(data: any, meta: {channel: string, offset?: number}) => void} [opts.onMessage]
   * @param {(info: {client: string, user: string}) => void} [opts.onJoin]
   * @param {(info: {client: string, user: string}) => void} [opts.onLeave]
   * @param {(info: {recovered: boolean, offset: number|null, epoch: string|null}) => void} [opts.onSubscribed]
   *   after every subscribe ack; recovered is false on the first one and when the server could not replay
   *   what was missed (refetch then)
   * @param {(info: {reason: "client"|"server"|"error", error?: Error}) => void} [opts.onUnsubscribed]
   *   when the subscription ends: unsubscribe(), the server's "unsubscribed", or a refused subscribe
   * @param {boolean} [opts.recover=true] ask the server for what was missed while disconnected
   * @returns {Subscription}
   */
  subscribe(channel, opts = {}) {
    if (this._subs.has(channel)) throw new Error(this._prefix() + "already subscribed to " + channel);
    const sub = new Subscription(this, channel, opts);
    this._subs.set(channel, sub);
    if (this.state === "connected") sub._subscribe(this._conn);
    return sub;
  }

  /** Publishes a JSON value. Resolves to the server's ack. @param {string} channel @param {any} data
   * @returns {Promise<object>} */
  publish(channel, data) {
    if (data === undefined) return Promise.reject(new LatchError("bad_request", this._prefix() + "no data to publish"));
    return this._call({ op: "publish", channel, data });
  }

  /**
   * Reads a channel's history. Resolves to the server's answer: {channel, epoch, offset, publications:
   * [{offset, data, time}]}.
   * @param {string} channel
   * @param {{since?: number, limit?: number, reverse?: boolean}} [opts] publications with offset > since
   * @returns {Promise<object>}
   */
  history(channel, opts = {}) {
    const frame = { op: "history", channel };
    for (const k of ["since", "limit", "reverse"]) if (opts[k] !== undefined) frame[k] = opts[k];
    return this._call(frame);
  }

  /** Lists who is in a channel. Resolves to the server's answer: {channel, clients: [{client, user,
   * connected}]}. @param {string} channel @returns {Promise<object>} */
  presence(channel) {
    return this._call({ op: "presence", channel });
  }

  // --- connection ---

  async _open() {
    const gen = this._gen;
    let token;
    try {
      token = await this._nextToken();
    } catch (err) {
      if (gen !== this._gen) return;
      this._emit("error", err);
      this._retry();
      return;
    }
    if (gen !== this._gen) return; // close() while the token was being fetched
    let ws;
    try {
      ws = new this._WS(this.url);
    } catch (err) { // a malformed URL: retrying cannot fix it
      this._emit("error", err);
      this._rejectQueue("disconnected");
      this._setState("disconnected");
      return;
    }
    const conn = { ws, pending: new Map(), token, welcomed: false, live: false, timer: null, expires: null };
    this._conn = conn;
    conn.timer = setTimeout(() => this._lost(conn, 1006, "handshake timeout"), this._timeout);
    ws.onmessage = (ev) => this._onFrame(conn, ev.data);
    ws.onclose = (ev) => this._lost(conn, ev.code, ev.reason);
    ws.onerror = () => {}; // a close event follows, with the code
  }

  async _nextToken() {
    if (this._getToken && (this._token === null || this._tokenUsed)) return (await this._getToken()) || null;
    this._tokenUsed = true;
    return this._token;
  }

  _onFrame(conn, data) {
    if (conn !== this._conn) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this._emit("error", new LatchError("bad_frame", this._prefix() + "a message from the server is not JSON"));
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    if (typeof msg.id === "string" && conn.pending.has(msg.id)) {
      const req = conn.pending.get(msg.id);
      conn.pending.delete(msg.id);
      clearTimeout(req.timer);
      if (msg.type === "error") req.reject(new LatchError(msg.code, this._prefix() + (msg.message || msg.code)));
      else req.resolve(msg);
      return;
    }
    const sub = typeof msg.channel === "string" ? this._subs.get(msg.channel) : undefined;
    switch (msg.type) {
      case "welcome":
        if (conn.welcomed) break;
        conn.welcomed = true;
        if (conn.token) {
          this._request(conn, { op: "connect", token: conn.token }).then(
            (m) => this._onConnected(conn, m),
            (err) => { if (conn === this._conn) this._emit("error", err); }, // the server closes (4001)
          );
        } else {
          this._onConnected(conn, { client: msg.client, user: "" });
        }
        break;
      case "message":
        sub?._onMessage(msg);
        break;
      case "join":
      case "leave":
        sub?._onPresence(msg);
        break;
      case "unsubscribed":
        sub?._end({ reason: "server" });
        break;
      case "error": // one without (our) id: a request we no longer wait for, or a malformed one
        if (msg.id === undefined) this._emit("error", new LatchError(msg.code, this._prefix() + (msg.message || msg.code)));
        break;
    }
  }

  _onConnected(conn, m) {
    if (conn !== this._conn) return;
    clearTimeout(conn.timer);
    conn.live = true;
    this._attempt = 0;
    this._authRetried = false;
    this.clientId = String(m.client ?? "");
    this.user = m.user || "";
    this._scheduleRefresh(conn, m.expires);
    this._setState("connected");
    // Subscriptions first, then what waited: answers come in request order (protocol.md), so a
    // publish queued before connecting is answered after the subscriptions are in place.
    for (const sub of this._subs.values()) sub._subscribe(conn);
    const queue = this._queue;
    this._queue = [];
    for (const req of queue) this._send(conn, req);
    this._emit("connected", { client: this.clientId, user: this.user });
  }

  /** The connection ended (close event, or our handshake timeout). */
  _lost(conn, code, reason) {
    if (conn !== this._conn) return;
    this._teardown(conn);
    const willReconnect = retryable(code, !!this._getToken, this._authRetried);
    if (code === 4001 || code === 4002) this._authRetried = true;
    if (!willReconnect) this._rejectQueue("disconnected");
    this._setState(willReconnect ? "connecting" : "disconnected");
    this._emit("disconnected", { code, reason: reason || "", willReconnect });
    if (willReconnect && this._conn === null && this.state === "connecting") this._retry();
  }

  /** Forgets conn: closes its socket, rejects what was sent on it, puts subscriptions back to wait. */
  _teardown(conn) {
    this._conn = null;
    this.clientId = "";
    this.user = "";
    clearTimeout(conn.timer);
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    const ws = conn.ws;
    ws.onmessage = ws.onclose = () => {};
    ws.onerror = () => {}; // never null: the ws package throws on an "error" nobody listens to
    if (ws.readyState <= OPEN) {
      try { ws.close(1000); } catch { /* already closing */ }
    }
    const err = new LatchError("disconnected", this._prefix() + "the connection ended before the answer");
    for (const req of conn.pending.values()) {
      clearTimeout(req.timer);
      req.reject(err);
    }
    conn.pending.clear();
    for (const sub of this._subs.values()) sub._reset();
  }

  _retry() {
    const delay = backoffDelay(this._attempt++, this._minDelay, this._maxDelay);
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delay);
    // After the timer is set: a listener that calls close() cancels it.
    this._emit("reconnecting", { delay, attempt: this._attempt });
  }

  // --- token refresh ---

  _scheduleRefresh(conn, expires) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (typeof expires !== "number" || !this._getToken) return; // a fixed token cannot be renewed
    conn.expires = expires * 1000; // unix seconds
    const at = Date.now() + refreshDelay(conn.expires, Date.now());
    const wait = () => {
      const left = at - Date.now();
      if (left > 0) this._refreshTimer = setTimeout(wait, Math.min(left, MAX_TIMER));
      else this._refresh(conn);
    };
    wait();
  }

  async _refresh(conn) {
    try {
      const token = await this._getToken();
      if (conn !== this._conn) return;
      const ack = await this._request(conn, { op: "refresh", token });
      if (conn === this._conn) this._scheduleRefresh(conn, ack.expires);
    } catch (err) {
      if (conn !== this._conn) return;
      this._emit("error", err);
      // Try again while the token is valid; if it runs out the server closes with 4002 and the
      // reconnection fetches a new token anyway.
      const left = conn.expires - Date.now();
      if (left > 250) this._refreshTimer = setTimeout(() => this._refresh(conn), Math.min(5000, left / 2));
    }
  }

  // --- requests ---

  /** A request from the API: sent now, or when connected (within the timeout), or rejected. */
  _call(frame) {
    if (this.state !== "connected" && this.state !== "connecting") {
      return Promise.reject(new LatchError("disconnected", this._prefix() + "not connected"));
    }
    const { req, promise } = this._newRequest(frame);
    if (this.state === "connected") this._send(this._conn, req);
    else this._queue.push(req);
    return promise;
  }

  /** A request on a given connection (handshake, subscriptions, refresh). */
  _request(conn, frame) {
    const { req, promise } = this._newRequest(frame);
    this._send(conn, req);
    return promise;
  }

  _newRequest(frame) {
    let req;
    const promise = new Promise((resolve, reject) => {
      req = { frame, resolve, reject, conn: null, id: "", timer: null };
    });
    req.timer = setTimeout(() => {
      if (req.conn) req.conn.pending.delete(req.id);
      else this._queue = this._queue.filter((r) => r !== req);
      req.reject(new LatchError("timeout", this._prefix() + `no answer to ${frame.op} in ${this._timeout} ms`));
    }, this._timeout);
    return { req, promise };
  }

  _send(conn, req) {
    req.id = String(this._nextId++);
    req.conn = conn;
    conn.pending.set(req.id, req);
    if (conn.ws.readyState === OPEN) conn.ws.send(JSON.stringify({ ...req.frame, id: req.id }));
    // Otherwise the close event is on its way and rejects it.
  }

  _rejectQueue(code) {
    const queue = this._queue;
    this._queue = [];
    for (const req of queue) {
      clearTimeout(req.timer);
      req.reject(new LatchError(code, this._prefix() + "not connected"));
    }
  }

  // --- events ---

  _setState(state) {
    const previous = this.state;
    if (state === previous) return;
    this.state = state;
    this._emit("state", { state, previous });
  }

  _emit(event, arg) {
    for (const fn of [...(this._listeners.get(event) || [])]) this._invoke(fn, arg);
  }

  /** Calls an application callback; what it throws goes to "error" listeners, not into the client. */
  _invoke(fn, ...args) {
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (err) {
      if (this._listeners.get("error")?.size && !this._inError) {
        this._inError = true;
        try { this._emit("error", err); } finally { this._inError = false; }
      } else {
        setTimeout(() => { throw err; }); // surface it as an uncaught exception, as EventTarget does
      }
    }
  }

  _prefix() {
    return this.name ? `latch (${this.name}): ` : "latch: ";
  }
}

/**
 * One channel's subscription, made by {@link Client#subscribe}. It lives across reconnections until
 * unsubscribe(), the server's "unsubscribed", or a refused subscribe.
 */
export class Subscription {
  constructor(client, channel, opts) {
    this.client = client;
    this.channel = channel;
    /** @type {"subscribing"|"subscribed"|"unsubscribed"} */
    this.state = "subscribing";
    /** The last offset seen (ack or message), null before the first in a history namespace. */
    this.offset = null;
    /** The channel's epoch from the last ack, null before. */
    this.epoch = null;
    this._opts = opts;
    this._conn = null; // the connection the subscribe was sent on
  }

  /** Ends the subscription. Resolves when the server has acknowledged (at once when not connected). */
  unsubscribe() {
    if (this.state === "unsubscribed") return Promise.resolve();
    const conn = this._conn;
    this._end({ reason: "client" });
    if (!conn || conn !== this.client._conn) return Promise.resolve();
    return this.client._request(conn, { op: "unsubscribe", channel: this.channel }).then(
      () => {},
      (err) => {
        // Gone already: the connection (the server forgot it) or the server unsubscribed us meanwhile.
        if (err.code !== "disconnected" && err.code !== "not_subscribed") throw err;
      },
    );
  }

  /** Publishes to this channel. @param {any} data @returns {Promise<object>} */
  publish(data) {
    return this.client.publish(this.channel, data);
  }

  /** The channel's history, see {@link Client#history}. @returns {Promise<object>} */
  history(opts = {}) {
    return this.client.history(this.channel, opts);
  }

  /** Who is in the channel, see {@link Client#presence}. @returns {Promise<object>} */
  presence() {
    return this.client.presence(this.channel);
  }

  _subscribe(conn) {
    if (this.state === "unsubscribed" || this._conn === conn) return;
    this._conn = conn;
    this.state = "subscribing";
    const frame = { op: "subscribe", channel: this.channel };
    if (this._opts.recover !== false && this.offset !== null && this.epoch !== null) {
      frame.recover = { offset: this.offset, epoch: this.epoch };
    }
    // The server replays what was missed as messages before this ack (deduplicated in _onMessage).
    this.client._request(conn, frame).then(
      (ack) => {
        if (this._conn !== conn || this.state === "unsubscribed") return;
        // The ack carries the channel's top: after recovered:false (gap or new epoch) that is where
        // live messages continue from.
        if (typeof ack.offset === "number") this.offset = ack.offset;
        if (typeof ack.epoch === "string") this.epoch = ack.epoch;
        this.state = "subscribed";
        this.client._invoke(this._opts.onSubscribed, {
          recovered: ack.recovered === true, offset: this.offset, epoch: this.epoch,
        });
      },
      (err) => {
        if (this._conn !== conn || this.state === "unsubscribed" || err.code === "disconnected") return;
        if (err.code === "unavailable" || err.code === "timeout") {
          // Worth another try on the same connection, a little later.
          const delay = backoffDelay(0, this.client._minDelay, this.client._maxDelay);
          setTimeout(() => {
            if (this._conn !== conn || conn !== this.client._conn || this.state === "unsubscribed") return;
            this._conn = null;
            this._subscribe(conn);
          }, delay);
          return;
        }
        this.client._emit("error", err);
        this._end({ reason: "error", error: err });
      },
    );
  }

  _onMessage(msg) {
    if (this.state === "unsubscribed") return;
    if (typeof msg.offset === "number") {
      // Seen already: a replay overlapping what arrived live, or a duplicate.
      if (this.offset !== null && msg.offset <= this.offset) return;
      this.offset = msg.offset;
    }
    this.client._invoke(this._opts.onMessage, msg.data, { channel: this.channel, offset: msg.offset });
  }

  _onPresence(msg) {
    if (this.state === "unsubscribed") return;
    const fn = msg.type === "join" ? this._opts.onJoin : this._opts.onLeave;
    this.client._invoke(fn, { client: msg.client, user: msg.user || "" });
  }

  _reset() {
    this._conn = null;
    if (this.state !== "unsubscribed") this.state = "subscribing";
  }

  _end(info) {
    if (this.state === "unsubscribed") return;
    this.state = "unsubscribed";
    this._conn = null;
    if (this.client._subs.get(this.channel) === this) this.client._subs.delete(this.channel);
    this.client._invoke(this._opts.onUnsubscribed, info);
  }
}

export default Client;
