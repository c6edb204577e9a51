#!/usr/bin/env bash
# Builds shed, makes sure the base image exists, installs the binaries to
# ~/.cargo/bin, and runs shed-server in the foreground on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh

if ! docker image inspect shed-base:latest >/dev/null 2>&1; then
    echo "quickstart: building shed-base:latest from docker/Dockerfile"
    if ! docker build -t shed-base:latest docker/; then
        # No registry reachable: build an equivalent image from this host's binaries.
        echo "quickstart: docker build failed (no registry?); building shed-base:latest from host binaries"
        bash docker/build-test-image.sh shed-base:latest
    fi
fi

cargo install --locked --path . --root "${CARGO_HOME:-$HOME/.cargo}"
echo "quickstart: starting shed-server (Ctrl-C to stop)"
exec "${CARGO_HOME:-$HOME/.cargo}/bin/shed-server" serve "$@"
