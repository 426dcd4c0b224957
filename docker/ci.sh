#!/usr/bin/env bash
# Build and run docker/Dockerfile with podman on a CI machine that reaches no image registry
# (tests/test_container.py drives it; usable by hand, as root):
#
#   export PULSE_CI_DIR=$(mktemp -d)          # all podman storage and config live here
#   docker/ci.sh prepare                      # podman, runc, debootstrap; containers.conf
#   docker/ci.sh base                         # stand-in for the pinned base -> prints its name
#   docker/ci.sh build localhost/pulse:ci     # docker/Dockerfile on the stand-in
#   docker/ci.sh podman run --rm --network=none localhost/pulse:ci --cores 2 ...
#   docker/ci.sh clean                        # remove every image, container and file made here
#
# The stand-in base: the pinned base (nvidia/cuda:...-base-ubuntu24.04@sha256:...) can't be pulled
# here, so an Ubuntu 24.04 (noble) minbase made with debootstrap takes its place: same release,
# same python3, same apt. One CI-only layer on top trusts the build machine's CA bundle and
# points pip at the index the host's pip uses: the shipped Dockerfile never sees either.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PULSE_CI_DIR:?set PULSE_CI_DIR to an empty temporary directory}"
SUITE=noble
STANDIN=localhost/pulse-ci/ubuntu-standin:$SUITE
BASE=localhost/pulse-ci/base:$SUITE
export CONTAINERS_CONF=$PULSE_CI_DIR/containers.conf
export CONTAINERS_STORAGE_CONF=$PULSE_CI_DIR/storage.conf
export TMPDIR=$PULSE_CI_DIR/tmp

log() { printf '[docker/ci.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

prepare() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    mkdir -p "$PULSE_CI_DIR"/{storage,run,tmp}
    # Rootful podman in a sandbox: no raising RLIMIT_NOFILE past the hard limit, cgroups v1.
    cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$PULSE_CI_DIR/storage"
runroot = "$PULSE_CI_DIR/run"
EOF
    podman --version >&2
}

# The host pip's settings that the build must share: its CA bundle and its index (never named here).
host_pip() { python3 -m pip config get "$1" 2>/dev/null || true; }

base() {
    if ! podman image exists "$STANDIN"; then
        local rootfs=$PULSE_CI_DIR/rootfs script=$SUITE
        # debootstrap knows noble by name from 1.0.132; older ones run it with the gutsy script
        # (every Ubuntu release since 7.10) and the script's default mirror.
        [[ -e /usr/share/debootstrap/scripts/$SUITE ]] || script=/usr/share/debootstrap/scripts/gutsy
        log "debootstrap --variant=minbase $SUITE (the Ubuntu keyring is not packaged in Debian: the stand-in's Release files are not signature-checked; apt inside it checks them)"
        debootstrap --variant=minbase --no-check-gpg --components=main,universe "$SUITE" "$rootfs" "" "$script" \
            >"$PULSE_CI_DIR/debootstrap.log" 2>&1 || { tail -30 "$PULSE_CI_DIR/debootstrap.log" >&2; exit 1; }
        # Like ubuntu:24.04: the updates pocket too, and no apt caches.
        sed -n 's/^deb \(\S*\) '"$SUITE"' \(.*\)$/deb \1 '"$SUITE"'-updates \2/p' \
            "$rootfs/etc/apt/sources.list" >>"$rootfs/etc/apt/sources.list"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" --numeric-owner -c . | podman import --quiet - "$STANDIN" >/dev/null
        rm -rf "$rootfs"
    fi
    local layer=$PULSE_CI_DIR/ci-layer cert index
    mkdir -p "$layer"
    cert=${PIP_CERT:-$(host_pip global.cert)}
    cert=${cert:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
    cp "$cert" "$layer/host-ca.pem"
    index=${PIP_INDEX_URL:-$(host_pip global.index-url)}
    {
        echo "[global]"
        echo "cert = /usr/local/share/pulse-ci/host-ca.pem"
        [[ -z $index ]] || echo "index-url = $index"
    } >"$layer/pip.conf"
    log "CI layer: host CA bundle $cert; pip index: ${index:-the default, as on the host}"
    cat >"$layer/Containerfile" <<EOF
FROM $STANDIN
COPY host-ca.pem /usr/local/share/pulse-ci/host-ca.pem
COPY pip.conf /etc/pip.conf
EOF
    podman build --quiet --pull=never --network=none -t "$BASE" "$layer" >/dev/null
    echo "$BASE"
}

build() {
    local tag=${1:?image tag}
    log "podman build $tag on $BASE"
    podman build --pull=never --network=host --format docker --layers=false \
        --build-arg "BASE_IMAGE=$BASE" --build-arg "PULSE_GIT_COMMIT=$(git -C "$REPO" rev-parse HEAD 2>/dev/null)" \
        -f "$REPO/docker/Dockerfile" -t "$tag" "$REPO" >&2
}

clean() {
    if [[ -f $CONTAINERS_STORAGE_CONF ]]; then
        podman rm --all --force >/dev/null 2>&1 || true
        podman rmi --all --force >/dev/null 2>&1 || true
        podman volume prune --force >/dev/null 2>&1 || true
    fi
    # overlay mounts left behind would keep files busy
    grep -o "$PULSE_CI_DIR[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "${PULSE_CI_DIR:?}"/{storage,run,tmp,rootfs,ci-layer}
}

command=${1:?usage: docker/ci.sh prepare|base|build TAG|podman ARGS...|clean}
shift
case $command in
    prepare) prepare ;;
    base) base ;;
    build) build "$@" ;;
    podman) exec podman "$@" ;;
    clean) clean ;;
    *) echo "unknown command: $command" >&2; exit 2 ;;
esac
