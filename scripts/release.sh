#!/usr/bin/env bash
# Every release artifact, in one command (`make release`), into dist/:
#   pulsar2mysql-<version>-<target>.tar.gz   the stripped binary, the Airflow DAGs, an example
#                                            config and the READMEs, under pulsar2mysql-<version>/
#   pulsar2mysql_<version>-1_<arch>.deb      the same as a Debian package (cargo-deb): /usr/bin,
#                                            /usr/share/pulsar2mysql/{airflow/dags,*.example.toml}
#   pulsar2mysql-<version>-src.tar.gz        the sources (`git archive`; builds without .git,
#                                            `--version` still names the commit)
#   pulsar2mysql-<version>-image.tar.gz      the container image (docker/Dockerfile built with
#                                            podman, scripts/podman.sh), for `docker load`
#   SHA256SUMS
# The binary is built with the release profile (stripped, no debug info); `--version` names the
# version and the commit (build.rs).
#
#   P2M_DIST_DIR          [<repo>/dist]     where the artifacts go
#   P2M_RELEASE_PROFILE   [release]         cargo profile (the tests use `dev` to package the
#                                           debug build they already have)
#   P2M_RELEASE_IMAGE     [auto]            1: build the image, 0: skip it, auto: build it when
#                                           podman is there or can be installed (Debian)
#   P2M_RELEASE_SAVE_IMAGE [1]              0: build the image but do not write its tarball
#   CARGO_DEB_VERSION     [3.8.0]           installed with `cargo install` when missing
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$P2M_REPO_DIR"

PROFILE=${P2M_RELEASE_PROFILE:-release}
DIST=$(realpath -m "${P2M_DIST_DIR:-$P2M_REPO_DIR/dist}")
CARGO_DEB_VERSION=${CARGO_DEB_VERSION:-3.8.0}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
TARGET=$(rustc -vV | sed -n 's/^host: //p')
NAME=pulsar2mysql-$VERSION
case $PROFILE in
    dev) profile_dir=debug ;;
    *) profile_dir=$PROFILE ;;
esac
started=$SECONDS

log "building the binary (profile $PROFILE)"
cargo build --locked --profile "$PROFILE" --bin pulsar2mysql
BIN=${CARGO_TARGET_DIR:-$P2M_REPO_DIR/target}/$profile_dir/pulsar2mysql
"$BIN" --version

mkdir -p "$DIST"
# Only what this script writes: P2M_DIST_DIR may be a folder with other files.
rm -rf "${DIST:?}/$NAME" "$DIST"/pulsar2mysql-*.tar.gz "$DIST"/pulsar2mysql_*.deb "$DIST/SHA256SUMS"

# ---- tarball ---------------------------------------------------------------------------------
stage=$DIST/$NAME
mkdir -p "$stage/bin" "$stage/share/pulsar2mysql/airflow/dags" "$stage/share/pulsar2mysql/prometheus"
cp "$BIN" "$stage/bin/pulsar2mysql"
# The release profile strips already; a dev build is stripped here.
strip "$stage/bin/pulsar2mysql"
cp airflow/dags/*.py "$stage/share/pulsar2mysql/airflow/dags/"
cp airflow/alerts/pulsar2mysql.rules.yml "$stage/share/pulsar2mysql/prometheus/"
cp examples/pulsar2mysql.toml "$stage/share/pulsar2mysql/pulsar2mysql.example.toml"
cp README.md "$stage/README.md"
cp airflow/README.md "$stage/share/pulsar2mysql/airflow/README.md"
tar -C "$DIST" --owner=0 --group=0 --sort=name -czf "$DIST/$NAME-$TARGET.tar.gz" "$NAME"
log "tarball: $DIST/$NAME-$TARGET.tar.gz"

# ---- .deb ------------------------------------------------------------------------------------
if [[ $(cargo deb --version 2>/dev/null) != *"$CARGO_DEB_VERSION"* ]]; then
    log "installing cargo-deb $CARGO_DEB_VERSION (cargo install, once)"
    cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
cargo deb --no-build --profile "$PROFILE" --strip --quiet --output "$DIST" >/dev/null
log "deb: $(ls "$DIST"/*.deb)"

# ---- source tarball --------------------------------------------------------------------------
if git rev-parse --git-dir >/dev/null 2>&1; then
    if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
        warn "uncommitted changes: the source tarball holds HEAD ($(git rev-parse --short=12 HEAD)), not the work tree"
    fi
    git archive --format=tar.gz --prefix="$NAME/" -o "$DIST/$NAME-src.tar.gz" HEAD
    log "sources: $DIST/$NAME-src.tar.gz"
else
    warn "not a git checkout: no source tarball"
fi

# ---- image -----------------------------------------------------------------------------------
want_image=${P2M_RELEASE_IMAGE:-auto}
if [[ $want_image == auto ]]; then
    if command -v podman >/dev/null || command -v apt-get >/dev/null; then want_image=1; else want_image=0; fi
fi
if [[ $want_image == 1 ]]; then
    image=$(P2M_HOST_BINARY="$stage/bin/pulsar2mysql" scripts/podman.sh image)
    if [[ ${P2M_RELEASE_SAVE_IMAGE:-1} == 1 ]]; then
        scripts/podman.sh podman save --format docker-archive "$image" | gzip -1 >"$DIST/$NAME-image.tar.gz"
        log "image: $image, saved as $DIST/$NAME-image.tar.gz"
    else
        log "image: $image"
    fi
else
    log "image skipped (P2M_RELEASE_IMAGE=$want_image)"
fi

rm -rf "$stage"
(cd "$DIST" && sha256sum -- *.tar.gz *.deb >SHA256SUMS)
log "release artifacts in $DIST ($((SECONDS - started))s):"
ls -l "$DIST" >&2
