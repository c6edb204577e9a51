#!/usr/bin/env bash
# Build a small local Docker image for shed's integration tests without any
# registry access: the root filesystem is assembled from the host's own
# binaries and shared libraries and fed to `docker import`.
#
# Usage: docker/build-test-image.sh [--no-tmux] [--force] [TAG]
#
#   TAG        image tag to create or replace (default: shed-test:latest)
#   --no-tmux  leave tmux out of the image, to exercise the
#              "tmux not available" error path
#   --force    build even when TAG already matches the recipe
#
# The image is labelled with a hash of its recipe (this script, its options,
# and the host programs and libraries it copies); when TAG already carries
# that hash the build is skipped, so every test binary of a run, and every
# later run, reuses one image until the script or a host package changes.
# Builds of any tag are serialized by a lock, so parallel callers neither
# race nor build the same image twice.
#
# The host must have bash, dash, coreutils, grep, sed, git and (unless
# --no-tmux) tmux installed. Nothing is installed by this script.
set -euo pipefail

usage() {
    echo "usage: $0 [--no-tmux] [--force] [TAG]" >&2
    exit 2
}

die() {
    echo "build-test-image: error: $*" >&2
    exit 1
}

warn() {
    echo "build-test-image: warning: $*" >&2
}

WITH_TMUX=1
FORCE=0
TAG=
for arg in "$@"; do
    case $arg in
        --no-tmux) WITH_TMUX=0 ;;
        --force) FORCE=1 ;;
        -h | --help) usage ;;
        -*) echo "build-test-image: unknown option: $arg" >&2; usage ;;
        *)
            [[ -z $TAG ]] || usage
            TAG=$arg
            ;;
    esac
done
TAG=${TAG:-shed-test:latest}

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
command -v ldd >/dev/null 2>&1 || die "ldd not found (install the 'libc-bin' package)"

# System directories first, so that a tool shadowed in /usr/local (or in a
# user's ~/.cargo/bin, pyenv shims, ...) does not leak into the image when the
# distribution's own build exists.
LOOKUP_DIRS=(/usr/bin /bin /usr/sbin /sbin /usr/local/bin /usr/local/sbin)

find_bin() {
    local dir
    for dir in "${LOOKUP_DIRS[@]}"; do
        if [[ -f $dir/$1 && -x $dir/$1 ]]; then
            printf '%s\n' "$dir/$1"
            return 0
        fi
    done
    return 1
}

# The programs copied into the image: NAME required|optional PACKAGE.
PROGRAMS=(
    "bash required bash"
    "dash required dash"
)
for tool in sleep cat echo ls head printf env id mkdir rm true false stty wc tr sort date; do
    PROGRAMS+=("$tool required coreutils")
done
PROGRAMS+=("grep required grep" "sed required sed")
for tool in tail cut tee touch cp mv ln chmod chown pwd stat test '[' uname \
    dirname basename readlink realpath mktemp uniq expr nohup timeout tty \
    whoami hostname seq yes sha256sum md5sum base64 du df nproc sync; do
    PROGRAMS+=("$tool optional coreutils")
done
for tool in tput clear; do PROGRAMS+=("$tool optional ncurses-bin"); done
for tool in ps kill pgrep pkill; do PROGRAMS+=("$tool optional procps"); done
for tool in find xargs; do PROGRAMS+=("$tool optional findutils"); done
PROGRAMS+=(
    "awk optional awk"
    "diff optional diffutils"
    "locale optional libc-bin"
    "getent optional libc-bin"
    "nc optional netcat-openbsd"
)
if [[ $WITH_TMUX == 1 ]]; then
    PROGRAMS+=("tmux required tmux")
fi

# --- reuse --------------------------------------------------------------------

# One lock for every build on this machine, taken before the image is
# inspected: a second caller waits, then finds the image already current.
LOCK=${SHED_TEST_IMAGE_LOCK:-/tmp/shed-test-image.lock}
if command -v flock >/dev/null 2>&1; then
    exec {lock_fd}>>"$LOCK"
    flock "$lock_fd"
else
    warn "flock not found (package 'util-linux'); parallel builds may race"
fi

FAKE_AGENT=$(dirname -- "${BASH_SOURCE[0]}")/fake-agent.sh
[[ -f $FAKE_AGENT ]] || die "$FAKE_AGENT not found"

