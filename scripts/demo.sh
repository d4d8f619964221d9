#!/usr/bin/env bash
# Demo on loopback: certificates, a collector with mTLS, an agent tailing a
# sample nginx log over TLS, then a few searches. Everything lives in
# ./demo-run and both daemons stop when the demo ends.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/$BUILD"
RUN="$ROOT/demo-run"
LOGHAUL="$BIN/cli/loghaul"

rm -rf "$RUN"
mkdir -p "$RUN"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# wait_for FILE REGEX: prints the first capture group once FILE has a match.
wait_for() {
    for _ in $(seq 1 200); do
        if m=$(sed -nE "s/.*$2.*/\1/p" "$1" 2>/dev/null | head -n1) && [ -n "$m" ]; then
            echo "$m"
            return 0
        fi
        sleep 0.05
    done
    echo "demo: timed out waiting for '$2' in $1" >&2
    cat "$1" >&2
    return 1
}

echo "== making certificates in demo-run/certs"
"$LOGHAUL" certs "$RUN/certs"

cat > "$RUN/collector.yaml" <<YAML
collector:
  name: demo-collector
  data_dir: $RUN/collector
listen:
  forward:
    address: 127.0.0.1:0
    tls: {enabled: true, ca: $RUN/certs/ca.pem, cert: $RUN/certs/server.pem,
          key: $RUN/certs/server-key.pem, require_client_cert: true}
  http:
    address: 127.0.0.1:0
YAML
"$BIN/collector/loghaul-collector" -c "$RUN/collector.yaml" 2>"$RUN/collector.log" &
pids+=($!)
FWD=$(wait_for "$RUN/collector.log" 'forward listening on ([^ ]+)')
API=$(wait_for "$RUN/collector.log" 'http listening on ([^ ]+)')
echo "== collector: forward (mTLS) on $FWD, API on http://$API"

echo "== writing a sample nginx access log"
python3 "$ROOT/tests/bench/gen_corpus.py" --kind nginx --lines 2000 --seed 7 --out "$RUN/access.log"

cat > "$RUN/agent.yaml" <<YAML
agent:
  name: demo-web-1
  data_dir: $RUN/agent
  http: 127.0.0.1:0
inputs:
  - type: file
    tag: nginx.access
    paths: ["$RUN/*.log"]
    exclude: ["collector.log", "agent.log"]
    read_from: head
outputs:
  - type: forward
    collectors: ["$FWD"]
    tls: {enabled: true, ca: $RUN/certs/ca.pem, cert: $RUN/certs/client.pem,
          key: $RUN/certs/client-key.pem, verify: true}
    compress: gzip
YAML
"$BIN/agent/loghaul-agent" -c "$RUN/agent.yaml" 2>"$RUN/agent.log" &
pids+=($!)
echo "== agent shipping demo-run/access.log over mTLS"

for _ in $(seq 1 300); do
    n=$(curl -fsS "http://$API/metrics" | sed -nE 's/^loghaul_collector_records_in_total ([0-9]+)/\1/p')
    [ "${n:-0}" -ge 2000 ] && break
    sleep 0.1
done
echo "== collector has acknowledged ${n:-0} records"

show() {
    echo
    printf '$ loghaul search'
    printf " %q" "$@"
    echo
    "$LOGHAUL" search -s "http://$API" "$@"
}
show --limit 3 -o json '*'
show --limit 5 -o text '503 OR 502'
show --limit 3 -o text '"POST /api"'
echo
echo "The demo stops both daemons now. Their configs, logs and certificates stay in"
echo "demo-run/ to read; conf/*.yaml are the configs the packages install."
