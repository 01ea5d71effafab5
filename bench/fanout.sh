#!/usr/bin/env bash
# Fan-out of latch serve (tokens and history on) against Centrifugo v6.9.1,
# measured in the same run: builds both, runs the matrix, writes the report.
#   bench/fanout.sh          full run (3 repeats, < 10 min); writes docs/fanout.md
#   bench/fanout.sh -quick   one short repeat (~2 min); writes bench/results-fanout-quick.md
# Extra arguments go to bench/cmd/fanout (e.g. -only "5,000", -servers latch,
# -pprof latch to save CPU profiles of latch into bench/profiles/).
# CENTRIFUGO=/path/to/centrifugo uses that binary instead of installing one.
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

# 5,000 subscribers need 5,000 descriptors in the server and in the client.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 5200 ]; then
	echo "fanout.sh: open-file limit $(ulimit -n) is below 5,200" >&2
	exit 1
fi
if [ "$(nproc --all)" -lt 2 ]; then
	echo "fanout.sh: needs 2 CPUs (server and client pinned apart)" >&2
	exit 1
fi

mkdir -p bin
go build -o bin/latch-fanout ./servers/latch-fanout
go build -o bin/fanout ./cmd/fanout
centrifugo=${CENTRIFUGO:-bin/centrifugo}
if [ ! -x "$centrifugo" ]; then
	# A cold build takes a few minutes on 2 cores; it is cached afterwards.
	echo "fanout.sh: installing Centrifugo v6.9.1 into bench/bin" >&2
	GOBIN="$PWD/bin" GOFLAGS=-mod=mod go install github.com/centrifugal/centrifugo/v6@v6.9.1
	centrifugo=bin/centrifugo
fi

if [ "$quick" = 1 ]; then
	out=results-fanout-quick.md
	taskset -c 1 bin/fanout -quick -server-cpu 0 -centrifugo "$centrifugo" -out "$out" "${args[@]+"${args[@]}"}"
	cat "$out"
	exit 0
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
taskset -c 1 bin/fanout -server-cpu 0 -centrifugo "$centrifugo" -out "$tmp" "${args[@]+"${args[@]}"}"
secs=$(($(date +%s) - start))
cmdline="bench/fanout.sh${args[*]+ ${args[*]}}"
doc=../docs/fanout.md
notes=fanout-notes.md
{
	cat <<'HDR'
# Fan-out: latch serve against Centrifugo

`latch serve` and Centrifugo v6.9.1 (built from source with `go install`; it calls itself 0.0.0 then),
measured in the same run on the same machine, each with connection tokens and channel history on.

Reproduce with one command (builds both; under 10 minutes on 2 cores, plus a few minutes the first time
to build Centrifugo):

    bench/fanout.sh            # full run, rewrites this file
    bench/fanout.sh -quick     # ~2 minutes, for iterating; writes bench/results-fanout-quick.md
    bench/fanout.sh -pprof latch -only "1,000 subscribers, 1"   # also CPU profiles of latch in bench/profiles/

How it measures:
- Servers: `bench/servers/latch-fanout` is `latch serve`'s server package with HS256 tokens required and a
  namespace `bench` (subscribe and publish: any authenticated user; history 100 publications, 1 minute).
  Centrifugo gets the equivalent JSON config: `client.token.hmac_secret_key` (the same random secret),
  `channel.namespaces` with `bench` (`history_size` 100, `history_ttl` "60s", `allow_subscribe_for_client`,
  `allow_publish_for_client`), `usage_stats.disabled`, errors-only logging, and `debug.enabled` for pprof.
  Every other setting is each server's default. Each cell starts a fresh server process.
- One load client for both (`bench/cmd/fanout`): raw RFC 6455 frames; every connection authenticates with
  its own HS256 token minted with `auth.SignHS256` (latch: `?token=` on the upgrade; Centrifugo: a
  `connect` command), subscribes to `bench:c<i mod channels>` and waits for the answer. Subscribers are
  read from one epoll loop (a read per wake-up; a goroutine per connection costs two reads per message
  here), so the client stays below its core while the servers are at theirs: see its CPU row.
- Publishers publish over the WebSocket on a fixed schedule (`P` per second in total); each payload is
  `{"c":channel,"s":sequence,"t":send time,"w":in window}`, sequences per channel from 1, one publisher per
  channel. Subscribers check every publication: duplicates (seen twice), out of order (below the highest
  seen), lost (missing while a later one arrived), and not delivered by the end (the server is still behind
  after the drain). Latency is publish send → subscriber receive on the client's monotonic clock, over
  in-window publications; p50/p99 from a log-linear histogram (< 1% error), max exact.
- A cell: connect, 2 s of publishing (warm-up), 8 s measured window, then up to 5 s for the window's last
  deliveries and acks. Server CPU is utime+stime from `/proc/PID/stat` from the window's start to the end of
  the drain, divided by every publication the subscribers received meanwhile (warm-up ones included: a
  server that is behind spends the window on them). The clock tick is 10 ms.
- Idle memory: RSS after a GC (`/debug/pprof/heap?gc=1` on both servers) until it is stable, before
  connecting and with the subscribers connected, authenticated and subscribed; the difference ÷ subscribers.
- Servers on CPU 0, the client on CPU 1 (`taskset`); Go sees one CPU in each (GOMAXPROCS 1). Servers
  alternate within each repeat; medians over repeats, ratios are medians of the per-repeat ratio.
- Everything listens on 127.0.0.1; every load is bounded in time and count.

HDR
	echo "## Latest results"
	echo
	echo "Command: \`${cmdline}\` (took ${secs} s)."
	echo
	cat "$tmp"
	if [ -f "$notes" ]; then
		echo
		cat "$notes"
	fi
} >"$doc"
echo "wrote $doc"
