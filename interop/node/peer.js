'use strict';
// Node.js ws peer for the Latch interop tests (see ../README.md).
//
// Serves WebSocket connections on 127.0.0.1 (connection id = URL path) and
// dials out when told to on stdin ({"cmd":"connect","conn":ID,"url":URL,
// "protocols":[...]}). Every connection runs the same peer protocol: data
// messages are echoed, text messages starting with "cmd " are commands.
// Observations are printed as JSON lines on stdout. Exits when stdin closes.

const readline = require('readline');
const zlib = require('zlib');
const { WebSocket, WebSocketServer } = require('ws');

const FRAG_TEXT = 'Hello, frägmented wörld ✓ '.repeat(400);
const MAX = 64 << 20;

function emit(ev) {
  process.stdout.write(JSON.stringify(ev) + '\n');
}

function crc(buf) {
  return zlib.crc32(buf) >>> 0;
}

function run(ws, conn) {
  ws.on('open', () => emit({ conn, event: 'open', protocol: ws.protocol }));
  ws.on('ping', (data) => emit({ conn, event: 'ping', data: data.toString() }));
  ws.on('error', (err) => emit({ conn, event: 'error', error: String(err) }));
  ws.addEventListener('close', (ev) => {
    emit({ conn, event: 'close', code: ev.code, reason: ev.reason, clean: ev.wasClean });
  });
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const s = data.toString();
      if (s.startsWith('cmd ')) {
        command(ws, conn, s.slice(4));
        return;
      }
    }
    emit({ conn, event: 'message', type: isBinary ? 'binary' : 'text', len: data.length, crc: crc(data) });
    ws.send(data, { binary: isBinary });
  });
}

function command(ws, conn, cmd) {
  const [name, ...args] = cmd.split(' ');
  switch (name) {
    case 'frag': {
      // Byte offsets that cut the 2-byte "ä" and the 3-byte "✓", so the
      // receiver's UTF-8 check must work across fragments (RFC 6455 §5.6).
      const t = Buffer.from(FRAG_TEXT);
      const cuts = [10, 30 * 133 + 27];
      ws.send(t.subarray(0, cuts[0]), { binary: false, fin: false });
      ws.send(t.subarray(cuts[0], cuts[1]), { fin: false });
      ws.send(t.subarray(cuts[1]), { fin: true });
      const b = Buffer.alloc(3000);
      for (let i = 0; i < b.length; i++) b[i] = i % 251;
      ws.send(b.subarray(0, 1000), { binary: true, fin: false });
      ws.send(b.subarray(1000, 2000), { fin: false });
      ws.send(b.subarray(2000), { fin: true });
      break;
    }
    case 'ping': {
      const payload = args.join(' ');
      ws.once('pong', (data) => {
        emit({ conn, event: 'pong', data: data.toString() });
        ws.send('pong ' + data.toString());
      });
      ws.ping(Buffer.from(payload));
      break;
    }
    case 'close':
      ws.close(Number(args[0]), args.slice(1).join(' '));
      break;
    default:
      emit({ conn, event: 'error', error: 'unknown command ' + cmd });
  }
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: MAX,
  handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
});
wss.on('connection', (ws, req) => {
  const conn = req.url.replace(/^\//, '');
  run(ws, conn);
  emit({ conn, event: 'open', protocol: ws.protocol });
});
wss.on('listening', () => emit({ event: 'listening', port: wss.address().port }));

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.cmd === 'connect') {
    const ws = new WebSocket(m.url, m.protocols || [], { maxPayload: MAX });
    run(ws, m.conn);
  }
});
rl.on('close', () => process.exit(0));
