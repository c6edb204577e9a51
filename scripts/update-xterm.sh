#!/usr/bin/env bash
# Re-vendors xterm.js into src/web/assets/vendor/xterm/ from PyPI's webssh
# sdist, which ships upstream xterm.js 4.x UMD builds. npm is not reachable
# from where shed is built, and Debian's libjs-xterm (3.8.1) ships only a
# CommonJS stub, so a pinned PyPI sdist is the registry copy we can check.
#
# The build never runs this: the files it extracts are committed. Run it to
# prove the committed files are the registry's, or (after changing the pins
# below on purpose) to move to another release; then update README.md there.
set -euo pipefail

WEBSSH_VERSION=1.6.3
SDIST_SHA256=2bce5bbaf206ad345910c7e4dc8024b3c418e681c9f5ff098f1802beff76e100
# Path in the sdist | name in vendor/xterm | sha256
FILES=(
    "webssh/static/js/xterm.min.js|xterm.js|96a52b10e7bf0ae6150588b72649fe4335116c5a98ddafe608037234ab653178"
    "webssh/static/css/xterm.min.css|xterm.css|09ae6bd4cc0f559c4c77b5cec7451ae686fd815d09c586cfd819630cd25709f9"
    "webssh/static/js/xterm-addon-fit.min.js|xterm-addon-fit.js|247435fe116bb4230fc7d45b34f4cf1478dd3adc63fdcdae33daba5b32795a59"
)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/src/web/assets/vendor/xterm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps --no-binary :all: \
    --dest "$work" "webssh==$WEBSSH_VERSION"
sdist="$work/webssh-$WEBSSH_VERSION.tar.gz"
echo "$SDIST_SHA256  $sdist" | sha256sum --check --quiet ||
    { echo "update-xterm: $sdist does not have the pinned sha256" >&2; exit 1; }

tar -xzf "$sdist" -C "$work"
mkdir -p "$dest"
for entry in "${FILES[@]}"; do
    IFS='|' read -r from to sum <<<"$entry"
    src="$work/webssh-$WEBSSH_VERSION/$from"
    echo "$sum  $src" | sha256sum --check --quiet ||
        { echo "update-xterm: $from does not have the pinned sha256" >&2; exit 1; }
    cp "$src" "$dest/$to"
    echo "update-xterm: $to <- webssh $WEBSSH_VERSION $from"
done
