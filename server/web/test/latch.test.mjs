// Tests of latch.js against a fake server (fake-server.mjs). Run from the repository root:
//
//   (cd interop/node && npm ci --no-audit --no-fund)   # once: the ws package
//   node --test server/web/test/
//
// Reconnection delays are kept small (minDelay 20 ms, maxDelay 100 ms) so every test ends in a few seconds.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Client, LatchError, backoffDelay, refreshDelay } from "../latch.js";
import { FakeServer, WebSocket, until, sleep } from "./fake-server.mjs";
import { run } from "./real-server.mjs";

const FAST = { WebSocket, minDelay: 20, maxDelay: 100 };

/** Starts a fake server and a client for it; both are closed when the test ends. */
async function setup(t, serverOpts = {}, clientOpts = {}) {
  const server = await new FakeServer(serverOpts).start();
  const client = new Client(server.url, { ...FAST, ...clientOpts });
  const events = { connected: [], disconnected: [], reconnecting: [], error: [], state: [] };
  for (const e of Object.keys(events)) client.on(e, (x) => events[e].push(x));
  t.after(async () => {
    client.close();
    await server.stop();
  });
  return { server, client, events };
}

/** A subscription's callbacks, recorded. */
function recorder() {
  const r = { messages: [], subscribed: [], unsubscribed: [], joins: [], leaves: [] };
  r.opts = {
    onMessage: (data, meta) => r.messages.push({ data, ...meta }),
    onSubscribed: (info) => r.subscribed.push(info),
    onUnsubscribed: (info) => r.unsubscribed.push(info),
    onJoin: (info) => r.joins.push(info),
    onLeave: (info) => r.leaves.push(info),
  };
  return r;
}

test("backoffDelay: between minDelay and a cap doubling per attempt up to maxDelay", () => {
  assert.equal(backoffDelay(0, 500, 20000, () => 0), 500);
  assert.equal(backoffDelay(0, 500, 20000, () => 1), 1000);
  assert.equal(backoffDelay(3, 500, 20000, () => 1), 8000);
  assert.equal(backoffDelay(10, 500, 20000, () => 1), 20000);
  assert.equal(backoffDelay(5000, 500, 20000, () => 1), 20000); // 2**5001 is Infinity: still capped
  assert.equal(backoffDelay(4, 500, 20000, () => 0.5), 500 + 0.5 * (16000 - 500));
});

test("refreshDelay: 30 s before expiry, or 10% of the lifetime, but at least 1 s", () => {
  const now = 1_000_000;
  assert.equal(refreshDelay(now + 3600_000, now), 3600_000 - 30_000);
  assert.equal(refreshDelay(now + 100_000, now), 90_000);
  assert.equal(refreshDelay(now + 5_000, now), 4_000);
  assert.equal(refreshDelay(now + 500, now), 0);
  assert.equal(refreshDelay(now - 10_000, now), 0);
});

test("Client without a WebSocket says how to pass one", () => {
  assert.throws(() => new Client("ws://127.0.0.1:1/ws"), /pass one as \{WebSocket\}/);
});

test("anonymous: connected after the welcome, without a connect op", async (t) => {
  const { server, client, events } = await setup(t);
  client.connect();
  await until(() => events.connected.length === 1);
  assert.deepEqual(events.connected[0], { client: "1", user: "" });
  assert.equal(client.state, "connected");
  assert.deepEqual(events.state.map((s) => s.state), ["connecting", "connected"]);
  assert.equal(server.ops("connect").length, 0);
});

test("the token is the first message, and connected reports client and user", async (t) => {
  const { server, client, events } = await setup(t, { auth: (tok) => (tok === "good" ? { user: "ann" } : null) }, { token: "good" });
  const sub = recorder();
  client.subscribe("chat", sub.opts); // made before connecting: must still come after the connect op
  await assert.rejects(client.publish("chat", "x"), (err) => err.code === "disconnected"); // not started
  client.connect();
  const published = client.publish("chat", "queued"); // connecting: waits, then after the subscription
  await published;
  assert.deepEqual(events.connected, [{ client: "1", user: "ann" }]);
  assert.deepEqual(server.log.map((m) => m.op), ["connect", "subscribe", "publish"]);
  assert.equal(server.log[0].token, "good");
  assert.deepEqual(sub.messages.map((m) => m.data), ["queued"]);
});