# The hash covers what decides the image's contents: this script, its
# options, and the content of every host program it copies (git included)
# with the libraries they load. Terminfo and locale files are not hashed;
# --force rebuilds after changing only those.
recipe_hash() {
    local entry name path
    local -a files=("${BASH_SOURCE[0]}" "$FAKE_AGENT")
    for entry in "${PROGRAMS[@]}" "sh required dash" "git required git"; do
        name=${entry%% *}
        if path=$(find_bin "$name"); then
            files+=("$(readlink -f -- "$path")")
        else
            printf 'missing %s\n' "$name"
        fi
    done
    printf 'with-tmux=%s\n' "$WITH_TMUX"
    printf '%s\n' "${files[@]}"
    # ldd prints each library's resolved path: hash those files too.
    local -a libs
    mapfile -t libs < <({ ldd "${files[@]:1}" 2>/dev/null || true; } |
        sed -n 's/.*=> \(\/[^ ]*\) (.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' | sort -u)
    files+=("${libs[@]}")
    sha256sum -- "${files[@]}" | cut -d' ' -f1
}
RECIPE=$(recipe_hash | sha256sum | cut -d' ' -f1)
if [[ $FORCE == 0 ]]; then
    current=$(docker image inspect --format '{{index .Config.Labels "shed.test-recipe"}}' "$TAG" 2>/dev/null || true)
    if [[ $current == "$RECIPE" ]]; then
        echo "$TAG"
        exit 0
    fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shed-test-image.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
ROOT=$WORK/rootfs
mkdir -p "$ROOT"

