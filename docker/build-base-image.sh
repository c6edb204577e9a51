#!/usr/bin/env bash
# Builds shed-base:latest, the default image for sheds, from docker/Dockerfile,
# with or without a container registry.
#
# Usage: docker/build-base-image.sh [--rebuild] [TAG]
#
#   TAG        image to create or replace (default: shed-base:latest)
#   --rebuild  make the Debian base again with debootstrap, even if the default
#              base image or an earlier local one exists, and build without
#              Docker's layer cache
#
# The base image is the Dockerfile's default (ARG BASE, debian:bookworm-slim)
# when Docker has it or can pull it. Otherwise a minimal Debian root
# filesystem is made with debootstrap from the Debian mirror in this host's
# apt sources and imported as shed-debian:RELEASE; later runs reuse that tag.
# SHED_DEBIAN_RELEASE and SHED_DEBIAN_MIRROR override the release and mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "build-base-image: $*"; }
die() {
    echo "build-base-image: error: $*" >&2
    exit 1
}
usage() {
    echo "usage: $0 [--rebuild] [TAG]" >&2
    exit 2
}

REBUILD=0
TAG=
for arg in "$@"; do
    case $arg in
        --rebuild) REBUILD=1 ;;
        -h | --help) usage ;;
        -*) echo "build-base-image: unknown option: $arg" >&2; usage ;;
        *)
            [[ -z $TAG ]] || usage
            TAG=$arg
            ;;
    esac
done
TAG=${TAG:-shed-base:latest}

command -v docker >/dev/null 2>&1 || die "docker CLI not found"

# One place says what the default base is: the Dockerfile itself.
DEFAULT_BASE=$(sed -n 's/^ARG BASE=\(.*\)$/\1/p' docker/Dockerfile | head -n 1)
[[ -n $DEFAULT_BASE ]] || die "docker/Dockerfile has no 'ARG BASE=...' line"

# Every step says how long it took, so a slow mirror or a cold cache is
# visible instead of looking like a hang.
timed() {
    local what=$1 start=$SECONDS
    shift
    log "$what ..."
    "$@"
    log "$what: done in $((SECONDS - start)) s"
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The host's release, so the image matches what the host's mirror serves;
# on a non-Debian host, the Dockerfile's default release.
debian_release() {
    if [[ -n ${SHED_DEBIAN_RELEASE:-} ]]; then
        echo "$SHED_DEBIAN_RELEASE"
        return
    fi
    local id="" codename=""
    if [[ -r /etc/os-release ]]; then
        id=$(. /etc/os-release && echo "${ID:-}")
        codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    fi
    if [[ $id == debian && -n $codename ]]; then
        echo "$codename"
    else
        echo bookworm
    fi
}

# The first Debian archive URI in the host's apt sources (deb822 or
# one-line format) that serves RELEASE itself; mirrors that carry only
# -security or -updates suites cannot bootstrap a system.
debian_mirror() {
    local release=$1
    if [[ -n ${SHED_DEBIAN_MIRROR:-} ]]; then
        echo "$SHED_DEBIAN_MIRROR"
        return
    fi
    local found
    found=$(
        {
            for f in /etc/apt/sources.list.d/*.sources; do
                [[ -r $f ]] || continue
                # Each stanza's URIs and Suites, joined into one line per stanza.
                awk -v RS= '{
                    uris = ""; suites = ""
                    n = split($0, lines, "\n")
                    for (i = 1; i <= n; i++) {
                        if (lines[i] ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", lines[i]); uris = lines[i] }
                        if (lines[i] ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", lines[i]); suites = lines[i] }
                    }
                    split(uris, u, /[ \t]+/)
                    print u[1] " " suites
                }' "$f"
            done
            for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [[ -r $f ]] || continue
                # "deb [options] URI SUITE COMPONENTS..."
                sed -n 's/^[ \t]*deb[ \t]\+\(\[[^]]*\][ \t]\+\)\?\([^ \t]\+\)[ \t]\+\([^ \t]\+\).*/\2 \3/p' "$f"
            done
        } | awk -v r="$release" '{ for (i = 2; i <= NF; i++) if ($i == r) { print $1; exit } }'
    )
    echo "${found:-http://deb.debian.org/debian}"
}

# The security archive beside the mirror, so the image gets security updates
# the way a stock Debian image does.
security_mirror() {
    local mirror=$1
    case $mirror in
        */debian) echo "${mirror%/debian}/debian-security" ;;
        *) echo "http://deb.debian.org/debian-security" ;;
    esac
}

