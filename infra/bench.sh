#!/usr/bin/env bash
# `make bench` (all), `make bench-init` (cold start, sizes, memory) or `make bench-ledger`
# (ledger latency and throughput): builds what the benchmark measures, starts DynamoDB Local,
# and writes the numbers to docs/BENCHMARKS.md. `make bench` also packages every function first
# so the init table has each zip's size.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
which=${1:-all}
step() { printf '\n==> %s\n' "$*"; }

case "$which" in
  all | init | ledger) ;;
  *) echo "usage: infra/bench.sh [all|init|ledger]" >&2; exit 2 ;;
esac

if [ "$which" = all ]; then
  step "arm64 packages (zip sizes)"
  bash infra/package.sh
fi

bash infra/dynamodb-local.sh install
ddb_port=$(bash infra/free-port.sh)
ddb_pid=$(bash infra/dynamodb-local.sh start "$ddb_port")
trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT

if [ "$which" != ledger ]; then
  step "release binaries for this machine: every function and the hello-world baseline"
  cargo build --release -p functions -p billing-tests --bins
  step "lambda-init: sizes, init time against hello-world, first request and peak RSS per function"
  DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" TABLE_NAME=bench SERVICE_KEY=bk_bench_service_key STAGE=local \
    cargo bench -p billing-tests --bench lambda-init
fi

if [ "$which" != init ]; then
  step "ledger: debit latency vs bare writes, write units, hot-account throughput"
  DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port" cargo bench -p billing-tests --bench ledger
fi
