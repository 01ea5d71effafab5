'use strict';
// Node.js http2 peer for WebSockets over HTTP/2 (RFC 8441), for
// ../node_h2_test.go. Node's built-in http2 module does the extended CONNECT
// on both sides; the WebSocket frames (RFC 6455 §5) are coded here, since ws
// speaks HTTP/1.1 only.
//
//   node h2peer.js serve CERT KEY   serves wss on 127.0.0.1, prints {"port":N};
//                                   echoes data, answers pings, echoes close
//                                   codes; text "cmd close CODE" closes first
//   node h2peer.js dial URL         runs the client script against URL and
//                                   prints one JSON report
// Every event is a JSON line on stdout.

const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

function emit(ev) { process.stdout.write(JSON.stringify(ev) + '\n'); }

// frame encodes one frame; masked for a client (RFC 6455 §5.3).
function frame(opcode, payload, masked) {
  payload = Buffer.from(payload);
  const n = payload.length;
  let head;
  if (n < 126) { head = Buffer.alloc(2); head[1] = n; }
  else if (n < 65536) { head = Buffer.alloc(4); head[1] = 126; head.writeUInt16BE(n, 2); }
  else { head = Buffer.alloc(10); head[1] = 127; head.writeBigUInt64BE(BigInt(n), 2); }
  head[0] = 0x80 | opcode;
  if (!masked) return Buffer.concat([head, payload]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

// Reader turns stream data into messages: onMessage(opcode, payload) for
// data (reassembled) and control frames alike. It checks masking as RFC 6455
// §5.1 requires of each side.
class Reader {
  constructor(expectMasked, onMessage, onError) {
    this.buf = Buffer.alloc(0);
    this.expectMasked = expectMasked;
    this.onMessage = onMessage;
    this.onError = onError;
    this.parts = [];
    this.op = 0;
  }
  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0, op = b[0] & 0x0f, masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f, off = 2;
      if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); off = 10; }
      if (masked !== this.expectMasked) { this.onError('masking: got ' + masked); return; }
      const keyOff = off; if (masked) off += 4;
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[keyOff + (i & 3)];
      this.buf = b.subarray(off + len);
      if (op >= 8) { this.onMessage(op, payload); continue; }
      if (op !== 0) this.op = op;
      this.parts.push(payload);
      if (fin) { const msg = Buffer.concat(this.parts); this.parts = []; this.onMessage(this.op, msg); }
    }
  }
}

function serve(certFile, keyFile) {
  const server = http2.createSecureServer({
    cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile),
    settings: { enableConnectProtocol: true },
  });
  let sessions = 0;
  server.on('session', () => { sessions++; });
  server.on('stream', (stream, headers) => {
    if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
      stream.respond({ ':status': 400 }); stream.end(); return;
    }
    if (headers['sec-websocket-version'] !== '13') {
      stream.respond({ ':status': 426, 'sec-websocket-version': '13' }); stream.end(); return;
    }
    emit({ event: 'connect', path: headers[':path'], protocol: headers[':protocol'], sessions });
    stream.respond({ ':status': 200 });
    let closeSent = false;
    const reader = new Reader(true, (op, p) => {
      switch (op) {
        case 1:
          if (p.toString().startsWith('cmd close ')) {
            const code = Number(p.toString().slice(10));
            const c = Buffer.alloc(2); c.writeUInt16BE(code);
            stream.write(frame(8, Buffer.concat([c, Buffer.from('node closes')]), false));
            closeSent = true;
            return;
          }
          stream.write(frame(1, p, false)); break;
        case 2: stream.write(frame(2, p, false)); break;
        case 9: stream.write(frame(10, p, false)); break;
        case 8: {
          const code = p.length >= 2 ? p.readUInt16BE(0) : 1005;
          emit({ event: 'close', code, reason: p.subarray(2).toString() });
          // RFC 6455 §5.5.1: echo the code; then END_STREAM (RFC 8441 §5).
          if (!closeSent) stream.write(frame(8, p.subarray(0, 2), false));
          stream.end();
          break;
        }
      }
    }, (err) => { emit({ event: 'error', error: err }); stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR); });
    stream.on('data', (d) => reader.push(d));
    stream.on('end', () => emit({ event: 'end' }));
    stream.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => emit({ port: server.address().port }));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

// dial runs the client script: two WebSockets on one session; text,
// 1 MiB binary, ping, a client close on the first; a server close on the
// second.
async function dial(url) {
  const u = new URL(url);
  const session = http2.connect('https://' + u.host, { rejectUnauthorized: false });
  session.on('error', (e) => emit({ event: 'error', error: String(e) }));
  await new Promise((resolve) => session.once('remoteSettings', resolve));
  const report = { enableConnectProtocol: session.remoteSettings.enableConnectProtocol };
  const open = () => new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https',
      ':path': u.pathname, ':authority': u.host, 'sec-websocket-version': '13',
      origin: 'https://' + u.host,
    });
    const queue = [], waiting = [];
    const reader = new Reader(false, (op, p) => {
      const m = { op, p };
      if (waiting.length) waiting.shift()(m); else queue.push(m);
    }, (err) => reject(new Error(err)));
    stream.on('response', (h) => {
      if (h[':status'] !== 200) { reject(new Error('status ' + h[':status'])); return; }
      resolve({
        stream,
        next: () => new Promise((r) => { if (queue.length) r(queue.shift()); else waiting.push(r); }),
        ended: new Promise((r) => stream.on('end', () => r(true))),
      });
    });
    stream.on('data', (d) => reader.push(d));
    stream.on('error', (e) => reject(e));
  });
  const a = await open();
  a.stream.write(frame(1, 'hello from node', true));
  report.text = (await a.next()).p.toString();
  const big = crypto.randomBytes(1 << 20);
  a.stream.write(frame(2, big, true));
  const back = await a.next();
  report.bigSame = back.op === 2 && back.p.equals(big);
  a.stream.write(frame(9, 'node-ping', true));
  const pong = await a.next();
  report.pong = pong.op === 10 ? pong.p.toString() : 'op ' + pong.op;
  const b = await open();
  b.stream.write(frame(1, 'second stream', true));
  report.second = (await b.next()).p.toString();
  // Client close: the server echoes 1000, then ends the stream.
  const c = Buffer.alloc(2); c.writeUInt16BE(1000);
  a.stream.write(frame(8, Buffer.concat([c, Buffer.from('bye')]), true));
  const cl = await a.next();
  report.clientClose = { op: cl.op, code: cl.p.length >= 2 ? cl.p.readUInt16BE(0) : 0 };
  report.clientCloseEnded = await a.ended;
  a.stream.end();
  // Server close: the server sends 4001, the client answers, the server ends.
  b.stream.write(frame(1, 'close-me', true));
  const sc = await b.next();
  report.serverClose = { op: sc.op, code: sc.p.length >= 2 ? sc.p.readUInt16BE(0) : 0, reason: sc.p.subarray(2).toString() };
  b.stream.write(frame(8, sc.p.subarray(0, 2), true));
  report.serverCloseEnded = await b.ended;
  b.stream.end();
  emit(report);
  session.close();
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') serve(args[0], args[1]);
else if (mode === 'dial') dial(args[0]).catch((e) => { emit({ event: 'error', error: String(e) }); process.exit(1); });
else { console.error('usage: h2peer.js serve CERT KEY | dial URL'); process.exit(2); }
