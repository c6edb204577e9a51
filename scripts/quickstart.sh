#!/usr/bin/env bash
# Builds shed, makes sure the base image exists, installs the binaries to
# ~/.cargo/bin, and runs shed-server in the foreground on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh

# The real base image, from a registry or, without one, from Debian's
# packages: a few minutes the first time; after that Docker's cache makes it
# a second, and an image from an older Dockerfile is brought up to date.
# Never the test image: it lacks the tools a person or an agent expects.
if [ "$(docker image inspect --format '{{index .Config.Labels "shed.test-image"}}' \
    shed-base:latest 2>/dev/null)" = true ]; then
    echo "quickstart: shed-base:latest is the test image an earlier quickstart made; replacing it"
fi
bash docker/build-base-image.sh shed-base:latest

cargo install --locked --path . --root "${CARGO_HOME:-$HOME/.cargo}"
# The gateway reads data_dir/authorized_keys, not ~/.ssh/authorized_keys.
echo "quickstart: let a key in with: shed-server keys add ~/.ssh/id_ed25519.pub"
# The same first-run commands as README.md's Quick start (tests/readme.rs runs those).
echo "quickstart: then add this server to the CLI with:" \
    "shed server add 127.0.0.1 --identity ~/.ssh/id_ed25519 --fingerprint \"\$(shed-server host-key)\""
echo "quickstart: starting shed-server (Ctrl-C to stop)"
exec "${CARGO_HOME:-$HOME/.cargo}/bin/shed-server" serve "$@"
