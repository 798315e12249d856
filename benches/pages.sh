#!/usr/bin/env bash
# Dashboard page benchmark: each page's latency (p50, p95, p99) over a
# signed-in browser session, on loopback, for a rep, a manager and the
# director of an org.
#
#   bash benches/pages.sh [DB] [REQUESTS]     (default: the demo org; 200 per page)
#
# DB is any trained pipewise database (e.g. a 500-rep org:
# `pipewise simulate --seed 501 --reps 500 --months 24 --out sim`, then
# `import dir sim` and `train`). Needs a release build and hey (Debian
# package `hey`). Requests run two at a time (the machine's two cores);
# the server's background analyses finish first, and each page is loaded
# once before it is timed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/pipewise"
[ -x "${CARGO_TARGET_DIR:-}/release/pipewise" ] && bin="$CARGO_TARGET_DIR/release/pipewise"
command -v hey >/dev/null || { echo "hey not found: apt-get install -y hey" >&2; exit 1; }
n=${2:-200}
server=""
work=$(mktemp -d)
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
if [ -n "${1:-}" ]; then
  cp "$1" "$work/org.db"
  label="$(basename "$1")"
else
  (cd "$work" && "$bin" demo --out org.db --data demo-data >/dev/null)
  label="demo org"
fi
cd "$work"
q() { sqlite3 org.db "$1"; }
director=$(q "SELECT id FROM users WHERE role = 'director' ORDER BY id LIMIT 1")
manager=$(q "SELECT m.id FROM users m WHERE m.role = 'manager' AND EXISTS (SELECT 1 FROM users r WHERE r.manager_id = m.id) ORDER BY m.id LIMIT 1")
rep=$(q "SELECT id FROM users WHERE role = 'rep' AND manager_id = '$manager' ORDER BY id LIMIT 1")
deal=$(q "SELECT id FROM opportunities WHERE owner_id = '$rep' AND stage NOT LIKE 'closed%' ORDER BY amount DESC LIMIT 1")
call=$(q "SELECT id FROM conversations WHERE user_id = '$rep' ORDER BY started_at DESC LIMIT 1")
"$bin" --db org.db user grant-admin "$director" >/dev/null
for u in "$director" "$manager" "$rep"; do
  PIPEWISE_PASSWORD="bench password $u" "$bin" --db org.db user set-password "$u" >/dev/null
done
PIPEWISE_LOG=error "$bin" --db org.db serve --addr 127.0.0.1:0 > serve.out 2>/dev/null &
server=$!
for _ in $(seq 1 600); do grep -q http:// serve.out 2>/dev/null && break; sleep 0.2; done
base=$(grep -o 'http://[0-9.:]*' serve.out | head -1)
started=$(date +%s)
for _ in $(seq 1 3600); do
  curl -s "$base/health" | grep -q computing || break
  sleep 1
done
echo "pipewise dashboard on $(nproc) cores; $label ($(q "SELECT count(*) FROM users WHERE role = 'rep'") reps, $(q "SELECT count(*) FROM opportunities WHERE stage NOT LIKE 'closed%'") open deals); analyses ready in $(( $(date +%s) - started )) s; $n requests per page, 2 at a time"
sid() { # user → session cookie
  curl -s -o /dev/null -D - --data-urlencode "user_id=$1" --data-urlencode "password=bench password $1" "$base/sign-in" \
    | sed -n 's/^[Ss]et-[Cc]ookie: pipewise_session=\([^;]*\);.*/\1/p'
}
page() { # role cookie path
  curl -s -o /dev/null -H "Cookie: pipewise_session=$2" "$base$3"
  printf '%-9s %-42s ' "$1" "$3"
  hey -n "$n" -c 2 -H "Cookie: pipewise_session=$2" "$base$3" \
    | awk '$1=="50%" {p50=$3} $1=="95%" {p95=$3} $1=="99%" {p99=$3} /\[200\]/ {ok=$2}
           END {printf "p50 %6.1f ms  p95 %6.1f ms  p99 %6.1f ms  200s %s\n", p50*1000, p95*1000, p99*1000, ok}'
}
for who in rep manager director; do
  case $who in rep) u=$rep ;; manager) u=$manager ;; director) u=$director ;; esac
  c=$(sid "$u")
  [ -n "$c" ] || { echo "cannot sign in as $u" >&2; exit 1; }
  page $who "$c" "/"
  page $who "$c" "/deals"
  page $who "$c" "/deals?evidence=ahead&sort=-amount"
  page $who "$c" "/deals/$deal"
  page $who "$c" "/forecast"
  page $who "$c" "/coaching/$rep"
  [ "$who" = rep ] || page $who "$c" "/coaching"
  page $who "$c" "/calls"
  [ -n "$call" ] && page $who "$c" "/calls/$call"
  page $who "$c" "/reps"
  page $who "$c" "/leads"
  if [ "$who" = director ]; then
    page $who "$c" "/admin/audit"
    page $who "$c" "/admin/models"
  fi
done
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
