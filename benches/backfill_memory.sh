#!/usr/bin/env bash
# Peak memory of `serve` while `leadbridge import` streams backfill files of
# growing size into it. Constant memory means the peak does not grow with the
# file. Usage: benches/backfill_memory.sh [MB ...]   (default: 10 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="$PWD/target/release/leadbridge"
sizes=("${@:-10 100 1000}")
# shellcheck disable=SC2206
sizes=(${sizes[*]})
printf '%8s %10s %9s %12s %14s\n' "file MB" "lines" "seconds" "lines/s" "peak RSS MiB"
for mb in "${sizes[@]}"; do
  work=$(mktemp -d)
  python3 - "$work/clients.ndjson" "$mb" <<'PY'
import json, sys
path, mb = sys.argv[1], int(sys.argv[2])
target = mb * 1024 * 1024
with open(path, "w") as f:
    i, written = 0, 0
    while written < target:
        line = json.dumps({"clientId": i, "email": f"client{i}@example.com",
            "info": {"firstName": "Jane", "lastName": f"Doe {i}"},
            "phones": [{"number": f"+3579{i:07d}", "confirmed": True}],
            "addresses": [{"type": "residential", "country": "Cyprus", "countryCode": "CY",
                           "city": "Limassol", "address": f"{i} Main St", "postcode": "3035"}],
            "status": {"id": 1, "name": "Active"}}) + "\n"
        f.write(line); written += len(line); i += 1
PY
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$work" && LEADBRIDGE_LISTEN="127.0.0.1:$port" LEADBRIDGE_LOG_FORMAT=json exec "$bin" serve >"$work/log" 2>&1) &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  token=$(cat "$work/leadbridge.db.admin-token")
  curl -fsS -X POST "http://127.0.0.1:$port/v1/connections" -H "Authorization: Bearer $token" \
    -d '{"name": "acme", "company": "Acme"}' >/dev/null
  start=$(date +%s.%N)
  out=$(cd "$work" && LEADBRIDGE_LISTEN="127.0.0.1:$port" "$bin" import clients.ndjson --connection acme)
  end=$(date +%s.%N)
  lines=$(echo "$out" | sed -n 's/^read \([0-9]*\),.*/\1/p')
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "import sys; mb,l,s,h=sys.argv[1:]; s=float(s); print(f'{mb:>8} {l:>10} {s:9.1f} {int(l)/s:12.0f} {int(h)/1024:14.1f}')" \
    "$mb" "$lines" "$(echo "$end - $start" | bc)" "$hwm"
  rm -rf "$work"
done
