#!/usr/bin/env bash
# The whole test suite: unit tests, handler tests over a fake backend, and
# integration tests against the real Docker engine, tmux and ssh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
cargo test --locked "$@"
# The API against its own OpenAPI spec, fuzzed with schemathesis.
exec bash scripts/api-fuzz.sh
