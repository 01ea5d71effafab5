// A fake latch server for the latch.js tests: the messages of docs/protocol.md and the issue-13 additions
// (connect, refresh, recovery, history, presence, join/leave, unsubscribed), on 127.0.0.1 port 0. It keeps
// every request it receives in `log` so tests can assert what the client sent, and has knobs to misbehave.
//
// The WebSocket implementation is the `ws` package that interop/node installs (cd interop/node && npm ci);
// it is required by a path relative to this file, so the tests run from any directory without NODE_PATH.
// `node --test server/web/test/` also runs this file as a test of its own: it only defines things, so that
// passes trivially.

import { createRequire } from "node:module";
import { once } from "node:events";

const require = createRequire(import.meta.url);
/** The ws package's WebSocket (the client side for the tests). */
export const WebSocket = require("../../../interop/node/node_modules/ws");
const { WebSocketServer } = WebSocket;

/**
 * @typedef {object} FakeOptions
 * @property {(token: string) => ({user: string, expires?: number} | null)} [auth] checks connect and
 *   refresh tokens; default: every token is user "u" without expiry
 * @property {boolean} [history=true] channels keep history: acks carry offset/epoch, messages offset
 * @property {boolean} [joinLeave=false] send join/leave to the other subscribers
 * @property {number} [replayOverlap=0] replay this many already-seen publications too (a sloppy server)
 * @property {boolean} [welcome=true] send the welcome (false: a server that hangs after the upgrade)
 * @property {Set<string>} [forbidden] channels nobody may subscribe or publish to
 * @property {(conn: object, msg: object) => boolean} [onRequest] sees each request first; true = handled
 */

export class FakeServer {
  /** @param {FakeOptions} [opts] */
  constructor(opts = {}) {
    this.opts = { welcome: true, history: true, joinLeave: false, replayOverlap: 0, forbidden: new Set(), ...opts };
    this.auth = opts.auth || (() => ({ user: "u" }));
    /** Every request received, in order: the message plus `client` (the connection's id) and `at` (ms). */
    this.log = [];
    /** Open connections. */
    this.conns = new Set();
    /** Connections accepted so far, with the time each was. */
    this.accepted = [];
    this.channels = new Map(); // name -> {epoch, top, pubs: [{offset, data, time}]}
    this._nextClient = 0;
    this._epochs = 0;
  }

  async start() {
    this.wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await once(this.wss, "listening");
    this.url = `ws://127.0.0.1:${this.wss.address().port}/ws`;
    this.wss.on("connection", (ws) => this._accept(ws));
    return this;
  }

  async stop() {
    for (const c of this.conns) c.ws.terminate();
    await new Promise((resolve) => this.wss.close(resolve));
  }

  // --- the server's side of the protocol ---

  _accept(ws) {
    const conn = { ws, id: String(++this._nextClient), user: "", subs: new Set(), connectedAt: Date.now() };
    this.conns.add(conn);
    this.accepted.push({ client: conn.id, at: Date.now() });
    ws.on("close", () => {
      this.conns.delete(conn);
      for (const ch of conn.subs) this._leave(conn, ch);
    });
    ws.on("message", (data) => this._handle(conn, JSON.parse(String(data))));
    if (this.opts.welcome) this.send(conn, { type: "welcome", client: conn.id });
  }