test("refresh is sent with a fresh token before the token expires, again after each refresh", async (t) => {
  let n = 0;
  const expiries = [];
  const auth = (tok) => {
    const expires = Math.floor(Date.now() / 1000) + 2; // 1-2 s from now: refreshDelay leads by 1 s
    expiries.push({ tok, expires });
    return { user: "ann", expires };
  };
  const { server, client, events } = await setup(t, { auth }, { getToken: async () => `t${++n}` });
  client.connect();
  await until(() => server.ops("refresh").length === 2, 5000);
  const [r1, r2] = server.ops("refresh");
  assert.equal(server.ops("connect")[0].token, "t1");
  assert.equal(r1.token, "t2");
  assert.equal(r2.token, "t3");
  assert.ok(r1.at < expiries[0].expires * 1000, "first refresh before the first expiry");
  assert.ok(r2.at < expiries[1].expires * 1000, "second refresh before the refreshed expiry");
  assert.ok(r1.at >= expiries[0].expires * 1000 - 1500, "not much earlier than 1 s before expiry");
  assert.equal(events.disconnected.length, 0);
  assert.equal(server.accepted.length, 1);
});

test("a failed refresh is reported and retried while the token is valid", async (t) => {
  let bad = true;
  const auth = (tok) => (tok === "bad" ? null : { user: "ann", expires: Math.floor(Date.now() / 1000) + 5 });
  const { server, client, events } = await setup(t, { auth }, { token: "first", getToken: async () => (bad ? "bad" : "good") });
  // 5 s tokens: refresh at 4-ish s would be slow, so answer the connect with a shorter expiry.
  server.opts.onRequest = (conn, msg) => {
    if (msg.op !== "connect") return false;
    server.send(conn, { type: "connected", id: msg.id, client: conn.id, user: "ann", expires: Math.floor(Date.now() / 1000) + 2 });
    return true;
  };
  client.connect();
  await until(() => events.error.length === 1, 3000);
  assert.equal(events.error[0].code, "unauthorized");
  bad = false;
  await until(() => server.ops("refresh").some((r) => r.token === "good"), 3000);
  assert.equal(events.disconnected.length, 0);
});

test("reconnects with backoff after the server drops the socket, with a fresh token", async (t) => {
  let n = 0;
  const { server, client, events } = await setup(t, {}, { getToken: async () => `t${++n}` });
  client.connect();
  await until(() => events.connected.length === 1);
  const droppedAt = Date.now();
  server.drop();
  await until(() => events.connected.length === 2);
  const gap = server.accepted[1].at - droppedAt;
  assert.ok(gap >= 19 && gap <= 40 + 150, `first reconnection after ${gap} ms, want minDelay..2*minDelay`);
  assert.deepEqual(events.disconnected, [{ code: 1006, reason: "", willReconnect: true }]);
  assert.deepEqual(server.ops("connect").map((m) => m.token), ["t1", "t2"]);
  assert.deepEqual(events.state.map((s) => s.state), ["connecting", "connected", "connecting", "connected"]);
});

/** Fake-server options that answer the next `left` connect ops with a close 1011. */
function failingConnects(left) {
  const f = { left };
  f.opts = {
    onRequest: (conn, msg) => {
      if (msg.op === "connect" && f.left > 0) {
        f.left--;
        conn.ws.close(1011, "internal error");
        return true;
      }
      return false;
    },
  };
  return f;
}

