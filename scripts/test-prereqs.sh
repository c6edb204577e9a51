#!/usr/bin/env bash
# scripts/prereqs.sh plus what the tests and the API fuzzer need on the host.
# Sourced by scripts/test.sh and .ci/run; scripts/quickstart.sh leaves these
# out, since running shed needs none of them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"

missing=()
# The test image (docker/build-test-image.sh) is assembled from these host
# binaries, and the tests drive a host tmux and ssh.
command -v tmux >/dev/null || missing+=(tmux)
command -v git >/dev/null || missing+=(git)
command -v flock >/dev/null || missing+=(util-linux)
command -v ldd >/dev/null || missing+=(libc-bin)
command -v tput >/dev/null || missing+=(ncurses-bin)
command -v ps >/dev/null || missing+=(procps)
# Forwarding tests need a listener inside the test image; the image copies this nc.
command -v nc >/dev/null || missing+=(netcat-openbsd)
# tests/readme.rs runs the README in a network namespace of its own, with curl.
command -v unshare >/dev/null || missing+=(util-linux)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
command -v curl >/dev/null || missing+=(curl)
# schemathesis (scripts/api-fuzz.sh) comes from PyPI through pip.
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# tests/web.rs drives the web page in a real headless Chromium over WebDriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium chromium-driver)
# A font with CJK glyphs, so the screenshots show the terminal test's 日本
# instead of empty boxes (Debian's chromium brings none).
[ -e /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || missing+=(fonts-droid-fallback)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "prereqs: installing ${missing[*]} for the tests"
    apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
fi
