#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a used one: installs the real
# peers the interop tests talk to, checks formatting and vet, runs every
# test with the race detector, then a short bounded run of every fuzz target.
#
#   ./scripts/test.sh            everything
#   FUZZTIME=30s ./scripts/test.sh   longer fuzz runs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-8s}"

echo "== peers"
./scripts/install-peers.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
# The interop and conformance suites fail, not skip, when a peer is missing.
export CI="${CI:-true}"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz (${fuzztime} each)"
# Every Fuzz function in the module, one at a time (go test allows one per run).
for file in $(grep -rlE --include='*_test.go' '^func Fuzz' . | grep -v node_modules | sort); do
	pkg="./$(dirname "${file#./}")"
	for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | sed 's/^func //'); do
		echo "-- $pkg $target"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
	done
done

echo "== all tests passed"
