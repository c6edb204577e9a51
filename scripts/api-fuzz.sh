#!/usr/bin/env bash
# Property-based API testing with schemathesis (from PyPI) against a live
# shed-server on the real Docker engine: zero 5xx, and every response must
# match the OpenAPI spec the server publishes. Runs once without a token and
# once with one (so auth is checked too). Cleans up everything it created.
#
# positive_data_acceptance is left out: it expects every schema-valid request
# to succeed, but some are refused for reasons a schema cannot express (an
# image or a directory that does not exist, a repository that will not clone).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null; then
    echo "api-fuzz: installing schemathesis"
    # Debian's own python3 refuses system-wide installs (PEP 668); a user
    # install outside apt's files is what we want here.
    python3 -m pip install --quiet --disable-pip-version-check schemathesis 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages schemathesis
    export PATH="$HOME/.local/bin:$PATH"
    hash -r
fi
bash docker/build-test-image.sh shed-test:latest >/dev/null
cargo build --locked --quiet --bin shed-server

work=$(mktemp -d)
prefix="fuzz$$"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    docker ps -aq --filter "label=$prefix.shed=true" | xargs -r docker rm -f -v >/dev/null 2>&1 || true
    docker volume ls -q --filter "label=$prefix.shed=true" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

run_once() {
    local token="$1"
    cat > "$work/server.toml" <<CONF
name = "fuzz"
http_port = 0
ssh_port = 0
isolation_prefix = "$prefix"
default_image = "shed-test:latest"
data_dir = "$work/data"
authorized_keys = "$work/authorized_keys"
max_sessions_per_shed = 4
CONF
    [ -n "$token" ] && echo "api_token = \"$token\"" >> "$work/server.toml"
    ./target/debug/shed-server serve --config "$work/server.toml" > "$work/out" 2> "$work/log" &
    server_pid=$!
    for _ in $(seq 1 200); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.05; done
    local url
    url=$(grep -o 'http://[^ ]*' "$work/out")
    [ -n "$url" ] || { echo "api-fuzz: shed-server did not start"; cat "$work/log"; exit 1; }
    local auth=()
    [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
    echo "api-fuzz: schemathesis against $url ($([ -n "$token" ] && echo with || echo without) api_token)"
    # From the temp dir: schemathesis keeps a .schemathesis/ cache in its
    # working directory, which must not land in (and dirty) the repository.
    (cd "$work" && schemathesis run "$url/api/openapi.json" "${auth[@]}" \
        --checks all --exclude-checks positive_data_acceptance \
        --max-examples "${SHED_FUZZ_EXAMPLES:-25}" --workers 1 --seed 20261121 \
        --no-color)
    if grep -q "request failed" "$work/log"; then
        echo "api-fuzz: the server logged a 5xx:"; grep "request failed" "$work/log" | head -5
        exit 1
    fi
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

run_once ""
run_once "fuzz-token-$RANDOM$RANDOM"
echo "api-fuzz: 2 passed, 0 failed"