  send(conn, msg) {
    if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(msg));
  }

  _error(conn, id, code, message = code) {
    this.send(conn, { type: "error", ...(id !== undefined && { id }), code, message });
  }

  _handle(conn, msg) {
    this.log.push({ ...msg, client: conn.id, at: Date.now() });
    if (this.opts.onRequest?.(conn, msg)) return;
    const { id, channel } = msg;
    const ack = (extra = {}) => this.send(conn, { type: "ack", id, ...extra });
    const forbidden = this.opts.forbidden.has(channel);
    switch (msg.op) {
      case "connect": {
        const who = this.auth(msg.token);
        if (!who) {
          this._error(conn, id, "unauthorized", "bad token");
          conn.ws.close(4001, "unauthorized");
          return;
        }
        conn.user = who.user;
        this.send(conn, { type: "connected", id, client: conn.id, user: who.user, ...(who.expires && { expires: who.expires }) });
        return;
      }
      case "refresh": {
        const who = this.auth(msg.token);
        if (!who) return this._error(conn, id, "unauthorized", "bad token");
        if (who.user !== conn.user) return this._error(conn, id, "forbidden", "another user");
        return ack(who.expires ? { expires: who.expires } : {});
      }
      case "ping":
        return this.send(conn, { type: "pong", id });
      case "subscribe": {
        if (forbidden) return this._error(conn, id, "forbidden");
        const ch = this.channel(channel);
        conn.subs.add(channel);
        if (!this.opts.history) return ack();
        let recovered = false;
        const r = msg.recover;
        if (r && r.epoch === ch.epoch && (r.offset === ch.top || ch.pubs.some((p) => p.offset === r.offset + 1))) {
          recovered = true;
          for (const p of ch.pubs) {
            if (p.offset > r.offset - this.opts.replayOverlap) this.send(conn, this._message(channel, p));
          }
        }
        ack({ offset: ch.top, epoch: ch.epoch, recovered });
        if (this.opts.joinLeave) this._broadcast(channel, { type: "join", channel, client: conn.id, user: conn.user }, conn);
        return;
      }
      case "unsubscribe":
        if (!conn.subs.has(channel)) return this._error(conn, id, "not_subscribed");
        this._leave(conn, channel);
        return ack();
      case "publish":
        if (forbidden) return this._error(conn, id, "forbidden");
        this.publish(channel, msg.data);
        return ack();
      case "history": {
        const ch = this.channel(channel);
        let pubs = ch.pubs.filter((p) => p.offset > (msg.since ?? 0));
        if (msg.reverse) pubs = pubs.reverse();
        pubs = pubs.slice(0, Math.min(msg.limit ?? 100, 100));
        return this.send(conn, { type: "history", id, channel, epoch: ch.epoch, offset: ch.top, publications: pubs });
      }
      case "presence": {
        const clients = [...this.conns]
          .filter((c) => c.subs.has(channel))
          .map((c) => ({ client: c.id, user: c.user, connected: c.connectedAt }));
        return this.send(conn, { type: "presence", id, channel, clients });
      }
      default:
        return this._error(conn, id, "unknown_op");
    }
  }

  _leave(conn, channel) {
    conn.subs.delete(channel);
    if (this.opts.joinLeave) this._broadcast(channel, { type: "leave", channel, client: conn.id, user: conn.user }, conn);
  }

  _broadcast(channel, msg, except) {
    for (const c of this.conns) if (c !== except && c.subs.has(channel)) this.send(c, msg);
  }

  _message(channel, p) {
    return this.opts.history ? { type: "message", channel, offset: p.offset, data: p.data } : { type: "message", channel, data: p.data };
  }

  // --- what tests do to it ---

  /** The channel's state, made on first use (top 0, a fresh epoch). */
  channel(name) {
    if (!this.channels.has(name)) this.channels.set(name, { epoch: `e${++this._epochs}`, top: 0, pubs: [] });
    return this.channels.get(name);
  }

  /** Publishes as the server API would: stored, then sent to every subscriber. Returns the publication. */
  publish(channel, data) {
    const ch = this.channel(channel);
    const p = { offset: ++ch.top, data, time: Date.now() };
    ch.pubs.push(p);
    this._broadcast(channel, this._message(channel, p));
    return p;
  }

  /** Sends the same publication again (a duplicate the client must drop). */
  resend(channel, offset) {
    const p = this.channel(channel).pubs.find((q) => q.offset === offset);
    this._broadcast(channel, this._message(channel, p));
  }

  /** Loses the channel's history: a new epoch, offsets from 1 again. */
  resetEpoch(channel) {
    this.channels.delete(channel);
    return this.channel(channel);
  }

  /** Forgets publications with offset <= upTo (history ran out), keeping top and epoch. */
  trim(channel, upTo) {
    const ch = this.channel(channel);
    ch.pubs = ch.pubs.filter((p) => p.offset > upTo);
  }

  /** Drops every connection without a close frame (the client sees 1006). */
  drop() {
    for (const c of this.conns) c.ws.terminate();
  }

  /** Closes every connection with a close code. */
  closeAll(code, reason = "") {
    for (const c of this.conns) c.ws.close(code, reason);
  }

  /** The server API's unsubscribe: tells each subscriber its subscription ended. */
  unsubscribeAll(channel) {
    for (const c of this.conns) {
      if (c.subs.delete(channel)) this.send(c, { type: "unsubscribed", channel });
    }
  }

  /** The requests with this op, optionally from one connection. */
  ops(op, client) {
    return this.log.filter((m) => m.op === op && (client === undefined || m.client === client));
  }
}

/** Resolves when cond() is true (polled every 5 ms); rejects after ms with what was awaited. */
export async function until(cond, ms = 3000, what = cond.toString()) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits a little (to see that something does NOT happen). */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