test("reconnecting says how long the client waits before each attempt, and it waits that long", async (t) => {
  const fails = failingConnects(2);
  const { server, client, events } = await setup(t, fails.opts, { token: "x", maxDelay: 400 });
  client.connect();
  await until(() => events.connected.length === 1);
  assert.equal(events.reconnecting.length, 2, "one reconnecting event per failed attempt");
  assert.deepEqual(events.reconnecting.map((r) => r.attempt), [1, 2]);
  for (let k = 0; k < 2; k++) {
    const { delay } = events.reconnecting[k];
    const cap = Math.min(400, 20 * 2 ** (k + 1)); // FAST.minDelay is 20
    assert.ok(delay >= 20 && delay <= cap, `delay ${delay} outside [20, ${cap}]`);
    const gap = server.accepted[k + 1].at - server.accepted[k].at;
    assert.ok(gap >= delay - 2, `attempt ${k + 1} came after ${gap} ms, before the announced ${delay}`);
  }
});

test("backoff grows over failed attempts and resets after a connection works", async (t) => {
  // Jitter at its top: each delay is then the attempt's cap, min(maxDelay, minDelay * 2^(attempt+1)).
  const random = Math.random;
  Math.random = () => 0.999;
  t.after(() => { Math.random = random; });
  const fails = failingConnects(0);
  const { server, client, events } = await setup(t, fails.opts, { token: "x", maxDelay: 400 });
  client.connect();
  await until(() => events.connected.length === 1);
  fails.left = 3;
  server.drop();
  await until(() => events.connected.length === 2, 3000);
  assert.equal(server.accepted.length, 5);
  assert.deepEqual(events.disconnected.map((d) => d.code), [1006, 1011, 1011, 1011]);
  assert.ok(events.disconnected.every((d) => d.willReconnect));
  // Timers never fire early, so the lower bounds show the growth; the upper ones allow a loaded machine.
  const caps = [40, 80, 160, 320];
  for (let k = 1; k < 5; k++) {
    const gap = server.accepted[k].at - server.accepted[k - 1].at;
    assert.ok(gap >= caps[k - 1] - 2 && gap <= caps[k - 1] + 150, `attempt ${k - 1}: ${gap} ms, want about ${caps[k - 1]}`);
  }
  const droppedAt = Date.now();
  server.drop(); // after a working connection the backoff starts over
  await until(() => events.connected.length === 3);
  const gap = server.accepted[5].at - droppedAt;
  assert.ok(gap >= 38 && gap <= 40 + 150, `after a reset: ${gap} ms, want about 40 (400 without the reset)`);
});

test("subscriptions are restored after reconnecting, recovering from the last offset and epoch", async (t) => {
  const { server, client, events } = await setup(t);
  const sub = recorder();
  const other = recorder();
  client.subscribe("chat:a", sub.opts);
  client.subscribe("plain", { ...other.opts, recover: false });
  client.connect();
  await until(() => sub.subscribed.length === 1 && other.subscribed.length === 1);
  assert.deepEqual(sub.subscribed[0], { recovered: false, offset: 0, epoch: "e1" });
  for (const d of ["a", "b", "c"]) server.publish("chat:a", d);
  server.publish("plain", 1);
  await until(() => sub.messages.length === 3);
  server.drop();
  server.publish("chat:a", "d"); // missed while away
  server.publish("chat:a", "e");
  server.publish("plain", 2);
  await until(() => sub.subscribed.length === 2 && other.subscribed.length === 2);
  const [first, second] = server.ops("subscribe").filter((m) => m.channel === "chat:a");
  assert.equal(first.recover, undefined);
  assert.deepEqual(second.recover, { offset: 3, epoch: "e1" });
  assert.equal(second.client, "2");
  assert.equal(server.ops("subscribe").filter((m) => m.channel === "plain")[1].recover, undefined, "recover:false");
  assert.deepEqual(sub.subscribed[1], { recovered: true, offset: 5, epoch: "e1" });
  assert.deepEqual(sub.messages.map((m) => [m.offset, m.data]), [[1, "a"], [2, "b"], [3, "c"], [4, "d"], [5, "e"]]);
  assert.deepEqual(sub.messages[0], { data: "a", channel: "chat:a", offset: 1 });
  assert.deepEqual(other.messages.map((m) => m.data), [1]); // no recovery asked: 2 is lost
  server.publish("chat:a", "f");
  await until(() => sub.messages.length === 6);
  assert.equal(events.connected.length, 2);
});

