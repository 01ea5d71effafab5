"""Python websockets (legacy asyncio API, 10.4) peer for the Latch interop tests.

Serves WebSocket connections on 127.0.0.1 (connection id = URL path,
compression from the ?deflate= query) and dials out when told to on stdin
({"cmd":"connect","conn":ID,"url":URL,"protocols":[...],"deflate":MODE}). Every connection runs the same peer protocol as
../node/peer.js: data messages are echoed, text messages starting with "cmd "
are commands. Observations are JSON lines on stdout. Exits when stdin closes.
Run with /usr/bin/python3 (Debian's interpreter sees python3-websockets).
"""

import asyncio
import json
import sys
import threading
import urllib.parse
import zlib

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

FRAG_TEXT = "Hello, frägmented wörld ✓ " * 400
MAX = 64 << 20

# permessage-deflate (RFC 7692) configurations by mode. "deflate" is
# websockets' default (compression="deflate": the server limits both windows
# to 12 bits); "takeover" allows context takeover both ways with full
# windows; "window10" asks for (client) or imposes (server)
# server_max_window_bits=10.
CLIENT_DEFLATE = {
    "deflate": {"compression": "deflate"},
    "takeover": {"extensions": [ClientPerMessageDeflateFactory()]},
    "window10": {"extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=10)]},
}
SERVER_DEFLATE = {
    "takeover": [ServerPerMessageDeflateFactory()],
    "window10": [ServerPerMessageDeflateFactory(server_max_window_bits=10)],
}

# Fragment offsets for "cmd frag" and "cmd frag big" (str indices; both cut
# nothing but whole characters, as a str must).
CUTS = {
    "small": ([10, 4000], [1000, 2000]),
    "big": ([1210, 4000], [1500, 2500]),
}


def pieces(seq, cuts):
    bounds = [0] + cuts + [len(seq)]
    return [seq[a:b] for a, b in zip(bounds, bounds[1:])]


def emit(**ev):
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


async def command(ws, conn, cmd):
    name, _, rest = cmd.partition(" ")
    if name == "frag":
        # An iterable makes websockets send one fragment per item (RFC 6455 §5.4).
        text_cuts, binary_cuts = CUTS["big" if rest == "big" else "small"]
        await ws.send(iter(pieces(FRAG_TEXT, text_cuts)))
        b = bytes(i % 251 for i in range(3000))
        await ws.send(iter(pieces(b, binary_cuts)))
    elif name == "ping":
        waiter = await ws.ping(rest.encode())
        await asyncio.wait_for(waiter, 5)
        emit(conn=conn, event="pong", data=rest)
        await ws.send("pong " + rest)
    elif name == "close":
        code, _, reason = rest.partition(" ")
        # Returns after the closing handshake and the TCP close (RFC 6455 §7.1.1).
        await ws.close(int(code), reason)
    else:
        emit(conn=conn, event="error", error="unknown command " + cmd)


async def run(ws, conn):
    emit(
        conn=conn,
        event="open",
        protocol=ws.subprotocol or "",
        # The negotiated header as sent or received, and what is in force.
        extensions=ws.response_headers.get("Sec-WebSocket-Extensions", ""),
        offer=ws.request_headers.get("Sec-WebSocket-Extensions", ""),
        active=any(e.name == "permessage-deflate" for e in ws.extensions),
    )
    try:
        while True:
            msg = await ws.recv()
            if isinstance(msg, str) and msg.startswith("cmd "):
                await command(ws, conn, msg[4:])
                continue
            data = msg.encode() if isinstance(msg, str) else msg
            kind = "text" if isinstance(msg, str) else "binary"
            emit(conn=conn, event="message", type=kind, len=len(data), crc=zlib.crc32(data))
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    except Exception as e:  # reported, never swallowed
        emit(conn=conn, event="error", error=repr(e))
    await ws.wait_closed()
    clean = ws.close_rcvd is not None and ws.close_sent is not None
    emit(conn=conn, event="close", code=ws.close_code, reason=ws.close_reason, clean=clean)


async def connect(conn, url, protocols, deflate):
    try:
        kwargs = CLIENT_DEFLATE[deflate] if deflate else {}
        ws = await websockets.connect(
            url, subprotocols=protocols or None, max_size=MAX, **kwargs
        )
    except Exception as e:
        emit(conn=conn, event="error", error=repr(e))
        return
    await run(ws, conn)


class ModeProtocol(websockets.WebSocketServerProtocol):
    """Picks the permessage-deflate factories by the ?deflate= query; without
    it (or with "deflate") the server's default, compression="deflate"."""

    def process_extensions(self, headers, available_extensions):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        mode = query.get("deflate", [""])[0]
        if mode in SERVER_DEFLATE:
            available_extensions = SERVER_DEFLATE[mode]
        return super().process_extensions(headers, available_extensions)


async def main():
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    tasks = set()

    def on_line(line):
        m = json.loads(line)
        if m.get("cmd") == "connect":
            t = loop.create_task(connect(m["conn"], m["url"], m.get("protocols"), m.get("deflate")))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    def read_stdin():
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(on_line, line)
        loop.call_soon_threadsafe(done.set)

    async def handler(ws, path):
        await run(ws, urllib.parse.urlsplit(path).path.lstrip("/"))

    server = await websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=["chat.v1"],
        max_size=MAX,
        create_protocol=ModeProtocol,
    )
    port = server.sockets[0].getsockname()[1]
    emit(event="listening", port=port)
    threading.Thread(target=read_stdin, daemon=True).start()
    await done.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
