// Node.js ws clients for the latch end-to-end test (e2e_test.go).
//
// Usage: node pubsub.js URL CLIENTS PUBLISHES CHANNELS
//
// Opens CLIENTS connections offering the latch.v1 subprotocol. Client i
// subscribes to channels ch(i) and ch(i+1) (ch(n) = "room." + n % CHANNELS)
// and prints {"ready":true} once every subscription is acknowledged. After
// the line "go" on stdin, each client publishes PUBLISHES messages, one at a
// time, waiting for each ack, to channel ch(i+j) for message j, and stops
// at the first error or when the server closes. When every connection has
// closed it prints one JSON line with what each client saw, and exits 0.
'use strict';

const WebSocket = require('ws');
const readline = require('readline');

const [url, nClients, nPublishes, nChannels] = [
  process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5],
];
const channel = (n) => 'room.' + (n % nChannels);
// Wall-clock time in microseconds, comparable with Go's time.Now().UnixMicro().
const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

const fail = (msg) => {
  process.stderr.write('pubsub.js: ' + msg + '\n');
  process.exit(1);
};
// Nothing may hang: the Go test kills us too, but fail loudly first.
setTimeout(() => fail('timed out after 40s'), 40000).unref();

const clients = [];
let subscribed = 0;
let closed = 0;

for (let i = 0; i < nClients; i++) {
  const c = {
    name: 'n' + i,
    id: '',
    protocol: '',
    channels: [channel(i), channel(i + 1)],
    received: [], // [channel, raw data, receive time in µs]
    acked: [],    // [key, channel, raw data]
    errors: [],
    code: 0,
    wasClean: false,
    pending: null, // {key, channel, data} waiting for its ack
    next: 0,
  };
  clients.push(c);
  const ws = new WebSocket(url, 'latch.v1');
  c.ws = ws;
  ws.on('open', () => {
    c.protocol = ws.protocol;
    c.channels.forEach((ch, j) => ws.send(JSON.stringify({ op: 'subscribe', channel: ch, id: 'sub' + j })));
  });
  ws.on('message', (buf, isBinary) => {
    if (isBinary) fail('binary message');
    const text = buf.toString('utf8');
    const m = JSON.parse(text);
    switch (m.type) {
      case 'welcome':
        c.id = m.client;
        break;
      case 'message': {
        // data byte for byte: the text after the fixed prefix, before the final brace.
        const prefix = '{"type":"message","channel":' + JSON.stringify(m.channel) + ',"data":';
        if (!text.startsWith(prefix) || !text.endsWith('}')) fail('unexpected message shape: ' + text);
        c.received.push([m.channel, text.slice(prefix.length, -1), nowMicros()]);
        break;
      }
      case 'ack':
        if (m.id && m.id.startsWith('sub')) {
          if (++subscribed === nClients * 2) process.stdout.write(JSON.stringify({ ready: true }) + '\n');
        } else if (c.pending && m.id === c.pending.key) {
          c.acked.push([c.pending.key, c.pending.channel, c.pending.data]);
          c.pending = null;
          publishNext(c);
        } else {
          fail('unexpected ack ' + text);
        }
        break;
      case 'error':
        // Expected only once the server drains ("unavailable").
        c.errors.push(m.code);
        c.pending = null;
        break;
      default:
        fail('unexpected message ' + text);
    }
  });
  ws.on('error', (err) => c.errors.push('socket: ' + err.message));
  // The standard CloseEvent carries wasClean: both close frames were exchanged.
  ws.addEventListener('close', (ev) => {
    c.code = ev.code;
    c.wasClean = ev.wasClean;
    c.pending = null;
    if (++closed === nClients) report();
  });
}

function publishNext(c) {
  if (c.next >= nPublishes || c.ws.readyState !== WebSocket.OPEN) return;
  const j = c.next++;
  const key = c.name + '-' + j;
  const ch = channel(+c.name.slice(1) + j);
  const data = '{"k":"' + key + '", "t":' + nowMicros() + '}';
  c.pending = { key, channel: ch, data };
  c.ws.send('{"op":"publish","channel":"' + ch + '","id":"' + key + '","data":' + data + '}');
}

function report() {
  const out = clients.map((c) => ({
    name: c.name, id: c.id, protocol: c.protocol, channels: c.channels,
    received: c.received, acked: c.acked, errors: c.errors,
    code: c.code, wasClean: c.wasClean,
  }));
  process.stdout.write(JSON.stringify({ clients: out }) + '\n', () => process.exit(0));
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'go') clients.forEach(publishNext);
});