test("duplicates (an overlapping replay, a repeated message) never reach onMessage", async (t) => {
  const { server, client } = await setup(t, { replayOverlap: 2 });
  const sub = recorder();
  client.subscribe("chat", sub.opts);
  client.connect();
  await until(() => sub.subscribed.length === 1);
  server.publish("chat", 1);
  server.publish("chat", 2);
  server.resend("chat", 2);
  server.resend("chat", 1);
  server.publish("chat", 3);
  await until(() => sub.messages.length === 3);
  server.drop();
  server.publish("chat", 4);
  await until(() => sub.subscribed.length === 2);
  await sleep(30);
  assert.deepEqual(sub.messages.map((m) => m.offset), [1, 2, 3, 4]);
  assert.equal(sub.subscribed[1].recovered, true);
});

test("recovered:false when the epoch changed: reported, nothing replayed, live offsets from the new top", async (t) => {
  const { server, client } = await setup(t);
  const sub = recorder();
  const s = client.subscribe("chat", sub.opts);
  client.connect();
  await until(() => sub.subscribed.length === 1);
  for (let i = 0; i < 3; i++) server.publish("chat", `old${i}`);
  await until(() => sub.messages.length === 3);
  server.drop();
  server.resetEpoch("chat");
  server.publish("chat", "new1"); // offset 1 of epoch e2, lost with the old epoch
  await until(() => sub.subscribed.length === 2);
  assert.deepEqual(sub.subscribed[1], { recovered: false, offset: 1, epoch: "e2" });
  assert.deepEqual(server.ops("subscribe")[1].recover, { offset: 3, epoch: "e1" });
  server.publish("chat", "new2"); // offset 2 < the 3 seen before: still new, in the new epoch
  await until(() => sub.messages.length === 4);
  assert.deepEqual(sub.messages.at(-1), { data: "new2", channel: "chat", offset: 2 });
  assert.equal(s.offset, 2);
  assert.equal(s.epoch, "e2");
});

test("recovered:false when history no longer holds the next offset", async (t) => {
  const { server, client } = await setup(t);
  const sub = recorder();
  client.subscribe("chat", sub.opts);
  client.connect();
  await until(() => sub.subscribed.length === 1);
  server.publish("chat", 1);
  await until(() => sub.messages.length === 1);
  server.drop();
  for (let i = 2; i <= 4; i++) server.publish("chat", i);
  server.trim("chat", 2); // offset 2 is gone
  await until(() => sub.subscribed.length === 2);
  assert.deepEqual(sub.subscribed[1], { recovered: false, offset: 4, epoch: "e1" });
  await sleep(30);
  assert.deepEqual(sub.messages.map((m) => m.offset), [1]);
});

test("pending requests reject with code disconnected when the connection drops", async (t) => {
  const { server, client, events } = await setup(t, { onRequest: (conn, msg) => msg.op === "history" });
  client.connect();
  await until(() => events.connected.length === 1);
  const h = client.history("chat", { since: 3, limit: 10, reverse: true });
  await until(() => server.ops("history").length === 1);
  assert.deepEqual(
    Object.fromEntries(Object.entries(server.ops("history")[0]).filter(([k]) => ["since", "limit", "reverse"].includes(k))),
    { since: 3, limit: 10, reverse: true },
  );
  server.drop();
  await assert.rejects(h, (err) => err instanceof LatchError && err.code === "disconnected");
  // While it reconnects, new requests wait for the connection instead of failing.
  const p = client.publish("chat", "later");
  assert.equal(client.state, "connecting");
  const ack = await p;
  assert.equal(ack.type, "ack");
  assert.equal(server.ops("publish")[0].client, "2");
});

