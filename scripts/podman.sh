#!/usr/bin/env bash
# Container images on this machine, without a registry: Debian's podman with runc, a Debian
# base image made locally with mmdebstrap, storage under the cache dir.
#
# usage: scripts/podman.sh env      print `export ...` lines (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF)
#        scripts/podman.sh base     make localhost/debian:bookworm-slim if it is missing (cached)
#        scripts/podman.sh image    the base, then build the runtime image localhost/pulsar2mysql:<version>
#                                   from docker/Dockerfile with a binary built on the host
#                                   (BINARY_FROM=host: $P2M_HOST_BINARY, default
#                                   target/release/pulsar2mysql, built first if missing)
#        scripts/podman.sh podman ARGS...   podman with this configuration
#
# Why this set-up (the defaults fail here): crun fails on this machine's rlimits and hybrid
# cgroups, so runc with cgroupfs; no systemd/journald, so the file events logger; the default
# ulimits must stay within the hard limits a non-root container may have. Only Debian's mirror
# is reachable, so the base image is `mmdebstrap --variant=minbase bookworm` imported with
# `podman import` (about a minute, once: the tarball and podman's storage stay in
# $P2M_CACHE_DIR/podman). Real users build with `docker build -f docker/Dockerfile .` and the
# Dockerfile's defaults (Docker Hub's rust and debian images).
#
#   P2M_CACHE_DIR      [<repo>/.cache]
#   P2M_IMAGE          [localhost/pulsar2mysql:<version>]
#   P2M_BASE_IMAGE     [localhost/debian:bookworm-slim]
#   P2M_HOST_BINARY    [<repo>/target/release/pulsar2mysql]
#   DEBIAN_MIRROR      [http://deb.debian.org/debian]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PODMAN_DIR=$P2M_CACHE_DIR/podman
CONF=$PODMAN_DIR/containers.conf
STORAGE_CONF=$PODMAN_DIR/storage.conf
BASE_IMAGE=${P2M_BASE_IMAGE:-localhost/debian:bookworm-slim}
# Bump when the recipe in ensure_base changes: a cached tarball or image of another recipe is
# made again.
BASE_RECIPE=5
BASE_TAR=$PODMAN_DIR/debian-bookworm-slim-r$BASE_RECIPE.tar
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$P2M_REPO_DIR/Cargo.toml" | head -n1)
IMAGE=${P2M_IMAGE:-localhost/pulsar2mysql:$VERSION}

ensure_podman() {
    local pkgs=(podman runc mmdebstrap) missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2 || die "apt-get could not install ${missing[*]}"
}

write_conf() {
    mkdir -p "$PODMAN_DIR"
    local hard
    hard=$(ulimit -Hn)
    [[ $hard == unlimited ]] && hard=1048576
    cat >"$CONF.tmp" <<EOF
# Written by scripts/podman.sh
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
EOF
    mv -f "$CONF.tmp" "$CONF"
    cat >"$STORAGE_CONF.tmp" <<EOF
# Written by scripts/podman.sh: podman's images and layers live in the cache dir.
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
EOF
    mv -f "$STORAGE_CONF.tmp" "$STORAGE_CONF"
}

export CONTAINERS_CONF=$CONF CONTAINERS_STORAGE_CONF=$STORAGE_CONF

pm() { podman "$@"; }

ensure_base() {
    if pm image exists "$BASE_IMAGE" &&
        [[ $(pm image inspect --format '{{ index .Config.Labels "p2m.base-recipe" }}' "$BASE_IMAGE") == "$BASE_RECIPE" ]]; then
        return 0
    fi
    if [[ ! -s $BASE_TAR ]]; then
        log "making the base image's root file system with mmdebstrap (once, about a minute)"
        # mmdebstrap picks the output format from the name: keep .tar at the end.
        # Like Docker Hub's debian:bookworm-slim: no documentation, manual pages or
        # translations, no apt lists, and without usrmerge and the perl it pulls in (the tree stays
        # merged-/usr); CA certificates come from the Dockerfile's own apt-get,
        # as they do for real users.
        as_root mmdebstrap --quiet --variant=minbase \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --customize-hook='chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl libperl5.36 perl-modules-5.36 >/dev/null' \
            --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' bookworm \
            "$BASE_TAR.partial.tar" "deb $DEBIAN_MIRROR bookworm main" "deb $DEBIAN_MIRROR bookworm-updates main" \
            "deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main" >&2
        mv -f "$BASE_TAR.partial.tar" "$BASE_TAR"
    fi
    log "importing $BASE_TAR as $BASE_IMAGE"
    pm import --change 'CMD ["/bin/bash"]' --change "LABEL p2m.base-recipe=$BASE_RECIPE" \
        "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}

build_image() {
    local bin=${P2M_HOST_BINARY:-$P2M_REPO_DIR/target/release/pulsar2mysql} commit context
    if [[ ! -x $bin ]]; then
        log "building the release binary"
        (cd "$P2M_REPO_DIR" && cargo build --release --quiet --bin pulsar2mysql)
    fi
    commit=$("$bin" --version | sed -n 's/.*(commit \(.*\))$/\1/p')
    # The binary reaches the build as the named context `host` (docker/Dockerfile).
    context=$(mktemp -d)
    cp "$bin" "$context/pulsar2mysql"
    log "building $IMAGE from docker/Dockerfile (base $BASE_IMAGE, binary $bin)"
    pm build --pull=never --network host --quiet \
        --build-arg BASE="$BASE_IMAGE" --build-arg BINARY_FROM=host \
        --build-arg GIT_COMMIT="$commit" --build-context host="$context" \
        -f "$P2M_REPO_DIR/docker/Dockerfile" -t "$IMAGE" "$P2M_REPO_DIR" >&2 || {
        rm -rf "$context"
        die "podman build failed"
    }
    rm -rf "$context"
    # The image this build replaced and the binary stage are left untagged: drop them, or the
    # cache dir grows by a binary per build (the cached layers stay, they are in use).
    pm image prune -f >/dev/null || true
    echo "$IMAGE"
}

case ${1:-} in
    env)
        write_conf
        printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q P2M_IMAGE=%q\n' \
            "$CONF" "$STORAGE_CONF" "$IMAGE"
        ;;
    base)
        ensure_podman
        write_conf
        ensure_base
        ;;
    image)
        ensure_podman
        write_conf
        ensure_base
        build_image
        ;;
    podman)
        shift
        write_conf
        pm "$@"
        ;;
    *)
        sed -n '2,22p' "$0" >&2
        exit 2
        ;;
esac