# copy_path PATH [dironly]
#
# Recreate the host path PATH inside $ROOT. Symlinks (including symlinked
# parent directories such as /lib -> usr/lib or /lib64 -> usr/lib64) are
# recreated verbatim and then followed, so that hard-coded paths like the ELF
# interpreter /lib64/ld-linux-x86-64.so.2 resolve inside the container exactly
# as they do on the host. Directories are copied recursively unless "dironly"
# is given, in which case only the (empty) directory is created.
copy_path() {
    local p=$1 mode=${2:-full}
    [[ $p == /* ]] || die "copy_path: not an absolute path: $p"
    [[ -e $p || -L $p ]] || die "path missing on host: $p"

    local parent=${p%/*} base=${p##*/}
    [[ -n $parent ]] || parent=/
    link_parents "$parent"

    local cparent
    cparent=$(readlink -f -- "$parent")
    cparent=${cparent%/}
    local src=$cparent/$base dst=$ROOT$cparent/$base
    mkdir -p -- "$ROOT$cparent"

    if [[ -L $src ]]; then
        [[ -L $dst || -e $dst ]] && return 0
        local target
        target=$(readlink -- "$src")
        ln -s -- "$target" "$dst"
        [[ $target == /* ]] || target=$cparent/$target
        if [[ -d $target ]]; then
            copy_path "$target" "$mode"
        else
            copy_path "$target"
        fi
    elif [[ -d $src ]]; then
        mkdir -p -- "$dst"
        if [[ $mode == full ]]; then
            # cp -a keeps relative symlinks and hard links inside the tree
            # (git-core is mostly links to the main git binary).
            cp -a -- "$src/." "$dst/"
        fi
    else
        [[ -L $dst || -e $dst ]] && return 0
        cp -p -- "$src" "$dst"
    fi
}

# Recreate every symlinked directory along the absolute directory path $1.
link_parents() {
    local dir=$1 cur="" comp
    local -a comps
    IFS=/ read -ra comps <<<"${dir#/}"
    for comp in "${comps[@]}"; do
        [[ -n $comp ]] || continue
        cur+=/$comp
        if [[ -L $cur ]]; then
            copy_path "$cur" dironly
        fi
    done
}

is_elf() {
    local magic
    [[ -f $1 ]] || return 1
    LC_ALL=C IFS= read -r -n 4 magic <"$1" 2>/dev/null || true
    [[ $magic == $'\x7f'ELF ]]
}

# Copy every shared library that the ELF file $1 needs (as resolved by the
# host's dynamic loader), including the loader itself.
declare -A LIBS_DONE=()
add_libs() {
    local f=$1 line lib
    is_elf "$f" || return 0
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            *"=> not found"*) die "$f: shared library not found on host: ${line%% *}" ;;
            *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
            /*) lib=${line%% (*} ;;
            *) continue ;;
        esac
        [[ -n ${LIBS_DONE[$lib]:-} ]] && continue
        LIBS_DONE[$lib]=1
        copy_path "$lib"
    done < <(ldd "$f" 2>/dev/null || true)
}

# add_bin NAME required|optional [PACKAGE]
add_bin() {
    local name=$1 need=$2 pkg=${3:-$1} path
    if ! path=$(find_bin "$name"); then
        if [[ $need == required ]]; then
            die "'$name' not found on host; install the '$pkg' package"
        fi
        return 0
    fi
    copy_path "$path"
    add_libs "$(readlink -f -- "$path")"
}

# --- filesystem skeleton ----------------------------------------------------

# Mirror the host's merged-/usr layout (/bin -> usr/bin, /lib64 -> usr/lib64,
# ...) so binaries and their hard-coded interpreter paths work unchanged.
for d in bin sbin lib lib32 lib64 libx32; do
    if [[ -L /$d ]]; then
        copy_path "/$d" dironly
    fi
done
mkdir -p "$ROOT"/{etc,dev,proc,sys,run,root,home/shed,workspace,tmp,var/tmp} \
    "$ROOT"/usr/{bin,sbin,lib} "$ROOT"/usr/local/{bin,sbin} "$ROOT/srv/git"
chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
chmod 0700 "$ROOT/root"
chmod 0755 "$ROOT/home/shed" "$ROOT/workspace"

# --- programs -----------------------------------------------------------------

for entry in "${PROGRAMS[@]}"; do
    read -r name need pkg <<<"$entry"
    add_bin "$name" "$need" "$pkg"
    if [[ $name == dash ]]; then
        # /bin/sh is whatever the host uses (dash on Debian/Ubuntu).
        copy_path /bin/sh
        add_libs "$(readlink -f /bin/sh)"
    fi
done

# git: the main binary plus its exec-path (git-core), where git looks for the
# dashed helpers it spawns during a clone (git-upload-pack for file:// and
# local transports, git-remote-http{,s} for http(s), git-sh-setup for the
# shell-script commands, ...).
GIT_BIN=$(find_bin git) || die "'git' not found on host; install the 'git' package"
GIT_EXEC_PATH=$("$GIT_BIN" --exec-path) || die "'$GIT_BIN --exec-path' failed"
[[ -d $GIT_EXEC_PATH ]] || die "git exec-path $GIT_EXEC_PATH does not exist"
copy_path "$GIT_BIN"
add_libs "$(readlink -f -- "$GIT_BIN")"
copy_path "$GIT_EXEC_PATH"
exec_root=$ROOT$(readlink -f -- "$GIT_EXEC_PATH")
# Server-side and rarely used helpers: big, and never needed by a coding agent
# cloning or fetching inside its container.
for helper in scalar git-daemon git-http-backend git-http-push git-imap-send git-instaweb; do
    rm -f -- "$exec_root/$helper"
done
find "$exec_root" -xtype l -delete
while IFS= read -r -d '' f; do
    add_libs "$f"
done < <(find "$exec_root" -type f -print0)
# Templates for git init/clone (otherwise every clone warns about them).
git_share=$(dirname -- "$(dirname -- "$(readlink -f -- "$GIT_EXEC_PATH")")")/share/git-core
if [[ -d $git_share/templates ]]; then
    copy_path "$git_share/templates"
fi

# glibc dlopen()s libgcc_s for thread cancellation / unwinding; ldd cannot
# see that dependency.
libc_in_root=$(find "$ROOT" -name 'libc.so.6' -print -quit)
if [[ -n $libc_in_root ]]; then
    libdir=$(dirname -- "${libc_in_root#"$ROOT"}")
    if [[ -e $libdir/libgcc_s.so.1 ]]; then
        copy_path "$libdir/libgcc_s.so.1"
    fi
fi

# --- terminfo and locale ----------------------------------------------------

found_terminfo=0
for term in xterm xterm-256color screen screen-256color tmux tmux-256color vt100 linux dumb; do
    for dir in /etc/terminfo /lib/terminfo /usr/share/terminfo; do
        entry=$dir/${term:0:1}/$term
        if [[ -e $entry ]]; then
            copy_path "$entry"
            found_terminfo=1
        fi
    done
done
[[ $found_terminfo == 1 ]] || warn "no terminfo entries found on host (package 'ncurses-base')"

# C.UTF-8 so tmux treats the terminal as UTF-8 and git/coreutils behave the
# same as in the production image.
locale_found=0
for loc in /usr/lib/locale/C.utf8 /usr/lib/locale/C.UTF-8; do
    if [[ -e $loc ]]; then
        copy_path "$loc"
        locale_found=1
    fi
done
[[ $locale_found == 1 ]] || warn "C.UTF-8 locale not found under /usr/lib/locale; LANG=C.UTF-8 will fall back to C"

# --- /etc ---------------------------------------------------------------------

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
shed:x:1000:1000:shed:/home/shed:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
tty:x:5:
shed:x:1000:
nogroup:x:65534:
EOF
cat >"$ROOT/etc/nsswitch.conf" <<'EOF'
passwd:    files
group:     files
shadow:    files
hosts:     files dns
networks:  files
protocols: files
services:  files
EOF
chmod 0644 "$ROOT/etc/passwd" "$ROOT/etc/group" "$ROOT/etc/nsswitch.conf"
printf '/bin/sh\n/bin/bash\n/bin/dash\n' >"$ROOT/etc/shells"
# The test repository is owned by root but cloned by both root and uid 1000;
# newer git refuses to serve a repository owned by someone else.
# The url rule lets a test clone through a URL with credentials in it
# (https://user:s3cret@git.invalid/hello.git) without any network.
cat >"$ROOT/etc/gitconfig" <<'EOF'
[safe]
	directory = /srv/git/hello.git
[url "/srv/git/"]
	insteadOf = https://user:s3cret@git.invalid/
EOF

# Loader cache for the copied libraries, in case the host relies on
# /etc/ld.so.conf.d for paths outside the loader's built-in search list.
if [[ -e /etc/ld.so.conf ]]; then
    cp -p /etc/ld.so.conf "$ROOT/etc/ld.so.conf"
    if [[ -d /etc/ld.so.conf.d ]]; then
        cp -a /etc/ld.so.conf.d "$ROOT/etc/"
    fi
    ldconfig_bin=$(find_bin ldconfig) || ldconfig_bin=
    if [[ -n $ldconfig_bin ]]; then
        "$ldconfig_bin" -X -r "$ROOT" 2>/dev/null || warn "ldconfig -r failed; continuing without ld.so.cache"
    fi
fi

# --- test repository ----------------------------------------------------------

# Deterministic commit (fixed identity and dates, host git config ignored) so
# every build produces the same repository.
repo_src=$WORK/hello
(
    export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
    export GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
    g=("$GIT_BIN" -c user.name=shed -c user.email=shed@example.invalid -c commit.gpgsign=false)
    "${g[@]}" init -q -b main "$repo_src"
    printf 'hello from shed test repo\n' >"$repo_src/README.md"
    "${g[@]}" -C "$repo_src" add README.md
    "${g[@]}" -C "$repo_src" commit -q -m 'Initial commit'
    "${g[@]}" clone -q --bare --no-local "$repo_src" "$ROOT/srv/git/hello.git"
    rm -f -- "$ROOT"/srv/git/hello.git/hooks/*.sample
)

# --- fake agents --------------------------------------------------------------

# One script under every agent's name: the name picks the screens it draws.
mkdir -p "$ROOT/opt/fake-agents"
for agent in claude codex opencode aider gemini; do
    install -m 0755 -- "$FAKE_AGENT" "$ROOT/opt/fake-agents/$agent"
done

# --- import -------------------------------------------------------------------

# Everything is owned by root except the shed user's home and /workspace; set
# ownership in the tar stream rather than with chown so the script also works
# for a non-root user in the docker group.
tarball=$WORK/rootfs.tar
tar -C "$ROOT" -c -f "$tarball" --numeric-owner --owner=0 --group=0 \
    --exclude=./home/shed --exclude=./workspace .
tar -C "$ROOT" -r -f "$tarball" --numeric-owner --owner=1000 --group=1000 \
    ./home/shed ./workspace

if [[ $WITH_TMUX == 1 ]]; then
    message="shed test image (host binaries, with tmux)"
else
    message="shed test image (host binaries, without tmux)"
fi
old_id=$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
new_id=$(docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL shed.test-image=true' \
    --change "LABEL shed.test-recipe=$RECIPE" \
    --change 'WORKDIR /workspace' \
    --change 'CMD ["sleep","infinity"]' \
    --message "$message" \
    - "$TAG" <"$tarball")
# Re-running moves the tag; drop the previous image so repeated test runs do
# not pile up dangling images. It may still be in use by a container, in
# which case it is simply kept.
if [[ -n $old_id && $old_id != "$new_id" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi

echo "$TAG"