test("a request without an answer rejects with code timeout", async (t) => {
  const { client, events } = await setup(t, { onRequest: (conn, msg) => msg.op === "presence" }, { timeout: 200 });
  client.connect();
  await until(() => events.connected.length === 1);
  const start = Date.now();
  await assert.rejects(client.presence("chat"), (err) => err.code === "timeout" && /presence/.test(err.message));
  const took = Date.now() - start;
  assert.ok(took >= 195 && took < 1500, `timed out after ${took} ms`);
  assert.equal(client.state, "connected", "a timeout does not end the connection");
});

test("answers are matched to requests by id, even out of order", async (t) => {
  let held = null;
  const { server, client, events } = await setup(t, {
    onRequest: (conn, msg) => {
      if (msg.op === "history") { held = msg; return true; }
      if (msg.op === "presence") {
        server.send(conn, { type: "presence", id: msg.id, channel: msg.channel, clients: [] });
        server.send(conn, { type: "history", id: held.id, channel: held.channel, epoch: "e9", offset: 7, publications: [{ offset: 7, data: "x", time: 1 }] });
        server.send(conn, { type: "error", id: "999", code: "bad_request", message: "stray" }); // nobody's
        return true;
      }
      return false;
    },
  });
  client.connect();
  await until(() => events.connected.length === 1);
  const order = [];
  const h = client.history("chat").then((m) => (order.push("history"), m));
  const p = client.presence("room").then((m) => (order.push("presence"), m));
  const [hm, pm] = await Promise.all([h, p]);
  assert.deepEqual(order, ["presence", "history"]);
  assert.equal(hm.type, "history");
  assert.equal(hm.offset, 7);
  assert.deepEqual(hm.publications, [{ offset: 7, data: "x", time: 1 }]);
  assert.equal(pm.type, "presence");
  assert.equal(pm.channel, "room");
  assert.notEqual(server.ops("history")[0].id, server.ops("presence")[0].id);
});

test("errors reject with the server's code; history, presence, publish, join/leave through a Subscription", async (t) => {
  const { server, client, events } = await setup(t, { joinLeave: true, forbidden: new Set(["secret"]) });
  const sub = recorder();
  const s = client.subscribe("room", sub.opts);
  client.connect();
  await until(() => sub.subscribed.length === 1);
  await s.publish({ a: 1 });
  await s.publish(null); // null is a value
  const h = await s.history({ since: 1 });
  assert.deepEqual(h.publications.map((p) => p.data), [null]);
  const pr = await s.presence();
  assert.deepEqual(pr.clients.map((c) => c.client), [client.clientId]);
  await assert.rejects(client.publish("secret", 1), (err) => err.code === "forbidden" && err.message.startsWith("latch: "));
  await assert.rejects(client.publish("room", undefined), (err) => err.code === "bad_request");

  const peer = new Client(server.url, { ...FAST, name: "peer" });
  t.after(() => peer.close());
  const ps = peer.subscribe("room");
  peer.connect();
  await until(() => sub.joins.length === 1);
  assert.deepEqual(sub.joins[0], { client: peer.clientId, user: "" });
  await ps.unsubscribe();
  await until(() => sub.leaves.length === 1);
  assert.equal(sub.leaves[0].client, "2");
  assert.equal(ps.state, "unsubscribed");

  const refused = recorder();
  client.subscribe("secret", refused.opts);
  await until(() => refused.unsubscribed.length === 1);
  assert.equal(refused.unsubscribed[0].reason, "error");
  assert.equal(refused.unsubscribed[0].error.code, "forbidden");
  assert.ok(events.error.some((e) => e.code === "forbidden"));
  client.subscribe("secret"); // ended, so the channel can be subscribed again
  assert.throws(() => client.subscribe("room"), /already subscribed to room/);
});

test("a server-initiated unsubscribed ends the subscription: not restored after reconnecting", async (t) => {
  const { server, client } = await setup(t);
  const gone = recorder();
  const kept = recorder();
  const g = client.subscribe("gone", gone.opts);
  client.subscribe("kept", kept.opts);
  client.connect();
  await until(() => gone.subscribed.length === 1 && kept.subscribed.length === 1);
  server.unsubscribeAll("gone");
  await until(() => gone.unsubscribed.length === 1);
  assert.deepEqual(gone.unsubscribed[0], { reason: "server" });
  assert.equal(g.state, "unsubscribed");
  server.drop();
  await until(() => kept.subscribed.length === 2);
  assert.deepEqual(server.ops("subscribe", "2").map((m) => m.channel), ["kept"]);
  await g.unsubscribe(); // harmless
  assert.equal(server.ops("unsubscribe").length, 0);
});

