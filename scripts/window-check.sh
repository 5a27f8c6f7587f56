#!/usr/bin/env bash
# Opens the real window under Xvfb, measures how long until it is mapped, and saves a
# screenshot: scripts/window-check.sh [BINARY] [OUT.png]. `make window-check` runs it
# (installing xvfb, x11-utils and imagemagick first).
set -euo pipefail
bin=${1:-bin/mailwright}
out=${2:-docs/screenshots/window.png}
data=$(mktemp -d)
display=:$((90 + RANDOM % 9))
Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 &
xvfb=$!
cleanup() { kill "$app" "$xvfb" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 100); do xwininfo -display "$display" -root >/dev/null 2>&1 && break; sleep 0.05; done
start=$(date +%s%N)
DISPLAY=$display MAILWRIGHT_DATA_DIR=$data "$bin" &
app=$!
for _ in $(seq 400); do
	if xwininfo -display "$display" -root -tree 2>/dev/null | grep -q '"Mailwright"'; then break; fi
	kill -0 "$app" 2>/dev/null || { echo "window-check: the app exited" >&2; exit 1; }
	sleep 0.01
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
xwininfo -display "$display" -root -tree | grep -q '"Mailwright"' || { echo "window-check: no window after 4 s" >&2; exit 1; }
echo "window-check: window mapped after ${ms} ms"
sleep 1 # let the first frame draw
import -display "$display" -window root "$out"
echo "window-check: screenshot $out"
[ "$ms" -lt 2000 ] || { echo "window-check: slower than 2 s" >&2; exit 1; }
