#!/usr/bin/env bash
# `make package`: every function built for AWS (arm64, release) as target/lambda/<name>/bootstrap.zip,
# cross-compiled with cargo-lambda and zig from PyPI (TLS is rustls only, so no OpenSSL is needed),
# then checked against template.yaml, whose CodeUris name these zips.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash infra/python-tools.sh package
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu
export PATH="$root/.tools/venv/bin:$PATH"
echo "package: cargo lambda build --release --arm64 --output-format zip -p functions (all functions)"
cargo lambda build --release --arm64 --output-format zip -p functions
.tools/venv/bin/python infra/check-package.py
