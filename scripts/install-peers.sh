#!/usr/bin/env bash
# Installs the real peers used by the interop tests (interop/): Chromium,
# Python websockets (Debian packages) and Node.js ws (npm, pinned by the lock
# file). Idempotent and fast when everything is already present.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Debian's interpreter: the python3 first on PATH may not see Debian packages.
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || need+=(python3-websockets)

if ((${#need[@]} > 0)); then
	sudo=""
	if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
	echo "install-peers: installing ${need[*]}"
	$sudo apt-get update
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need[@]}"
else
	echo "install-peers: chromium and python3-websockets already installed"
fi

cd "$root/interop/node"
# Up to date when the installed ws is the version the lock file pins.
if node -e '
const want = require("./package-lock.json").packages["node_modules/ws"].version;
const have = require("./node_modules/ws/package.json").version;
process.exit(want === have ? 0 : 1);
' 2>/dev/null; then
	echo "install-peers: node ws already installed"
else
	npm ci --no-audit --no-fund
fi
