#!/usr/bin/env bash
# HTTP API load benchmark: `pipewise serve` on the demo org, driven by wrk
# (Debian package `wrk`) on loopback, bounded in time.
#
#   bash benches/api.sh [DURATION_SECONDS]     (default 10 per route)
#
# Needs a release build (`cargo build --release`), wrk and hey (Debian
# packages). Prints each route's latency percentiles at a fixed rate (hey:
# 1,000 requests/s for one deal, 200/s for list pages), then requests/s and
# latency at saturation (wrk: 2 threads, 16 connections) with the non-2xx
# count, and the server's peak resident memory.
set -euo pipefail
secs=${1:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/pipewise"
[ -x "${CARGO_TARGET_DIR:-}/release/pipewise" ] && bin="$CARGO_TARGET_DIR/release/pipewise"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v hey >/dev/null || { echo "hey not found: apt-get install -y hey" >&2; exit 1; }
server=""
work=$(mktemp -d)
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
"$bin" demo --out demo.db --data demo-data >/dev/null
rep_deal=$(sqlite3 demo.db "SELECT id FROM opportunities WHERE stage NOT LIKE 'closed%' LIMIT 1" 2>/dev/null || true)
tok=$("$bin" --db demo.db token create --user u-vp 2>/dev/null)
PIPEWISE_LOG=error "$bin" --db demo.db serve --addr 127.0.0.1:0 > serve.out 2>/dev/null &
server=$!
for _ in $(seq 1 100); do grep -q http:// serve.out 2>/dev/null && break; sleep 0.2; done
base=$(grep -o 'http://[0-9.:]*' serve.out | head -1)
if [ -z "$rep_deal" ]; then
  rep_deal=$(curl -s -H "Authorization: Bearer $tok" "$base/api/v1/opportunities?limit=1" | sed -n 's/.*"items":\[{"id":"\([^"]*\)".*/\1/p')
fi
# The background analyses (coaching, leads, evidence stage, forecast) first.
for _ in $(seq 1 600); do
  curl -s "$base/health" | grep -q computing || break
  sleep 1
done
curl -s -o /dev/null -H "Authorization: Bearer $tok" "$base/api/v1/forecast"
echo "pipewise on $(nproc) cores; demo org; ${secs}s per route and load"
fixed() { # path, total requests/s (10 workers)
  echo "== GET $1 at $2 requests/s (hey)"
  hey -z "${secs}s" -c 10 -q $(( $2 / 10 )) -H "Authorization: Bearer $tok" "$base$1" \
    | grep -E "Requests/sec|50% in|90% in|99% in|^  \[[0-9]{3}\]"
}
fixed "/api/v1/opportunities/$rep_deal" 1000
fixed "/api/v1/opportunities?limit=50" 200
fixed "/api/v1/opportunities?limit=500&sort=-win_probability" 200
fixed "/api/v1/forecast?by=team" 200
fixed "/api/v1/pipeline/inspection?limit=50" 200
fixed "/api/v1/coaching" 50
echo "-- at saturation (wrk 2 threads, 16 connections)"
for path in "/health" "/api/v1/opportunities/$rep_deal" "/api/v1/opportunities?limit=50" "/api/v1/opportunities?limit=500&sort=-win_probability" "/api/v1/forecast?by=team"; do
  echo "== GET $path"
  wrk -t2 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $tok" "$base$path" \
    | grep -E "Requests/sec|Latency  |50%|90%|99%|Non-2xx|Socket errors|requests in"
done
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
