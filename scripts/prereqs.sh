#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and run shed, and makes
# sure a Docker engine answers (installing docker.io and starting dockerd if
# none does). Sourced by scripts/quickstart.sh; scripts/test-prereqs.sh adds
# what the tests need on top.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

missing=()
# The CLI reaches sheds with the system's ssh; keys are made with ssh-keygen.
command -v ssh >/dev/null || missing+=(openssh-client)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "prereqs: installing ${missing[*]}"
    apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
fi

if ! command -v cargo >/dev/null; then
    echo "prereqs: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 1
fi

if ! docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null; then
        echo "prereqs: no Docker engine answers; installing docker.io"
        apt_install docker.io
    fi
    if ! docker info >/dev/null 2>&1; then
        echo "prereqs: starting dockerd"
        as_root sh -c 'nohup dockerd >/var/log/shed-dockerd.log 2>&1 &'
        for _ in $(seq 1 120); do
            docker info >/dev/null 2>&1 && break
            sleep 0.5
        done
    fi
    if ! docker info >/dev/null 2>&1; then
        echo "prereqs: the Docker engine did not come up; see /var/log/shed-dockerd.log" >&2
        exit 1
    fi
fi
