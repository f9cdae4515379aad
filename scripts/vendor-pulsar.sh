#!/usr/bin/env bash
# vendor/pulsar is pulsar-rs as published on crates.io plus a patch series: this script
# rebuilds it from the pristine crate (vendor/pristine/, committed, so it works offline) and
# vendor/patches/NNNN-*.patch (applied in order), and checks that the committed tree is
# exactly that. See vendor/README.md.
#
#   scripts/vendor-pulsar.sh check          fail unless vendor/pulsar = pristine + patches
#                                           (offline, about a second; scripts/test.sh runs it)
#   scripts/vendor-pulsar.sh apply          rewrite vendor/pulsar from pristine + patches
#   scripts/vendor-pulsar.sh workspace DIR  a git repository at DIR: the pristine source as
#                                           its first commit, then one commit per patch
#                                           (git am), to change a patch or add one
#   scripts/vendor-pulsar.sh export DIR     DIR's commits after the first become
#                                           vendor/patches (git format-patch), then apply
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=6.9.1
CRATE=vendor/pristine/pulsar-$VERSION.crate
# The checksum of pulsar 6.9.1 in the crates.io index (what a Cargo.lock records for it).
SHA256=e764221c5f6dfd98f7456ea8c5c341a88ebfb6f15fc9e2da902f74afca370c6d
PATCHES=vendor/patches
DEST=vendor/pulsar
# Not vendored: nothing a build of the library reads (patch 0001 drops the example targets).
OMIT=(.cargo_vcs_info.json .editorconfig .github .gitignore Cargo.lock Cargo.toml.orig
      examples rust-toolchain.toml)
# Commits made here (the pristine source, `git am`) need an identity; none is read from the user.
GIT=(git -c user.name=pulsar2mysql -c user.email=pulsar2mysql@localhost
     -c core.autocrlf=false -c commit.gpgsign=false)

die() { echo "vendor-pulsar: $*" >&2; exit 1; }

# Extracts the pristine crate, checksum verified, to $1 (which must not exist), minus OMIT,
# as a git repository whose first commit is that source.
pristine() {
  local dir=$1 sum
  [ -f "$CRATE" ] || die "$CRATE is missing"
  sum=$(sha256sum "$CRATE" | cut -d' ' -f1)
  [ "$sum" = "$SHA256" ] || die "$CRATE: sha256 $sum, expected $SHA256 (crates.io index)"
  mkdir -p "$dir"
  tar -xzf "$CRATE" -C "$dir" --strip-components=1 "pulsar-$VERSION"
  (cd "$dir" && rm -rf -- "${OMIT[@]}")
  "${GIT[@]}" -C "$dir" init -q
  "${GIT[@]}" -C "$dir" add -A
  "${GIT[@]}" -C "$dir" commit -q -m "pulsar-rs $VERSION as published on crates.io" \
    -m "Left out: ${OMIT[*]}"
}

# The patches, in order.
patches() {
  compgen -G "$PATCHES/[0-9][0-9][0-9][0-9]-*.patch" | sort || die "no patches in $PATCHES"
}

# Pristine + every patch, in $1 (a git work tree; its .git is not part of the result).
build() {
  local dir=$1 p
  pristine "$dir"
  while read -r p; do
    "${GIT[@]}" -C "$dir" apply --whitespace=nowarn "$PWD/$p" || die "$p does not apply"
  done < <(patches)
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "${1:-}" in
  check)
    build "$tmp/pulsar"
    if ! diff -r -q -x .git "$tmp/pulsar" "$DEST" >"$tmp/differ"; then
      cat "$tmp/differ" >&2
      die "$DEST is not pulsar-rs $VERSION + $PATCHES: put the change in a patch \
(scripts/vendor-pulsar.sh workspace DIR, commit there, then export DIR; vendor/README.md)"
    fi
    echo "vendor-pulsar: $DEST = pulsar-rs $VERSION + $(patches | wc -l) patches"
    ;;
  apply)
    build "$tmp/pulsar"
    rm -rf "$tmp/pulsar/.git" "$DEST"
    # New mtimes (not the tarball's), so that cargo sees every changed file as changed.
    cp -R "$tmp/pulsar" "$DEST"
    echo "vendor-pulsar: $DEST rebuilt from pulsar-rs $VERSION + $(patches | wc -l) patches"
    ;;
  workspace)
    dir=${2:?usage: $0 workspace DIR}
    [ ! -e "$dir" ] || die "$dir exists"
    pristine "$dir"
    mapfile -t series < <(patches)
    if ! "${GIT[@]}" -C "$dir" am -q "${series[@]/#/$PWD/}"; then
      echo "vendor-pulsar: a patch did not apply; resolve it in $dir (git am --show-current-patch," \
           "edit, git add, git am --continue), then: $0 export $dir" >&2
      exit 1
    fi
    echo "vendor-pulsar: $dir: pulsar-rs $VERSION, then one commit per patch; after changing it: $0 export $dir"
    ;;
  export)
    dir=${2:?usage: $0 export DIR}
    root=$(git -C "$dir" rev-list --max-parents=0 HEAD)
    rm -f "$PATCHES"/[0-9][0-9][0-9][0-9]-*.patch
    mkdir -p "$PATCHES"
    git -C "$dir" format-patch -q --zero-commit --no-signature --no-numbered \
      --filename-max-length=80 -o "$PWD/$PATCHES" "$root..HEAD"
    "$0" apply
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
