#!/usr/bin/env bash
# Runs govulncheck ./... (the Go vulnerability scanner) on the module. `make test` calls it.
#
# govulncheck is installed from the Go module proxy, at the version pinned below, into
# $(go env GOPATH)/bin when that version is not there yet. It needs the vulnerability
# database (https://vuln.go.dev, or $GOVULNDB): when the proxy or the database cannot be
# reached (an offline machine), the check is skipped with a message and exit status 0, so
# `make test` still works offline. When it runs, any known vulnerability in code the module
# calls fails the check (exit 3).
set -euo pipefail
version=v1.9.0
go=${GO:-go}
db=${GOVULNDB:-https://vuln.go.dev}
bin="$("$go" env GOPATH)/bin/govulncheck"

if ! { [ -x "$bin" ] && "$bin" -version 2>/dev/null | grep -q "govulncheck@$version"; }; then
	echo "govulncheck: installing golang.org/x/vuln/cmd/govulncheck@$version"
	if ! GOFLAGS= "$go" install "golang.org/x/vuln/cmd/govulncheck@$version" >/tmp/govulncheck-install.$$ 2>&1; then
		echo "govulncheck: skipped: could not install govulncheck@$version from the module proxy:"
		sed 's/^/  /' /tmp/govulncheck-install.$$
		rm -f /tmp/govulncheck-install.$$
		exit 0
	fi
	rm -f /tmp/govulncheck-install.$$
fi

# A quick look first: an unreachable database costs seconds, not a whole analysis.
if [[ $db == https://* ]]; then
	host=${db#https://}
	host=${host%%/*}
	host=${host%%:*}
	if ! timeout 10 bash -c "exec 3<>/dev/tcp/$host/443" 2>/dev/null; then
		echo "govulncheck: skipped: vulnerability database unreachable ($db: cannot connect to $host:443)"
		exit 0
	fi
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
"$bin" -db "$db" ./... >"$out" 2>&1 || status=$?
if [ "$status" -ne 0 ] && grep -qE 'fetching vulnerabilities|vulnerability database|dial tcp|no such host|i/o timeout|connection refused|TLS handshake' "$out" \
	&& ! grep -q '^Vulnerability #' "$out"; then
	echo "govulncheck: skipped: vulnerability database unreachable ($db):"
	sed 's/^/  /' "$out" | tail -3
	exit 0
fi
cat "$out"
exit "$status"
