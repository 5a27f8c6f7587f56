#!/usr/bin/env bash
# The performance comparison of issue 7 (`make bench` runs it after the Go benchmarks):
# builds Mailwright's static headless binary and the small programs under scripts/bench,
# then runs scripts/bench/driver, which starts the harness's Dovecot on 127.0.0.1, seeds
# it and times Mailwright against mbsync, fetchmail, curl, msmtp and bare go-imap /
# go-smtp loops, alternating A B C over several rounds. It writes a Markdown report (the
# section BENCHMARKS.md keeps) and exits 0 when every target is met, 1 when one is missed,
# 2 when the harness failed.
#
# BENCH_SMOKE=1 runs a smoke instead (`make test` does): every comparison at a tiny scale
# (200 messages, 1 round, no warm-up, 50 SMTP messages and 3 by msmtp, 20 OAuth logins, a
# 2 MiB message to parse, no profiling; a few seconds plus the build) in a fresh
# folder under $TMPDIR (default /tmp) that it removes afterwards, with every run's output
# still checked. Its numbers mean nothing; it exits 0 when the harness worked, whether or
# not targets were met, and 2 when anything failed (a tool missing, a build, a run, a
# check). It prints its report only when it fails, or with BENCH_VERBOSE=1.
#
# Needs the Debian packages of TEST_DEBS and BENCH_DEBS in the Makefile (`make bench`
# installs them; so must `make test`, for the smoke). Settings, from the environment:
#   BENCH_SMOKE=1     the smoke above; the settings below still apply, with the smoke's
#                     defaults (BENCH_SIZES 200, BENCH_ROUNDS 1, BENCH_MSMTP_N 3; BENCH_WORK
#                     is kept when given, BENCH_LARGE is ignored)
#   BENCH_LARGE=1     also run the IMAP and POP3 comparisons at 100,000 messages (about
#                     an hour more on 2 cores; the 10,000-message run takes about 7 minutes)
#   BENCH_SIZES=N,M   mailbox sizes instead (default 10000; 10000,100000 with BENCH_LARGE=1)
#   BENCH_ROUNDS=N    timed rounds per comparison (default 5)
#   BENCH_ONLY=LIST   comparisons: imap,pop3,smtp,parse,tokens (default: all)
#   BENCH_WORK=DIR    scratch folder on disk for downloads, logs and profiles (default: a
#                     new folder under /var/tmp, kept for inspection); emptied first
#   BENCH_REPORT=FILE the report (default $BENCH_WORK/report.md)
#   BENCH_DIAG=1      also time Mailwright's IMAP and POP3 downloads into /dev/shm (no
#                     fsync cost) as a diagnostic row without a target
#   BENCH_MSMTP_N=N   messages msmtp sends per round (default 200: one process and one
#                     delayed ACK per message, so 1,000 take about a minute; the
#                     comparison is per message)
#   BENCH_REV=TEXT    what to call the measured source in the report (default: git describe)
#   BENCH_VERBOSE=1   print every run, not only each round's summary
#   GO                the go command (default: go on PATH)
set -euo pipefail
# Any failure of this script itself (a build, a folder) is a harness failure: status 2, not
# the 1 of a missed target.
trap 'echo "bench: ${BASH_SOURCE[0]}:$LINENO failed (status $?): the benchmark harness failed" >&2; exit 2' ERR

GO=${GO:-go}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

smoke=
if [ "${BENCH_SMOKE:-}" = 1 ]; then
	smoke=1
fi

work=${BENCH_WORK:-}
if [ -z "$work" ]; then
	if [ -n "$smoke" ]; then
		work=$(mktemp -d "${TMPDIR:-/tmp}/mailwright-bench-smoke.XXXXXX")
		# Removed however the script ends (the driver has stopped its servers by then).
		trap 'rm -rf -- "$work"' EXIT
	else
		work=$(mktemp -d /var/tmp/mailwright-bench.XXXXXX)
	fi
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
bin="$work/bin"
mkdir -p "$bin"

if [ -n "$smoke" ]; then
	sizes=${BENCH_SIZES:-200}
	rounds=${BENCH_ROUNDS:-1}
	msmtp_n=${BENCH_MSMTP_N:-3}
else
	sizes=${BENCH_SIZES:-10000}
	if [ "${BENCH_LARGE:-}" = 1 ] && [ -z "${BENCH_SIZES:-}" ]; then
		sizes=10000,100000
	fi
	rounds=${BENCH_ROUNDS:-5}
	msmtp_n=${BENCH_MSMTP_N:-200}
fi

for tool in /usr/bin/time mbsync fetchmail curl msmtp /usr/sbin/dovecot; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench: $tool is missing; \`make bench\` installs it (BENCH_DEBS, TEST_DEBS in the Makefile)" >&2
		exit 2
	fi
done

echo "bench: building into $bin" >&2
built=$SECONDS
# Mailwright as servers run it: static, headless. The baselines and the profiling build
# (mwprof: the same CLI with a CPU profile) are built the same way.
CGO_ENABLED=0 "$GO" build -tags nogui -o "$bin/mailwright" .
CGO_ENABLED=0 "$GO" build -tags nogui -o "$bin/" ./scripts/bench/imapbare ./scripts/bench/smtpbare \
	./scripts/bench/tokens ./scripts/bench/mwprof ./scripts/bench/driver

# Which Mailwright is measured: the commit, "-dirty" when the tree has changes.
rev=${BENCH_REV:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)}

verbose=()
if [ "${BENCH_VERBOSE:-}" = 1 ]; then
	verbose=(-v)
fi
diag=()
if [ "${BENCH_DIAG:-}" = 1 ]; then
	diag=(-diag)
fi
smokeflag=()
if [ -n "$smoke" ]; then
	smokeflag=(-smoke)
fi
report=${BENCH_REPORT:-$work/report.md}
started=$SECONDS
trap - ERR
set +e
"$bin/driver" -bin "$bin" -work "$work" -sizes "$sizes" -rounds "$rounds" \
	-only "${BENCH_ONLY:-imap,pop3,smtp,parse,tokens}" -report "$report" \
	-msmtp-n "$msmtp_n" -go "$GO" -fyneapp "$root/FyneApp.toml" -rev "$rev" \
	"${smokeflag[@]}" "${diag[@]}" "${verbose[@]}"
status=$?
set -e

if [ -n "$smoke" ]; then
	# A smoke's report is only worth reading when it failed: it holds the error.
	if [ -f "$report" ] && { [ "$status" != 0 ] || [ "${BENCH_VERBOSE:-}" = 1 ]; }; then
		echo >&2
		cat "$report" >&2
	fi
	if [ "$status" = 0 ]; then
		echo "bench: smoke passed: the comparison harness works ($SECONDS s: build $((started - built)) s, runs $((SECONDS - started)) s; numbers not judged)" >&2
		exit 0
	fi
	if [ -n "${BENCH_WORK:-}" ]; then
		echo "bench: smoke FAILED: the benchmark harness is broken (status $status; logs: $work/logs)" >&2
	else
		echo "bench: smoke FAILED: the benchmark harness is broken (status $status; BENCH_WORK=DIR keeps the logs)" >&2
	fi
	exit 2
fi

if [ -f "$report" ]; then
	echo >&2
	cat "$report"
fi
case $status in
0) echo "bench: every target met (report: $report)" >&2 ;;
1) echo "bench: targets missed (report: $report)" >&2 ;;
*) echo "bench: the benchmark harness failed (logs: $work/logs)" >&2 ;;
esac
exit $status