ensure_debootstrap() {
    # A non-root user's PATH often lacks the sbin directories it lives in.
    PATH=$PATH:/usr/sbin:/sbin
    command -v debootstrap >/dev/null 2>&1 && return
    log "installing debootstrap"
    # As apt_install in scripts/prereqs.sh, which this does not source: its
    # tool checks are for running shed, not for building images.
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends debootstrap
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap did not install"
}

WORK=""
cleanup() {
    # debootstrap leaves root-owned files and, if interrupted, mounts.
    if [[ -n $WORK && -d $WORK ]]; then
        local m
        for m in proc sys dev/pts dev; do
            if mountpoint -q "$WORK/rootfs/$m" 2>/dev/null; then
                as_root umount -l "$WORK/rootfs/$m" || true
            fi
        done
        as_root rm -rf --one-file-system -- "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_root_file() { # PATH MODE: standard input becomes PATH, owned by root
    as_root tee "$1" >/dev/null
    as_root chmod "$2" "$1"
}

make_rootfs() {
    local release=$1 mirror=$2 root=$3
    as_root debootstrap --variant=minbase "$release" "$root" "$mirror"
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
        "$mirror" "$release" "$mirror" "$release" "$(security_mirror "$mirror")" "$release" |
        write_root_file "$root/etc/apt/sources.list" 0644
    # Image layers keep whatever apt leaves behind, so downloaded packages and
    # apt's binary caches must not outlive the RUN that made them (about
    # 125 MB for the shed image); documentation is left out as in Debian's
    # slim images, except the copyright files.
    printf '%s\n' 'APT::Keep-Downloaded-Packages "false";' \
        'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' |
        write_root_file "$root/etc/apt/apt.conf.d/90shed-image" 0644
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' |
        write_root_file "$root/etc/dpkg/dpkg.cfg.d/90shed-image" 0644
    # No daemons started by package scripts during image builds.
    printf '#!/bin/sh\nexit 101\n' | write_root_file "$root/usr/sbin/policy-rc.d" 0755
    as_root find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    as_root rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    # Docker provides these at run time.
    as_root truncate -s 0 "$root/etc/hostname" "$root/etc/resolv.conf"
}

import_rootfs() {
    local root=$1 tag=$2
    as_root tar --numeric-owner -C "$root" -c . |
        docker import --change 'CMD ["bash"]' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            - "$tag" >/dev/null
}

total_start=$SECONDS
base=""
release=$(debian_release)
local_base="shed-debian:$release"
if [[ $REBUILD -eq 0 ]]; then
    if have_image "$DEFAULT_BASE"; then
        base=$DEFAULT_BASE
        log "base: $base (present locally)"
    elif have_image "$local_base"; then
        base=$local_base
        log "base: $base (made earlier with debootstrap; --rebuild makes it again)"
    elif docker pull "$DEFAULT_BASE" >/dev/null 2>&1; then
        base=$DEFAULT_BASE
        log "base: $base (pulled)"
    fi
fi
if [[ -z $base ]]; then
    mirror=$(debian_mirror "$release")
    log "base: making $local_base with debootstrap ($release from $mirror)"
    ensure_debootstrap
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/shed-base-image.XXXXXX")
    timed "debootstrap $release" make_rootfs "$release" "$mirror" "$WORK/rootfs"
    timed "docker import $local_base" import_rootfs "$WORK/rootfs" "$local_base"
    cleanup
    WORK=""
    base=$local_base
fi

build_flags=()
[[ $REBUILD -eq 0 ]] || build_flags+=(--no-cache)
timed "docker build $TAG (FROM $base)" \
    docker build "${build_flags[@]}" --build-arg "BASE=$base" -t "$TAG" docker/
log "$TAG is ready ($((SECONDS - total_start)) s in all)"
