'use strict';
// Node.js ws peer for the Latch interop tests (see ../README.md).
//
// Serves WebSocket connections on 127.0.0.1 (connection id = URL path,
// compression from the ?deflate= query) and dials out when told to on stdin
// ({"cmd":"connect","conn":ID,"url":URL,"protocols":[...],"deflate":MODE}). Every connection runs the same peer protocol: data
// messages are echoed, text messages starting with "cmd " are commands.
// Observations are printed as JSON lines on stdout. Exits when stdin closes.

const http = require('http');
const readline = require('readline');
const zlib = require('zlib');
const { WebSocket, WebSocketServer } = require('ws');

const FRAG_TEXT = 'Hello, frägmented wörld ✓ '.repeat(400);
const MAX = 64 << 20;

// permessage-deflate (RFC 7692) configurations, chosen per connection by the
// "deflate" field of connect or the ?deflate= query of the URL. ws offers
// "permessage-deflate; client_max_window_bits" as a client with either.
const DEFLATE = {
  deflate: true, // ws defaults: context takeover allowed, threshold 1024 bytes
  takeover: { serverNoContextTakeover: false, clientNoContextTakeover: false, threshold: 0 },
  // Windows under 2^15 (RFC 7692 §7.1.2): as a client ws offers both
  // parameters with the value; as a server it answers them and declines an
  // offer without client_max_window_bits. zlib inflates with the agreed
  // window, so a back-reference beyond it fails the connection.
  window8: { serverMaxWindowBits: 8, clientMaxWindowBits: 8, threshold: 0 },
  window9: { serverMaxWindowBits: 9, clientMaxWindowBits: 9, threshold: 0 },
  window12: { serverMaxWindowBits: 12, clientMaxWindowBits: 12, threshold: 0 },
  window14: { serverMaxWindowBits: 14, clientMaxWindowBits: 14, threshold: 0 },
};

// Text and binary fragment offsets for "cmd frag" and "cmd frag big". Both
// cut the 2-byte "ä" and the 3-byte "✓" (RFC 6455 §5.6); "big" starts with
// fragments over ws's 1024-byte compression threshold, which the first
// fragment decides for the whole message.
const CUTS = {
  small: { text: [10, 30 * 133 + 27], binary: [1000, 2000] },
  big: { text: [30 * 40 + 10, 30 * 133 + 27], binary: [1500, 2500] },
};

// sendFragments sends buf as one message, one fragment per piece.
function sendFragments(ws, buf, binary, cuts) {
  let prev = 0;
  for (const cut of cuts) {
    ws.send(buf.subarray(prev, cut), { binary, fin: false });
    prev = cut;
  }
  ws.send(buf.subarray(prev), { binary, fin: true });
}

function emit(ev) {
  process.stdout.write(JSON.stringify(ev) + '\n');
}

function crc(buf) {
  return zlib.crc32(buf) >>> 0;
}

// opened reports the open event with the negotiated Sec-WebSocket-Extensions
// header and whether ws itself has permessage-deflate in force.
function opened(ws, conn, extensions, offer) {
  emit({
    conn, event: 'open', protocol: ws.protocol, extensions, offer,
    active: ws.extensions === 'permessage-deflate',
  });
}

function run(ws, conn, extensions) {
  ws.on('open', () => opened(ws, conn, extensions(), undefined));
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
      // The receiver's UTF-8 check must work across fragments.
      const cuts = CUTS[args[0] === 'big' ? 'big' : 'small'];
      sendFragments(ws, Buffer.from(FRAG_TEXT), false, cuts.text);
      const b = Buffer.alloc(3000);
      for (let i = 0; i < b.length; i++) b[i] = i % 251;
      sendFragments(ws, b, true, cuts.binary);
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

// One HTTP server; the ?deflate= query picks the WebSocketServer (without
// it: no compression, ws's server default).
const servers = {};
for (const mode of ['', ...Object.keys(DEFLATE)]) {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX,
    perMessageDeflate: mode ? DEFLATE[mode] : false,
    handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
  });
  // The response header as sent, for the open event.
  wss.on('headers', (headers, req) => {
    const h = headers.find((l) => l.toLowerCase().startsWith('sec-websocket-extensions:'));
    req.latchExtensions = h ? h.slice(h.indexOf(':') + 1).trim() : '';
  });
  wss.on('connection', (ws, req) => {
    const conn = new URL(req.url, 'http://x').pathname.replace(/^\//, '');
    run(ws, conn, () => '');
    opened(ws, conn, req.latchExtensions, req.headers['sec-websocket-extensions'] || '');
  });
  servers[mode] = wss;
}
const server = http.createServer((req, res) => {
  res.writeHead(426);
  res.end();
});
server.on('upgrade', (req, socket, head) => {
  const wss = servers[new URL(req.url, 'http://x').searchParams.get('deflate') || ''];
  if (!wss) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(0, '127.0.0.1', () => emit({ event: 'listening', port: server.address().port }));

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.cmd === 'connect') {
    const opts = { maxPayload: MAX };
    if (m.deflate) {
      if (!(m.deflate in DEFLATE)) {
        emit({ conn: m.conn, event: 'error', error: 'unknown deflate mode ' + m.deflate });
        return;
      }
      opts.perMessageDeflate = DEFLATE[m.deflate];
    }
    const ws = new WebSocket(m.url, m.protocols || [], opts);
    let extensions = '';
    ws.on('upgrade', (res) => {
      extensions = res.headers['sec-websocket-extensions'] || '';
    });
    run(ws, m.conn, () => extensions);
  }
});
rl.on('close', () => process.exit(0));