test("unsubscribe() sends unsubscribe and stops messages", async (t) => {
  const { server, client } = await setup(t);
  const sub = recorder();
  const s = client.subscribe("chat", sub.opts);
  client.connect();
  await until(() => sub.subscribed.length === 1);
  await s.unsubscribe();
  assert.deepEqual(sub.unsubscribed, [{ reason: "client" }]);
  assert.equal(server.ops("unsubscribe").length, 1);
  server.publish("chat", 1);
  await sleep(30);
  assert.equal(sub.messages.length, 0);
});

test("no reconnection after close(); pending requests reject; connect() starts again", async (t) => {
  const { server, client, events } = await setup(t, { onRequest: (conn, msg) => msg.op === "presence" });
  const sub = recorder();
  client.subscribe("chat", sub.opts);
  client.connect();
  await until(() => sub.subscribed.length === 1);
  const p = client.presence("chat");
  client.close();
  await assert.rejects(p, (err) => err.code === "disconnected");
  assert.equal(client.state, "closed");
  assert.deepEqual(events.disconnected, [{ code: 1000, reason: "closed by the client", willReconnect: false }]);
  await assert.rejects(client.publish("chat", 1), (err) => err.code === "disconnected");
  await sleep(250);
  assert.equal(server.accepted.length, 1);
  client.connect(); // the subscription is kept and recovers
  await until(() => sub.subscribed.length === 2);
  assert.deepEqual(server.ops("subscribe")[1].recover, { offset: 0, epoch: "e1" });
});

test("close() while waiting to reconnect stops the retry", async (t) => {
  const { server, client, events } = await setup(t, {}, { minDelay: 100, maxDelay: 100 });
  client.connect();
  await until(() => events.connected.length === 1);
  server.drop();
  await until(() => events.disconnected.length === 1);
  client.close();
  await sleep(250);
  assert.equal(server.accepted.length, 1);
  assert.equal(client.state, "closed");
});

test("no reconnection after 4003 (disconnected by the server API)", async (t) => {
  const { server, client, events } = await setup(t, {}, { getToken: async () => "t" });
  client.connect();
  await until(() => events.connected.length === 1);
  server.closeAll(4003, "disconnected");
  await until(() => events.disconnected.length === 1);
  assert.deepEqual(events.disconnected[0], { code: 4003, reason: "disconnected", willReconnect: false });
  assert.equal(client.state, "disconnected");
  await sleep(250);
  assert.equal(server.accepted.length, 1);
});

test("4001 without getToken: no reconnection", async (t) => {
  const { server, client, events } = await setup(t, { auth: () => null }, { token: "bad" });
  client.connect();
  await until(() => events.disconnected.length === 1);
  assert.equal(events.error[0].code, "unauthorized");
  assert.deepEqual(events.disconnected[0], { code: 4001, reason: "unauthorized", willReconnect: false });
  await sleep(250);
  assert.equal(server.accepted.length, 1);
  assert.equal(client.state, "disconnected");
});

test("4001 with getToken: one more attempt with a fresh token", async (t) => {
  await t.test("the fresh token works", async (t) => {
    let n = 0;
    const { server, client, events } = await setup(t, { auth: (tok) => (tok === "fresh" ? { user: "ann" } : null) }, {
      token: "stale", getToken: async () => (++n, "fresh"),
    });
    client.connect();
    await until(() => events.connected.length === 1);
    assert.deepEqual(server.ops("connect").map((m) => m.token), ["stale", "fresh"]);
    assert.equal(events.disconnected[0].willReconnect, true);
    assert.equal(n, 1);
    // The retry is earned again by a connection that worked.
    server.auth = () => null;
    server.closeAll(4001, "unauthorized");
    await until(() => events.disconnected.length === 3);
    assert.deepEqual(events.disconnected.map((d) => d.willReconnect), [true, true, false]);
  });
  await t.test("it fails too: given up", async (t) => {
    const { server, client, events } = await setup(t, { auth: () => null }, { getToken: async () => "bad" });
    client.connect();
    await until(() => events.disconnected.length === 2);
    await sleep(250);
    assert.equal(server.accepted.length, 2);
    assert.deepEqual(events.disconnected.map((d) => [d.code, d.willReconnect]), [[4001, true], [4001, false]]);
    assert.equal(client.state, "disconnected");
  });
});

