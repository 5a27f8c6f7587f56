#!/usr/bin/env bash
# Runs every Go fuzz target of the module for DURATION each (default 10s).
# `make test` runs it briefly as a smoke; `make fuzz` runs it long (FUZZTIME).
set -euo pipefail
duration=${1:-10s}
go=${GO:-go}
found=0
for pkg in $("$go" list ./...); do
	for target in $("$go" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		found=1
		echo "fuzz: $pkg $target for $duration"
		"$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" "$pkg"
	done
done
[ "$found" = 1 ] || echo "fuzz: no fuzz targets yet"
