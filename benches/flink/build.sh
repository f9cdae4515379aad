#!/usr/bin/env bash
# Builds the Flink peer (benches/flink: a shaded jar, target/flink-peer.jar) with Maven, once:
# the jar is rebuilt only when pom.xml or a source file changed. The first build downloads
# Flink and the connectors from Maven Central into ~/.m2 (~110 MiB, ~1-3 min). Installs a JDK
# and Maven from Debian if they are missing. Prints the jar's path on stdout.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
log() { printf '[flink-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
    log "installing a JDK and Maven (Debian)"
    sudo_=(); [[ $(id -u) -eq 0 ]] || sudo_=(sudo)
    "${sudo_[@]}" apt-get update -qq >&2
    "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        openjdk-17-jdk-headless maven >&2
fi

JAR="$HERE/target/flink-peer.jar"
STAMP="$HERE/target/flink-peer.jar.sha256"
sum="$(cat pom.xml $(find src -type f | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)"
if [[ -f "$JAR" && -f "$STAMP" && "$(cat "$STAMP")" == "$sum" ]]; then
    echo "$JAR"
    exit 0
fi
log "building the Flink peer (mvn package; the first run downloads from Maven Central)"
rm -f "$STAMP"
timeout -k 10 "${P2M_FLINK_BUILD_TIMEOUT:-1200}" mvn -B -q package >&2
echo "$sum" >"$STAMP"
echo "$JAR"