test("1001, 1008, 1009, 1011 and 1006 are retried", async (t) => {
  const { server, client, events } = await setup(t);
  client.connect();
  const codes = [1001, 1008, 1009, 1011];
  for (const [i, code] of codes.entries()) {
    await until(() => events.connected.length === i + 1);
    server.closeAll(code, "bye");
  }
  await until(() => events.connected.length === codes.length + 1);
  assert.deepEqual(events.disconnected.map((d) => [d.code, d.willReconnect]), codes.map((c) => [c, true]));
});

test("a server that never welcomes is given up after the timeout and retried", async (t) => {
  const { server, client, events } = await setup(t, { welcome: false }, { timeout: 150 });
  client.connect();
  const queued = assert.rejects(client.publish("chat", 1), (err) => err.code === "timeout"); // no connection in time
  await until(() => events.disconnected.length === 2);
  assert.deepEqual(events.disconnected[0], { code: 1006, reason: "handshake timeout", willReconnect: true });
  assert.equal(client.state, "connecting");
  await queued;
  server.opts.welcome = true;
  await until(() => events.connected.length === 1);
});

test("URL that the WebSocket constructor refuses: an error, given up", async (t) => {
  const client = new Client("not a url", FAST);
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.connect();
  await until(() => client.state === "disconnected");
  assert.equal(errors.length, 1);
});

test("a getToken that throws counts as a failed attempt", async (t) => {
  let n = 0;
  const { client, events } = await setup(t, {}, { getToken: async () => { if (++n < 3) throw new Error("token service down"); return "t"; } });
  client.connect();
  await until(() => events.connected.length === 1);
  assert.equal(events.error.length, 2);
  assert.equal(events.error[0].message, "token service down");
});

test("a callback that throws is reported as an error and does not break the client", async (t) => {
  const { server, client, events } = await setup(t);
  const seen = [];
  client.subscribe("chat", { onMessage: (d) => { seen.push(d); if (d === 1) throw new Error("app bug"); } });
  client.connect();
  await until(() => server.ops("subscribe").length === 1);
  await sleep(10);
  server.publish("chat", 1);
  server.publish("chat", 2);
  await until(() => seen.length === 2);
  assert.equal(events.error[0].message, "app bug");
});

test("real-server.mjs passes against the fake server", async (t) => {
  const server = await new FakeServer({ auth: (tok) => (tok === "tk" ? { user: "ann" } : null) }).start();
  t.after(() => server.stop());
  server.publish("chat:r", "before"); // the run starts from the channel's top, not from 0
  const res = await run({ url: server.url, channel: "chat:r", token: "tk", n: 4, m: 3, WebSocket });
  assert.equal(res.ok, true);
  assert.equal(res.firstOffset, 2);
  assert.equal(res.lastOffset, 2 + 4 + 3);
  assert.equal(server.ops("subscribe").at(-1).recover.offset, 5);
});

test("real-server.mjs fails when recovery does not work", async (t) => {
  const server = await new FakeServer().start();
  t.after(() => server.stop());
  server.opts.onRequest = (conn, msg) => {
    if (msg.op === "subscribe" && msg.recover) server.resetEpoch(msg.channel); // every recovery fails
    return false;
  };
  await assert.rejects(run({ url: server.url, channel: "c", n: 2, m: 2, WebSocket, timeout: 3000 }), /recovered:false/);
});
