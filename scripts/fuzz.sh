#!/usr/bin/env bash
# Runs every Go fuzz target of the module for DURATION each (default 10s).
# `make test` runs it briefly as a smoke; `make fuzz` runs it long (FUZZTIME).
set -euo pipefail
duration=${1:-10s}
go=${GO:-go}
found=0
# FUZZ_FRESH=1 (the smoke in `make test`) starts from the seeds and testdata only, not from
# the inputs earlier long runs cached on this machine (baselining hundreds of those can take
# longer than the whole smoke).
extra=()
if [ "${FUZZ_FRESH:-}" = 1 ]; then
	cache=$(mktemp -d)
	trap 'rm -rf "$cache"' EXIT
	extra=(-test.fuzzcachedir "$cache")
fi
for pkg in $("$go" list ./...); do
	for target in $("$go" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		found=1
		echo "fuzz: $pkg $target for $duration"
		"$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" "$pkg" "${extra[@]}"
	done
done
[ "$found" = 1 ] || echo "fuzz: no fuzz targets yet"
