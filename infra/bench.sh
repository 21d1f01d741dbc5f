#!/usr/bin/env bash
# `make bench`: builds what the benchmarks measure, starts DynamoDB Local, and writes the numbers
# to docs/BENCHMARKS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*"; }

step "arm64 packages (zip sizes)"
bash infra/package.sh
step "release binaries for this machine (init time and memory)"
cargo build --release -p functions

bash infra/dynamodb-local.sh install
ddb_port=$(bash infra/free-port.sh)
ddb_pid=$(bash infra/dynamodb-local.sh start "$ddb_port")
trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT

step "lambda-init: sizes, init time and peak RSS per function"
DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" TABLE_NAME=bench SERVICE_KEY=bk_bench_service_key STAGE=local \
  cargo bench -p billing-tests --bench lambda-init

step "ledger: debit latency vs bare writes, write units, hot-account throughput"
DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" cargo bench -p billing-tests --bench ledger
