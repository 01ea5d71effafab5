// Runs latch.js against a live latch server and checks recovery end to end:
//
//   node server/web/test/real-server.mjs <ws-url> <channel> [N=5] [M=3] [--token TOKEN]
//   (or the token in LATCH_TOKEN; without one the client connects anonymously)
//
// It connects and subscribes to <channel> (which must be in a history namespace), publishes N messages
// from a second connection and checks they arrive in order with consecutive offsets, then drops the
// first connection without a close frame, publishes M more meanwhile, lets the client reconnect and
// checks that the subscription came back with recovered:true and exactly the M missed messages, offsets
// consecutive, then one live message after them. It prints one JSON line and exits 0, or prints why on
// stderr and exits 1. The ws package comes from interop/node (cd interop/node && npm ci).
//
// `node --test server/web/test/` runs this file too (everything in test/ is a test there): without a URL
// under the test runner it does nothing; latch.test.mjs runs run() against its fake server instead.

import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Client } from "../latch.js";

/**
 * @param {{url: string, channel: string, token?: string, n?: number, m?: number,
 *   WebSocket: Function, timeout?: number}} o
 * @returns {Promise<object>} the results; rejects with what went wrong
 */
export async function run({ url, channel, token = "", n = 5, m = 3, WebSocket, timeout = 15000 }) {
  const sockets = []; // the reader's sockets, to drop the current one abruptly
  class Tracked extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  // getToken runs before every connection: while the gate is shut the reader cannot reconnect, so the
  // M publications certainly happen while it is away.
  let gate = Promise.resolve();
  const reader = new Client(url, {
    WebSocket: Tracked, minDelay: 50, maxDelay: 500, name: "reader",
    getToken: async () => { await gate; return token || null; },
  });
  const writer = new Client(url, { WebSocket, token: token || undefined, name: "writer" });
  const got = []; // {offset, data} as they reach onMessage
  const acks = []; // what onSubscribed got
  const errors = [];
  let fatal = null; // a client gave up: no point waiting for the deadline
  let closing = false;
  for (const c of [reader, writer]) {
    c.on("error", (e) => errors.push(e));
    c.on("disconnected", (d) => {
      if (!d.willReconnect && !closing) fatal ??= new Error(`${c.name} disconnected for good: ${d.code} ${d.reason}`);
    });
  }
  const runID = Math.random().toString(36).slice(2);
  const deadline = Date.now() + timeout;
  const until = async (cond, what) => {
    while (!cond()) {
      if (fatal) throw fatal;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}` + (errors.length ? ` (errors: ${errors.map((e) => e.code || e.message).join(", ")})` : ""));
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const consecutive = (list, from) => list.every((g, i) => g.offset === from + i);
  try {
    reader.subscribe(channel, {
      onMessage: (data, { offset }) => got.push({ offset, data }),
      onSubscribed: (info) => acks.push(info),
      onUnsubscribed: (info) => errors.push(info.error || new Error("unsubscribed: " + info.reason)),
    });
    reader.connect();
    writer.connect();
    await until(() => acks.length === 1 && writer.state === "connected", "the subscription and the writer");
    const start = acks[0].offset;
    if (typeof start !== "number" || typeof acks[0].epoch !== "string") {
      throw new Error(`the subscribe ack has no offset/epoch: is ${channel} in a history namespace?`);
    }

    for (let i = 0; i < n; i++) await writer.publish(channel, { run: runID, seq: i });
    await until(() => got.length >= n, `${n} messages`);
    if (got.length !== n) throw new Error(`expected ${n} messages, got ${got.length}`);
    if (!got.every((g, i) => g.data.run === runID && g.data.seq === i)) throw new Error("messages out of order: " + JSON.stringify(got));
    if (!consecutive(got, start + 1)) throw new Error(`offsets not consecutive from ${start + 1}: ${got.map((g) => g.offset)}`);

    let open;
    gate = new Promise((r) => (open = r));
    const dropped = new Promise((r) => reader.on("disconnected", r));
    sockets.at(-1).terminate();
    const why = await dropped;
    if (!why.willReconnect) throw new Error("the reader would not reconnect after " + why.code);
    const droppedAt = Date.now();
    for (let i = n; i < n + m; i++) await writer.publish(channel, { run: runID, seq: i });
    open();
    await until(() => acks.length === 2, "the subscription to be restored");
    const reconnectMs = Date.now() - droppedAt;
    const missed = got.slice(n);
    if (!acks[1].recovered) throw new Error("recovered:false after a short disconnection: " + JSON.stringify(acks[1]));
    if (acks[1].epoch !== acks[0].epoch) throw new Error(`epoch changed: ${acks[0].epoch} -> ${acks[1].epoch}`);
    if (missed.length !== m) throw new Error(`expected ${m} recovered messages, got ${missed.length}: ${JSON.stringify(missed)}`);
    if (!missed.every((g, i) => g.data.run === runID && g.data.seq === n + i)) throw new Error("recovered the wrong messages: " + JSON.stringify(missed));
    if (!consecutive(missed, start + n + 1)) throw new Error(`recovered offsets not consecutive from ${start + n + 1}: ${missed.map((g) => g.offset)}`);
    if (acks[1].offset !== start + n + m) throw new Error(`the ack's offset is ${acks[1].offset}, want ${start + n + m}`);

    await writer.publish(channel, { run: runID, seq: n + m });
    await until(() => got.length >= n + m + 1, "a live message after recovery");
    const live = got[n + m];
    if (got.length !== n + m + 1 || live.data.seq !== n + m || live.offset !== start + n + m + 1) {
      throw new Error("after recovery: " + JSON.stringify(got.slice(n + m)));
    }
    return {
      ok: true, channel, epoch: acks[0].epoch, published: n, missed: m, recovered: true,
      firstOffset: start + 1, lastOffset: live.offset, reconnectMs,
    };
  } finally {
    closing = true;
    reader.close();
    writer.close();
  }
}

async function main(argv) {
  const args = [];
  let token = process.env.LATCH_TOKEN || "";
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--token") token = argv[++i] ?? "";
    else if (argv[i].startsWith("--token=")) token = argv[i].slice("--token=".length);
    else args.push(argv[i]);
  }
  const [url, channel, n = "5", m = "3"] = args;
  if (!url) {
    if (process.env.NODE_TEST_CONTEXT) return; // run by node --test as a file in test/
    throw new Error("usage: real-server.mjs <ws-url> <channel> [N] [M] [--token TOKEN] (or LATCH_TOKEN)");
  }
  if (!channel) throw new Error("no channel given");
  const require = createRequire(import.meta.url);
  const WebSocket = require("../../../interop/node/node_modules/ws");
  const result = await run({ url, channel, token, n: Number(n), m: Number(m), WebSocket });
  console.log(JSON.stringify(result));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err) => {
      console.error("real-server: " + (err && err.message ? err.message : err));
      process.exit(1);
    },
  );
}
