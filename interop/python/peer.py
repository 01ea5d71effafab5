"""Python websockets (legacy asyncio API, 10.4) peer for the Latch interop tests.

Serves WebSocket connections on 127.0.0.1 (connection id = URL path) and dials
out when told to on stdin ({"cmd":"connect","conn":ID,"url":URL,
"protocols":[...]}). Every connection runs the same peer protocol as
../node/peer.js: data messages are echoed, text messages starting with "cmd "
are commands. Observations are JSON lines on stdout. Exits when stdin closes.
Run with /usr/bin/python3 (Debian's interpreter sees python3-websockets).
"""

import asyncio
import json
import sys
import threading
import zlib

import websockets

FRAG_TEXT = "Hello, frägmented wörld ✓ " * 400
MAX = 64 << 20


def emit(**ev):
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


async def command(ws, conn, cmd):
    name, _, rest = cmd.partition(" ")
    if name == "frag":
        # An iterable makes websockets send one fragment per item (RFC 6455 §5.4).
        await ws.send(iter([FRAG_TEXT[:10], FRAG_TEXT[10:4000], FRAG_TEXT[4000:]]))
        b = bytes(i % 251 for i in range(3000))
        await ws.send(iter([b[:1000], b[1000:2000], b[2000:]]))
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
    emit(conn=conn, event="open", protocol=ws.subprotocol or "")
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


async def connect(conn, url, protocols):
    try:
        ws = await websockets.connect(url, subprotocols=protocols or None, max_size=MAX)
    except Exception as e:
        emit(conn=conn, event="error", error=repr(e))
        return
    await run(ws, conn)


async def main():
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    tasks = set()

    def on_line(line):
        m = json.loads(line)
        if m.get("cmd") == "connect":
            t = loop.create_task(connect(m["conn"], m["url"], m.get("protocols")))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    def read_stdin():
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(on_line, line)
        loop.call_soon_threadsafe(done.set)

    async def handler(ws, path):
        await run(ws, path.lstrip("/"))

    server = await websockets.serve(
        handler, "127.0.0.1", 0, subprotocols=["chat.v1"], max_size=MAX
    )
    port = server.sockets[0].getsockname()[1]
    emit(event="listening", port=port)
    threading.Thread(target=read_stdin, daemon=True).start()
    await done.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
