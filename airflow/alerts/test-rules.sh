#!/usr/bin/env bash
# Checks and unit-tests the alert rules (pulsar2mysql.rules.yml) with promtool, from Debian's
# `prometheus` package, installed here when missing (its service is kept from starting: only
# the promtool binary is wanted).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib.sh
. "$here/../../scripts/lib.sh"

if ! command -v promtool >/dev/null; then
    log "installing Debian's prometheus (for promtool)"
    guard=/usr/sbin/policy-rc.d added=0
    if [[ ! -e $guard ]]; then  # keep the postinst from starting a Prometheus server
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$guard && chmod 755 $guard"
        added=1
    fi
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2 || {
        ((added == 0)) || as_root rm -f "$guard"
        die "apt-get could not install prometheus (promtool)"
    }
    ((added == 0)) || as_root rm -f "$guard"
fi
cd "$here"
promtool check rules pulsar2mysql.rules.yml
promtool test rules pulsar2mysql.rules.test.yml
