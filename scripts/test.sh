#!/usr/bin/env bash
# The whole test suite: unit tests, handler tests over a fake backend, and
# integration tests against the real Docker engine, tmux and ssh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-prereqs.sh
# The production image, which tests/base_image.rs checks; built here so its
# step timings show in the log (a few minutes cold, seconds when cached).
bash docker/build-base-image.sh
cargo test --locked "$@"
# The session suite once more with the control channels off: the exec path
# is the fallback, so it must keep working on its own.
SHED_TEST_CONTROL_MODE=false cargo test --locked --test sessions
# The API against its own OpenAPI spec, fuzzed with schemathesis.
exec bash scripts/api-fuzz.sh
