#!/usr/bin/env bash
# Builds every bench server and the runner, then runs the matrix.
#   bench/run.sh          full run (3 repeats, < 15 min); writes docs/benchmarks.md
#   bench/run.sh -quick   one short repeat (~2 min); writes bench/results-quick.md
# Extra arguments go to the runner (e.g. -compress, -only "64 KiB", -pprof-lib latch,
# -libs latch,nbio, -idle-conns 15000).
set -euo pipefail
cd "$(dirname "$0")"

quick=0
args=()
for a in "$@"; do
	case "$a" in
	-quick | --quick) quick=1 ;;
	*) args+=("$a") ;;
	esac
done

# 10,000 idle connections need more than 10,000 descriptors per process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
	echo "run.sh: open-file limit $(ulimit -n) is below 10,100" >&2
	exit 1
fi
if [ "$(nproc --all)" -lt 2 ]; then
	echo "run.sh: needs 2 CPUs (server and client pinned apart)" >&2
	exit 1
fi

mkdir -p bin
for s in gorilla coder gws gobwas nbio latch latch-engine floor-goroutines floor-epoll; do
	go build -o "bin/$s" "./servers/$s"
done
# The same Latch server with gorilla's ReadMessage loop, to show the drop-in figures too.
go build -ldflags "-X main.defaultAPI=readmessage" -o bin/latch-readmessage ./servers/latch
# latch serve itself, for the idle cells (-libs latch-serve,...): /ws with its pub/sub protocol, or /echo
# (the runner picks the route from the name), on the engine or on goroutines.
go build -o bin/latch-serve ./servers/latch-serve
cp bin/latch-serve bin/latch-serve-echo
go build -ldflags "-X main.engine=goroutines" -o bin/latch-serve-goroutines ./servers/latch-serve
cp bin/latch-serve-goroutines bin/latch-serve-echo-goroutines
go build -o bin/runner ./cmd/runner

if [ "$quick" = 1 ]; then
	out=results-quick.md
	taskset -c 1 bin/runner -quick -server-cpu 0 -out "$out" "${args[@]+"${args[@]}"}"
	cat "$out"
	exit 0
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
taskset -c 1 bin/runner -server-cpu 0 -out "$tmp" "${args[@]+"${args[@]}"}"
secs=$(($(date +%s) - start))
cmdline="bench/run.sh${args[*]+ ${args[*]}}"
doc=../docs/benchmarks.md
{
	cat <<'HDR'
# Benchmarks

Latch's `websocket` package against gorilla/websocket v1.5.3, coder/websocket v1.8.15, lxzan/gws,
gobwas/ws and lesismal/nbio (event-driven `nbhttp` engine), measured in the same run on the same machine.
Exact peer versions are in `bench/go.mod`.

Reproduce with one command (builds everything; under 15 minutes on 2 cores):

    bench/run.sh            # full run, rewrites this file
    bench/run.sh -quick     # ~2 minutes, for iterating; writes bench/results-quick.md
    bench/run.sh -compress  # the same matrix with permessage-deflate

How it measures:
- Each library has its own echo server binary (`bench/servers/<lib>`), written the way that library's
  docs recommend for speed: gorilla loops on `ReadMessage`/`WriteMessage` with a write buffer pool,
  coder streams `Reader` → `Writer` as its echo example does, gws and nbio echo in their `OnMessage`
  callbacks, gobwas uses its low-level frame API with a reused buffer, and `latch` loops on
  `AppendMessage` (reads into one reused buffer) and `WriteMessage`. `latch-readmessage` is the same
  Latch server with gorilla's `ReadMessage` loop unchanged, i.e. what a program gets by only changing
  its import path. `latch-engine` hands each connection to a `websocket.Engine` (epoll event loops,
  one per CPU) and echoes in its `OnMessage` callback, the way gws and nbio do; it is Latch, not a peer.
  `-server-flags -stream` makes gorilla and Latch stream `NextReader` → `NextWriter`.
  Compression is off unless `-compress`.
- Two floors that are not libraries: minimal echo servers of our own that only frame bytes (no
  validation at all: no UTF-8, no limits, no fragmentation rules), one read and one write per batch of
  frames, `floor-goroutines` with a goroutine per connection and `floor-epoll` on one epoll thread with
  one shared read buffer (`bench/internal/floor`). They show how far every library is from the cost of
  the kernel and the runtime; they are not counted as peers (*best peer* leaves them out), and they
  ignore `-compress`.
- One load client for all servers (`bench/internal/load`): raw RFC 6455 frames, binary messages, a
  closed loop with a fixed number of messages in flight per connection; every echo is compared byte
  for byte with what was sent. The server runs on CPU 0 and the client on CPU 1 (`taskset`).
- Server CPU per message is utime+stime from `/proc/PID/stat` across the measured window, divided by
  the messages echoed in it (the clock tick is 10 ms, so short windows are coarse). Latency is the
  round trip of each message as the client sees it. RSS is `VmRSS` at the end of the window.
- Idle memory: the client opens 10,000 connections (`-idle-conns`), echoes one 64-byte message on each (and, in the
  "pinged once" cell, then pings each and waits for the pong), the server is told (SIGUSR1) to run a
  full GC and return free memory to the OS, and then (RSS − RSS before connecting) ÷ connections is
  reported.
- Every cell starts a fresh server process. Servers alternate within each repeat (gorilla, coder,
  gws, gobwas, nbio, latch, latch-readmessage, latch-engine, the two floors, then again); figures are medians over repeats, and ratios are the median
  of the per-repeat ratio to gorilla, so drift across the run cancels out.
- All servers listen on 127.0.0.1; every load is bounded in time (and in message count).

The machine is shared and has only two cores: the client can be the bottleneck at high connection
counts, so read msg/s together with server CPU per message, which does not depend on the client.

HDR
	echo "## Latest results"
	echo
	echo "Command: \`${cmdline}\` (took ${secs} s)."
	echo
	cat "$tmp"
	echo
	echo "Micro-benchmarks of the hot paths: [benchmarks-micro.md](benchmarks-micro.md). With compression on:"
	echo "[compression.md](compression.md#measured-against-gorilla-and-gws)."
} >"$doc"
echo "wrote $doc"
