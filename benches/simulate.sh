#!/usr/bin/env bash
# Simulator benchmark: ~1,000,000 opportunities with their activities, and the
# demo end to end. Prints wall time and peak memory of each.
#   bash benches/simulate.sh [REPS]     (8000 reps over 24 months ≈ 1M opportunities)
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-8000}"
cargo build --release -q
bin="${CARGO_TARGET_DIR:-target}/release/pipewise"
out="$(mktemp -d)"
measure() {
  python3 - "$@" <<'PY'
import os, subprocess, sys, time
t = time.time()
p = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(p.pid, 0)
print(f"  {time.time() - t:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB, exit {os.waitstatus_to_exitcode(status)}", file=sys.stderr)
PY
}
echo "simulate --reps $reps --months 24 (no transcripts):" >&2
measure "$bin" simulate --reps "$reps" --months 24 --transcript-share 0 --vtt-sample 0 --out "$out/big" --json > "$out/summary.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('  rows:', dict(d['rows']))" "$out/summary.json" >&2
rm -rf "$out/big"
echo "demo (simulate 40 reps x 24 months, import, summarise):" >&2
(cd "$out" && measure "$OLDPWD/$bin" demo > /dev/null)
rm -rf "$out"
