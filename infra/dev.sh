#!/usr/bin/env bash
# `make dev`: DynamoDB Local persisting to .local/dynamodb-data, and the dev server serving every
# route on http://127.0.0.1:${BILLING_PORT:-3000}. Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .local
port=${BILLING_PORT:-3000}
lock=.local/dev.pid

if [ -f "$lock" ] && kill -0 "$(cat "$lock")" 2>/dev/null; then
  echo "make dev is already running (pid $(cat "$lock"), on http://127.0.0.1:$(cat .local/dev.port 2>/dev/null || echo '?'))." >&2
  echo "Only one can run at a time (they share .local/dynamodb-data): stop it with Ctrl-C in its terminal first." >&2
  exit 1
fi
echo $$ >"$lock"
echo "$port" >.local/dev.port

ddb_pid=""
server_pid=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$ddb_pid" ] && kill "$ddb_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$lock" .local/dev.port
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash infra/dynamodb-local.sh install
echo "dev: building the dev server (the first build takes a few minutes)"
cargo build --quiet -p billing-core --bin dev-server

ddb_port=$(bash infra/free-port.sh)
echo "dev: starting DynamoDB Local on 127.0.0.1:$ddb_port (data in .local/dynamodb-data)"
ddb_pid=$(bash infra/dynamodb-local.sh start "$ddb_port" "$root/.local/dynamodb-data")

DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" BILLING_PORT="$port" \
  BILLING_TRIAL_SECONDS="${BILLING_TRIAL_SECONDS:-}" BILLING_PROMO_SECONDS="${BILLING_PROMO_SECONDS:-}" \
  BILLING_GRACE_SECONDS="${BILLING_GRACE_SECONDS:-}" BILLING_PERIOD_SECONDS="${BILLING_PERIOD_SECONDS:-}" \
  target/debug/dev-server &
server_pid=$!
wait "$server_pid"
