#!/usr/bin/env bash
# Local services for pulsar2mysql, without Docker or systemd:
#   - Apache Pulsar in standalone mode (tarball from Maven Central),
#   - MariaDB (Debian package) as our own instance with its own datadir,
#   - Prometheus Pushgateway (Debian package),
#   - Toxiproxy (built from the Go module proxy), the TCP fault proxy of the fault tests.
#
# usage: scripts/services.sh up|down|status|env
#   up      install what is missing, start what is not running, wait until
#           every service is ready, print where they listen. Idempotent.
#   down    stop the services cleanly (data is kept for the next `up`).
#   stop S  stop one service S (pulsar, mariadb, pushgateway or toxiproxy); `up` restarts it.
#   status  print each service's state; exit status 1 if any is not ready.
#   env     print `export VAR=value` lines: eval "$(scripts/services.sh env)"
#
# Environment (defaults in brackets):
#   PULSAR_URL        [pulsar://127.0.0.1:6650]   broker host/port
#   PULSAR_ADMIN_URL  [http://127.0.0.1:8080]     admin/web port
#   PULSAR_TLS_URL    [pulsar+ssl://127.0.0.1:6651] TLS listener (same host)
#   PULSAR_ADMIN_TLS_URL [https://127.0.0.1:8443]  admin/web port over TLS (same host)
#   MYSQL_URL         [mysql://root@127.0.0.1:3306/pulsar2mysql]
#   PUSHGATEWAY_URL   [http://127.0.0.1:9091]
#   TOXIPROXY_URL     [http://127.0.0.1:8474]     Toxiproxy's API
#   P2M_CACHE_DIR     [<repo>/.cache]  downloads, data dirs, logs, pid files
#   PULSAR_VERSION    [4.0.8]
#   TOXIPROXY_VERSION [2.12.0]
#   PULSAR_MEM        [-Xms512m -Xmx1g -XX:MaxDirectMemorySize=1g]
#   P2M_PULSAR_WIPE=1 start Pulsar with an empty data dir (topics are lost)
#   P2M_PULSAR_TIMEOUT [240] / P2M_MARIADB_TIMEOUT [120] /
#   P2M_PUSHGATEWAY_TIMEOUT [30]   readiness timeouts, seconds
#
# Service configuration lives in docker/ (see docker/README.md).
# The broker also listens with TLS on PULSAR_TLS_URL, serves its admin API over
# TLS on PULSAR_ADMIN_TLS_URL (same certificate) and checks JWTs
# (docker/pulsar-security.overrides); clients without credentials still get in.
# The CA, broker certificate, token key and tokens are generated once into
# $P2M_CACHE_DIR/secrets (see `env` for the files clients need).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PULSAR_VERSION=${PULSAR_VERSION:-4.0.8}
TOXIPROXY_VERSION=${TOXIPROXY_VERSION:-2.12.0}
# The machine (2 cores, 24 GiB) is shared with MariaDB, cargo builds and the
# tests; Pulsar's own default (2g heap, 4g direct) is sized for a real broker.
PULSAR_MEM=${PULSAR_MEM:--Xms512m -Xmx1g -XX:MaxDirectMemorySize=1g}
P2M_PULSAR_TIMEOUT=${P2M_PULSAR_TIMEOUT:-240}
P2M_MARIADB_TIMEOUT=${P2M_MARIADB_TIMEOUT:-120}
P2M_PUSHGATEWAY_TIMEOUT=${P2M_PUSHGATEWAY_TIMEOUT:-30}

CACHE=$P2M_CACHE_DIR
LOGS=$CACHE/logs
RUN=$CACHE/run
DOCKER_DIR=$P2M_REPO_DIR/docker

PULSAR_HOME=$CACHE/apache-pulsar-$PULSAR_VERSION
PULSAR_DATA=$CACHE/pulsar-data     # outside PULSAR_HOME: survives version bumps
PULSAR_PID=$RUN/pulsar.pid
PULSAR_LOG=$LOGS/pulsar.log
# Fingerprint of the configuration the running broker was started with.
PULSAR_CONFIG_STAMP=$RUN/pulsar.config.sha256

# TLS and token auth material, generated once by pulsar_secrets (git-ignored).
SECRETS=$CACHE/secrets
PULSAR_TLS_CA_FILE=$SECRETS/ca.cert.pem     # what clients trust
PULSAR_TOKEN_FILE=$SECRETS/client.token     # a valid JWT for clients (subject pulsar2mysql)

MARIADB_DIR=$CACHE/mariadb
MARIADB_DATA=$MARIADB_DIR/data
MARIADB_CNF=$MARIADB_DIR/my.cnf    # generated; includes docker/mariadb.cnf
MARIADB_SOCK=$RUN/mariadb.sock
MARIADB_PID=$RUN/mariadb.pid
MARIADB_LOG=$LOGS/mariadb.log

PUSHGW_PID=$RUN/pushgateway.pid
PUSHGW_LOG=$LOGS/pushgateway.log
PUSHGW_DATA=$CACHE/pushgateway/metrics.data

TOXIPROXY_BIN=$CACHE/bin/toxiproxy-server-$TOXIPROXY_VERSION
TOXIPROXY_PID=$RUN/toxiproxy.pid
TOXIPROXY_LOG=$LOGS/toxiproxy.log

APT_PACKAGES=(mariadb-server mariadb-client protobuf-compiler prometheus-pushgateway curl openssl)

# --- where things listen, derived from the URLs ------------------------------

parse_urls() {
    PULSAR_ADMIN_URL=${PULSAR_ADMIN_URL%/}
    PUSHGATEWAY_URL=${PUSHGATEWAY_URL%/}
    url_parse "$PULSAR_URL"
    PULSAR_HOST=$URL_HOST PULSAR_PORT=$URL_PORT
    url_parse "$PULSAR_ADMIN_URL"
    PULSAR_WEB_HOST=$URL_HOST PULSAR_WEB_PORT=$URL_PORT
    url_parse "$PULSAR_TLS_URL"
    [[ $URL_SCHEME == pulsar+ssl ]] || die "PULSAR_TLS_URL must start with pulsar+ssl:// ($PULSAR_TLS_URL)"
    PULSAR_TLS_HOST=$URL_HOST PULSAR_TLS_PORT=$URL_PORT
    PULSAR_ADMIN_TLS_URL=${PULSAR_ADMIN_TLS_URL%/}
    url_parse "$PULSAR_ADMIN_TLS_URL"
    [[ $URL_SCHEME == https ]] || die "PULSAR_ADMIN_TLS_URL must start with https:// ($PULSAR_ADMIN_TLS_URL)"
    PULSAR_WEB_TLS_HOST=$URL_HOST PULSAR_WEB_TLS_PORT=$URL_PORT
    url_parse "$MYSQL_URL"
    MYSQL_HOST=$URL_HOST MYSQL_PORT=$URL_PORT MYSQL_USER=${URL_USER:-root}
    MYSQL_DB=${URL_PATH:-pulsar2mysql}
    url_parse "$PUSHGATEWAY_URL"
    PUSHGW_HOST=$URL_HOST PUSHGW_PORT=$URL_PORT
    TOXIPROXY_URL=${TOXIPROXY_URL%/}
    url_parse "$TOXIPROXY_URL"
    TOXIPROXY_HOST=$URL_HOST TOXIPROXY_PORT=$URL_PORT
    # Standalone has a single bindAddress for both ports.
    [[ $PULSAR_HOST == "$PULSAR_WEB_HOST" && $PULSAR_HOST == "$PULSAR_TLS_HOST" &&
        $PULSAR_HOST == "$PULSAR_WEB_TLS_HOST" ]] ||
        die "PULSAR_URL, PULSAR_ADMIN_URL, PULSAR_TLS_URL and PULSAR_ADMIN_TLS_URL must use the same host" \
            "($PULSAR_HOST, $PULSAR_WEB_HOST, $PULSAR_TLS_HOST, $PULSAR_WEB_TLS_HOST)"
    # We create a root account without password; other users are not managed.
    [[ $MYSQL_USER == root && -z $URL_PASS ]] ||
        warn "MYSQL_URL user is not password-less root; only root@127.0.0.1 is set up"
}

print_env() {
    printf 'export PULSAR_URL=%q\n' "$PULSAR_URL"
    printf 'export PULSAR_ADMIN_URL=%q\n' "$PULSAR_ADMIN_URL"
    printf 'export PULSAR_TLS_URL=%q\n' "$PULSAR_TLS_URL"
    printf 'export PULSAR_ADMIN_TLS_URL=%q\n' "$PULSAR_ADMIN_TLS_URL"
    printf 'export PULSAR_TLS_CA_FILE=%q\n' "$PULSAR_TLS_CA_FILE"
    printf 'export PULSAR_TOKEN_FILE=%q\n' "$PULSAR_TOKEN_FILE"
    printf 'export MYSQL_URL=%q\n' "$MYSQL_URL"
    printf 'export PUSHGATEWAY_URL=%q\n' "$PUSHGATEWAY_URL"
    printf 'export TOXIPROXY_URL=%q\n' "$TOXIPROXY_URL"
}

# --- installation -------------------------------------------------------------

# Installs the Debian packages that are missing. The check is one dpkg-query
# call, so a no-op `up` stays fast; apt only runs when something is missing.
ensure_packages() {
    local pkgs=("${APT_PACKAGES[@]}") missing=() p installed
    command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || pkgs+=(maven)
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null || true)
    for p in "${pkgs[@]}"; do
        grep -qx "$p installed" <<<"$installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0

    log "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
}

# Maven downloads the distribution (and keeps it in ~/.m2 as a cache); we
# unpack it into the cache folder. The unpack goes through a temporary dir so
# an interrupted `up` never leaves a half-unpacked PULSAR_HOME behind.
ensure_pulsar_installed() {
    [[ -x $PULSAR_HOME/bin/pulsar && -f $PULSAR_HOME/conf/standalone.conf.orig ]] && return 0
    local dl=$CACHE/downloads
    local tarball=$dl/pulsar-server-distribution-$PULSAR_VERSION-bin.tar.gz
    mkdir -p "$dl"
    if [[ ! -s $tarball ]]; then
        log "fetching Pulsar $PULSAR_VERSION with Maven"
        # Run from $dl: no pom.xml there, so Maven runs the goal stand-alone.
        # Its chatter (colour codes even with -B -q) goes to a log file.
        mkdir -p "$LOGS"
        (cd "$dl" && mvn -B -q dependency:copy \
            -Dartifact="org.apache.pulsar:pulsar-server-distribution:$PULSAR_VERSION:tar.gz:bin" \
            -DoutputDirectory="$dl") >>"$LOGS/maven.log" 2>&1 || {
            tail -n 20 "$LOGS/maven.log" >&2
            die "Maven could not fetch Pulsar $PULSAR_VERSION; see $LOGS/maven.log"
        }
    fi
    log "unpacking Pulsar into $PULSAR_HOME"
    local tmp
    tmp=$(mktemp -d "$CACHE/.unpack.XXXXXX")
    tar -xzf "$tarball" -C "$tmp"
    local unpacked=$tmp/apache-pulsar-$PULSAR_VERSION
    [[ -x $unpacked/bin/pulsar ]] || die "unexpected tarball layout in $tarball"
    # Keep pristine copies: our configs are re-rendered from them on each start.
    cp "$unpacked/conf/standalone.conf" "$unpacked/conf/standalone.conf.orig"
    cp "$unpacked/conf/client.conf" "$unpacked/conf/client.conf.orig"
    rm -rf "$PULSAR_HOME"
    mv "$unpacked" "$PULSAR_HOME"
    rm -rf "$tmp"
    # ~/.m2 still has it; no need for a second 245 MB copy.
    rm -f "$tarball"
}

# render_properties SRC DEST KEY=VALUE...: copy a Java properties file,
# replacing the value of each given key in place and appending keys that SRC
# does not have. Later KEY=VALUE arguments win over earlier ones.
render_properties() {
    local src=$1 dest=$2
    shift 2
    printf '%s\n' "$@" | awk '
        NR == FNR {
            i = index($0, "="); k = substr($0, 1, i - 1); v = substr($0, i + 1)
            if (!(k in val)) order[++n] = k
            val[k] = v; next
        }
        {
            i = index($0, "="); k = substr($0, 1, i - 1)
            if (i > 1 && k !~ /^[ \t]*#/ && (k in val)) { print k "=" val[k]; seen[k] = 1; next }
            print
        }
        END {
            hdr = 0
            for (j = 1; j <= n; j++) if (!(order[j] in seen)) {
                if (!hdr++) print "\n# --- added by scripts/services.sh ---"
                print order[j] "=" val[order[j]]
            }
        }' - "$src" >"$dest.tmp"
    mv "$dest.tmp" "$dest"
}

# Non-comment, non-blank lines of an overrides file.
read_overrides() {
    grep -Ev '^[[:space:]]*(#|$)' "$1" | sed -e 's/[[:space:]]*=[[:space:]]*/=/' || true
}

# --- Pulsar -------------------------------------------------------------------

pulsar_running() { pid_alive "$PULSAR_PID" standalone; }

pulsar_ready() {
    [[ $(curl -fsS --max-time 3 "$PULSAR_ADMIN_URL/admin/v2/clusters" 2>/dev/null) == '["standalone"]' ]] &&
        curl -fsS --max-time 3 "$PULSAR_ADMIN_URL/admin/v2/namespaces/public" 2>/dev/null |
        grep -q '"public/default"' &&
        port_open "$PULSAR_HOST" "$PULSAR_PORT" &&
        port_open "$PULSAR_TLS_HOST" "$PULSAR_TLS_PORT" &&
        [[ $(curl -fsS --max-time 3 --cacert "$PULSAR_TLS_CA_FILE" "$PULSAR_ADMIN_TLS_URL/admin/v2/clusters" 2>/dev/null) == '["standalone"]' ]]
}

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# jwt_hs256 KEYFILE SUBJECT: a JWT like `bin/pulsar tokens create --secret-key`
# makes (header {"alg":"HS256"}, claim sub, no expiry), without starting a JVM.
jwt_hs256() {
    local header payload sig
    header=$(printf '{"alg":"HS256"}' | b64url)
    payload=$(printf '{"sub":"%s"}' "$2" | b64url)
    sig=$(printf '%s.%s' "$header" "$payload" |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(od -An -v -tx1 "$1" | tr -d ' \n')" -binary | b64url)
    printf '%s.%s.%s' "$header" "$payload" "$sig"
}

# install_secret TMPFILE DEST: atomically put a generated file in place, owner-only.
install_secret() { chmod 600 "$1" && mv -f "$1" "$2"; }

# issue_certificate NAME KEYFILE HOST: a key (PKCS#8, "BEGIN PRIVATE KEY", which both the
# broker and MariaDB read) and a certificate $SECRETS/NAME.cert.pem for localhost, 127.0.0.1
# and HOST, signed by the local CA; issued again when HOST changed or the CA is newer.
issue_certificate() {
    local s=$SECRETS name=$1 key=$SECRETS/$2 host=$3 san ext
    san="DNS:localhost,IP:127.0.0.1"
    if [[ $host != localhost && $host != 127.0.0.1 ]]; then
        if [[ $host =~ ^[0-9.]+$ ]]; then san+=",IP:$host"; else san+=",DNS:$host"; fi
    fi
    [[ -s $key && -s $s/$name.cert.pem && $(cat "$s/$name.san" 2>/dev/null) == "$san" &&
        ! $s/ca.cert.pem -nt $s/$name.cert.pem ]] && return 0
    log "issuing the $name TLS certificate for $san"
    ext=$s/$name.ext.tmp
    printf '%s\n' "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$ext"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key.tmp" 2>/dev/null &&
        openssl req -new -key "$key.tmp" -subj "/CN=$host" -out "$s/$name.csr.tmp" &&
        openssl x509 -req -in "$s/$name.csr.tmp" -CA "$s/ca.cert.pem" -CAkey "$s/ca.key.pem" \
            -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 -extfile "$ext" \
            -out "$s/$name.cert.pem.tmp" 2>/dev/null ||
        die "openssl could not issue the $name certificate"
    install_secret "$key.tmp" "$key"
    install_secret "$s/$name.cert.pem.tmp" "$s/$name.cert.pem"
    printf '%s\n' "$san" >"$s/$name.san"
    rm -f "$ext" "$s/$name.csr.tmp"
}

# TLS and token material for the broker, generated once (each piece only when
# it is missing, and whatever depends on a regenerated piece with it):
#   ca.key.pem, ca.cert.pem          self-signed CA (clients: --pulsar-tls-ca-file)
#   broker.key-pk8.pem, broker.cert.pem
#                                    the broker's key (PKCS#8, as Java wants it) and
#                                    certificate for localhost, 127.0.0.1 and the
#                                    PULSAR_URL host; re-issued when that host changes
#   token-secret.key                 32 random bytes, the HS256 key (tokenSecretKey)
#   client.token, broker.token       JWTs for subjects pulsar2mysql and p2m-broker
pulsar_secrets() {
    local s=$SECRETS
    mkdir -p "$s"
    chmod 700 "$s"
    if [[ ! -s $s/ca.key.pem || ! -s $s/ca.cert.pem ]]; then
        log "generating a self-signed CA in $s"
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -subj "/CN=pulsar2mysql local test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$s/ca.key.pem.tmp" -out "$s/ca.cert.pem.tmp" 2>/dev/null ||
            die "openssl could not create the CA"
        install_secret "$s/ca.key.pem.tmp" "$s/ca.key.pem"
        install_secret "$s/ca.cert.pem.tmp" "$s/ca.cert.pem"
        rm -f "$s/broker.cert.pem"
    fi
    issue_certificate broker broker.key-pk8.pem "$PULSAR_HOST"
    if [[ ! -s $s/token-secret.key ]]; then
        log "generating the token secret key in $s"
        openssl rand -out "$s/token-secret.key.tmp" 32 || die "openssl could not create the token key"
        install_secret "$s/token-secret.key.tmp" "$s/token-secret.key"
        rm -f "$s/client.token" "$s/broker.token"
    fi
    local subject file
    for file in client:pulsar2mysql broker:p2m-broker; do
        subject=${file#*:} file=$s/${file%%:*}.token
        [[ -s $file ]] && continue
        jwt_hs256 "$s/token-secret.key" "$subject" >"$file.tmp" || die "could not create $file"
        install_secret "$file.tmp" "$file"
    done
}

# What the broker's configuration consists of: the rendered standalone.conf
# and the secrets it points at. A running broker whose fingerprint differs
# (docker/*.overrides edited, secrets regenerated, or started by an older
# services.sh) is restarted by `up`.
pulsar_config_fingerprint() {
    cat "$PULSAR_HOME/conf/standalone.conf" "$SECRETS/broker.cert.pem" "$SECRETS/broker.key-pk8.pem" \
        "$SECRETS/ca.cert.pem" "$SECRETS/token-secret.key" "$SECRETS/broker.token" | sha256sum | cut -d' ' -f1
}

pulsar_configure() {
    local conf=$PULSAR_HOME/conf overrides=() security=()
    mapfile -t overrides < <(read_overrides "$DOCKER_DIR/pulsar-standalone.overrides")
    mapfile -t security < <(read_overrides "$DOCKER_DIR/pulsar-security.overrides" |
        sed -e "s|@SECRETS@|$SECRETS|g")
    render_properties "$conf/standalone.conf.orig" "$conf/standalone.conf" \
        "${overrides[@]}" \
        "${security[@]}" \
        "bindAddress=$PULSAR_HOST" \
        "advertisedAddress=$PULSAR_HOST" \
        "brokerServicePort=$PULSAR_PORT" \
        "brokerServicePortTls=$PULSAR_TLS_PORT" \
        "webServicePort=$PULSAR_WEB_PORT" \
        "webServicePortTls=$PULSAR_WEB_TLS_PORT"
    # So that bin/pulsar-client and bin/pulsar-admin talk to this instance.
    render_properties "$conf/client.conf.orig" "$conf/client.conf" \
        "webServiceUrl=$PULSAR_ADMIN_URL/" \
        "brokerServiceUrl=$PULSAR_URL/"
}

# Restarting on an existing data dir is reliable (tested: repeated down/up and
# kill -9 + up keep all messages). What does change how standalone starts:
#  - a ZooKeeper data dir (data/standalone/zookeeper relative to the working
#    directory, i.e. PULSAR_HOME) or PULSAR_STANDALONE_USE_ZOOKEEPER=1 makes
#    it use ZooKeeper instead of the RocksDB metadata store we rely on. We
#    never create one, and unset the variable.
#  - bookie data without its metadata (someone deleted only one of the two)
#    fails on a cookie/instance-id mismatch; the two only make sense together,
#    so a half-deleted data dir is wiped whole.
# P2M_PULSAR_WIPE=1 starts from an empty data dir on purpose.
pulsar_check_data_dir() {
    if [[ ${P2M_PULSAR_WIPE:-0} == 1 ]]; then
        log "P2M_PULSAR_WIPE=1: deleting $PULSAR_DATA"
        rm -rf "$PULSAR_DATA"
    elif [[ -d $PULSAR_DATA/bookkeeper && ! -d $PULSAR_DATA/metadata ]] ||
        [[ ! -d $PULSAR_DATA/bookkeeper && -d $PULSAR_DATA/metadata ]]; then
        warn "$PULSAR_DATA has only one of bookkeeper/ and metadata/; wiping it"
        rm -rf "$PULSAR_DATA"
    fi
    if [[ -d $PULSAR_HOME/data/standalone/zookeeper ]]; then
        warn "moving away $PULSAR_HOME/data/standalone/zookeeper (would switch standalone to ZooKeeper)"
        mv "$PULSAR_HOME/data/standalone/zookeeper" "$PULSAR_HOME/data/standalone/zookeeper.disabled.$(date +%s)"
    fi
}

# Renders the configuration on every `up` (cheap); a running broker is left
# alone unless what it was started with differs from that.
pulsar_start() {
    pulsar_secrets
    pulsar_configure
    if pulsar_running; then
        [[ $(pulsar_config_fingerprint) == "$(cat "$PULSAR_CONFIG_STAMP" 2>/dev/null)" ]] && return 0
        log "Pulsar runs with an older configuration (docker/pulsar-*.overrides or $SECRETS changed); restarting it"
        pulsar_stop
    fi
    pulsar_check_data_dir
    mkdir -p "$PULSAR_DATA" "$LOGS/pulsar"
    log "starting Pulsar $PULSAR_VERSION standalone (log: $PULSAR_LOG)"
    # -nfw/-nss: no functions worker and no stream storage; we need neither,
    # and both cost memory and startup time. Data dirs are passed explicitly
    # because the defaults are relative to the working directory.
    # Pulsar logs to stdout by default (log4j Console appender), so the
    # daemon's output file is the Pulsar log. The default GC log is one file
    # set per pid, which piles up over restarts; use one rotated file instead.
    # PULSAR_STANDALONE_USE_ZOOKEEPER would switch to ZooKeeper metadata.
    (cd "$PULSAR_HOME" && start_daemon "$PULSAR_PID" "$PULSAR_LOG" \
        env -u PULSAR_STANDALONE_USE_ZOOKEEPER \
        PULSAR_MEM="$PULSAR_MEM" PULSAR_LOG_DIR="$LOGS/pulsar" \
        PULSAR_GC_LOG="-Xlog:gc*:file=$LOGS/pulsar/gc.log:time,uptime,tags:filecount=3,filesize=20M" \
        "$PULSAR_HOME/bin/pulsar" standalone -nfw -nss \
        --metadata-dir "$PULSAR_DATA/metadata" \
        --bookkeeper-dir "$PULSAR_DATA/bookkeeper")
    pulsar_config_fingerprint >"$PULSAR_CONFIG_STAMP"
}

pulsar_wait() {
    wait_until pulsar "$P2M_PULSAR_TIMEOUT" "$PULSAR_LOG" "$PULSAR_PID" standalone pulsar_ready ||
        die "Pulsar did not come up; see $PULSAR_LOG. Slow machine: raise P2M_PULSAR_TIMEOUT." \
            "Damaged data (e.g. InvalidCookieException): P2M_PULSAR_WIPE=1 $0 up starts with an empty data dir."
}

pulsar_stop() {
    # The broker shuts down within brokerShutdownTimeoutMs (see overrides),
    # then the bookie and metadata store close; 90 s is plenty.
    stop_daemon pulsar "$PULSAR_PID" standalone 90
}

# --- MariaDB ------------------------------------------------------------------

mariadb_running() { pid_alive "$MARIADB_PID" mariadbd; }

# --no-defaults: do not pick up the system client config (/etc/mysql), whose
# socket points at the system server, not ours.
mariadb_ready() {
    mariadb-admin --no-defaults --protocol=tcp -h"$MYSQL_HOST" -P"$MYSQL_PORT" \
        -uroot --connect-timeout=2 ping >/dev/null 2>&1
}

# The server's TLS certificate, issued by the local CA of pulsar_secrets (clients trust
# $SECRETS/ca.cert.pem with --mysql-ssl-ca): TLS is on for every client that asks, required by
# none unless a test sets require_secure_transport.
mariadb_secrets() {
    issue_certificate mariadb mariadb.key.pem "$MYSQL_HOST"
}

mariadb_configure() {
    mkdir -p "$MARIADB_DIR" "$RUN" "$LOGS"
    mariadb_secrets
    cat >"$MARIADB_CNF" <<EOF
# Generated by scripts/services.sh on each start; edit docker/mariadb.cnf.
!include $DOCKER_DIR/mariadb.cnf

[mysqld]
datadir      = $MARIADB_DATA
socket       = $MARIADB_SOCK
pid-file     = $MARIADB_PID
log-error    = $MARIADB_LOG
port         = $MYSQL_PORT
bind-address = $MYSQL_HOST
ssl-ca       = $SECRETS/ca.cert.pem
ssl-cert     = $SECRETS/mariadb.cert.pem
ssl-key      = $SECRETS/mariadb.key.pem

[client]
socket       = $MARIADB_SOCK
port         = $MYSQL_PORT
EOF
}

mariadbd_bin() { command -v mariadbd || echo /usr/sbin/mariadbd; }

# The datadir counts as initialized only once mariadb_bootstrap has run on it;
# a datadir without the marker is a leftover of an interrupted first `up` and
# holds no data of ours, so it is recreated.
mariadb_init() {
    [[ -f $MARIADB_DIR/.initialized ]] && return 0
    log "initializing MariaDB datadir $MARIADB_DATA"
    rm -rf "$MARIADB_DATA"
    mkdir -p "$MARIADB_DATA"
    mariadb-install-db --defaults-file="$MARIADB_CNF" --user="$(id -un)" \
        --datadir="$MARIADB_DATA" --auth-root-authentication-method=normal \
        --skip-test-db >>"$MARIADB_LOG" 2>&1 ||
        die "mariadb-install-db failed; see $MARIADB_LOG"
}

mariadb_start() {
    local before
    before=$( (cat "$MARIADB_CNF" "$SECRETS/mariadb.cert.pem" 2>/dev/null || true) | sha256sum)
    mariadb_configure
    if mariadb_running; then
        [[ $(cat "$MARIADB_CNF" "$SECRETS/mariadb.cert.pem" | sha256sum) == "$before" ]] && return 0
        log "MariaDB runs with an older configuration (docker/mariadb.cnf or its certificate changed); restarting it"
        mariadb_stop
    fi
    mariadb_init
    log "starting MariaDB (log: $MARIADB_LOG)"
    # mariadbd itself rather than mariadbd-safe: one process to track and stop.
    # --user is required when running as root (and harmless otherwise).
    start_daemon "$MARIADB_PID" "$MARIADB_LOG" \
        "$(mariadbd_bin)" --defaults-file="$MARIADB_CNF" --user="$(id -un)"
}

mariadb_wait() {
    wait_until mariadb "$P2M_MARIADB_TIMEOUT" "$MARIADB_LOG" "$MARIADB_PID" mariadbd mariadb_ready ||
        die "MariaDB did not come up; see $MARIADB_LOG"
}

# Idempotent, run on every `up` (cheap): password-less root over TCP, then
# the project's databases (docker/mariadb-init.sql, plus the one named in
# MYSQL_URL if it is another). Goes through the unix socket, where
# 'root'@'localhost' always applies, so it works before the TCP account exists.
mariadb_bootstrap() {
    {
        cat <<'EOF'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
ALTER USER 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
GRANT ALL PRIVILEGES ON *.* TO 'root'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'127.0.0.1' WITH GRANT OPTION;
-- mariadb-install-db also creates root@<hostname> and root@::1; unusable
-- here (skip-name-resolve, IPv4 bind) and each start warns about them.
DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1');
DELETE FROM mysql.proxies_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1');
FLUSH PRIVILEGES;
EOF
        cat "$DOCKER_DIR/mariadb-init.sql"
        printf 'CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n' "$MYSQL_DB"
    } | mariadb --no-defaults --socket="$MARIADB_SOCK" -uroot --batch >>"$MARIADB_LOG" 2>&1 ||
        die "MariaDB bootstrap SQL failed; see $MARIADB_LOG"
    touch "$MARIADB_DIR/.initialized"
}

mariadb_stop() {
    # SIGTERM is mariadbd's normal shutdown (flushes InnoDB).
    stop_daemon mariadb "$MARIADB_PID" mariadbd 120
}

# --- Pushgateway --------------------------------------------------------------

pushgw_running() { pid_alive "$PUSHGW_PID" pushgateway; }

pushgw_ready() { curl -fsS -o /dev/null --max-time 2 "$PUSHGATEWAY_URL/-/ready" 2>/dev/null; }

pushgw_start() {
    if pushgw_running; then return 0; fi
    mkdir -p "$(dirname "$PUSHGW_DATA")"
    log "starting Pushgateway (log: $PUSHGW_LOG)"
    # Persistence in the cache (Debian's default is /var/lib/prometheus), and
    # the admin API so tests can wipe metrics: PUT /api/v1/admin/wipe.
    start_daemon "$PUSHGW_PID" "$PUSHGW_LOG" prometheus-pushgateway \
        --web.listen-address="$PUSHGW_HOST:$PUSHGW_PORT" \
        --persistence.file="$PUSHGW_DATA" \
        --web.enable-admin-api
}

pushgw_wait() {
    wait_until pushgateway "$P2M_PUSHGATEWAY_TIMEOUT" "$PUSHGW_LOG" "$PUSHGW_PID" pushgateway pushgw_ready ||
        die "Pushgateway did not come up; see $PUSHGW_LOG"
}

pushgw_stop() { stop_daemon pushgateway "$PUSHGW_PID" pushgateway 30; }

# --- Toxiproxy -----------------------------------------------------------------

# Built once with `go install` from the Go module proxy (the project's own pinned version),
# into the cache. The machine's Go is used; Debian's golang-go is installed when there is none
# (GOTOOLCHAIN=auto then fetches the toolchain toxiproxy's go.mod asks for).
ensure_toxiproxy_installed() {
    [[ -x $TOXIPROXY_BIN ]] && return 0
    local go tmp
    go=$(command -v go || true)
    [[ -n $go ]] || { [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go; }
    if [[ -z $go ]]; then
        log "installing Debian's Go (to build toxiproxy)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go >&2 ||
            die "apt-get could not install golang-go (needed to build toxiproxy)"
        go=$(command -v go)
    fi
    log "building toxiproxy $TOXIPROXY_VERSION with $go (log: $LOGS/go.log)"
    mkdir -p "$LOGS" "$(dirname "$TOXIPROXY_BIN")"
    tmp=$(mktemp -d "$CACHE/.gobin.XXXXXX")
    GOBIN=$tmp GOTOOLCHAIN=${GOTOOLCHAIN:-auto} \
        "$go" install "github.com/Shopify/toxiproxy/v2/cmd/server@v$TOXIPROXY_VERSION" >>"$LOGS/go.log" 2>&1 || {
        tail -n 20 "$LOGS/go.log" >&2
        rm -rf "$tmp"
        die "go install of toxiproxy $TOXIPROXY_VERSION failed; see $LOGS/go.log"
    }
    mv "$tmp/server" "$TOXIPROXY_BIN"
    rm -rf "$tmp"
}

toxiproxy_running() { pid_alive "$TOXIPROXY_PID" toxiproxy-server; }

toxiproxy_ready() { curl -fsS -o /dev/null --max-time 2 "$TOXIPROXY_URL/version" 2>/dev/null; }

toxiproxy_start() {
    if toxiproxy_running; then return 0; fi
    log "starting Toxiproxy (log: $TOXIPROXY_LOG)"
    # -proxy-metrics: per-proxy byte counters at /metrics (a test checks which path bytes took).
    start_daemon "$TOXIPROXY_PID" "$TOXIPROXY_LOG" "$TOXIPROXY_BIN" \
        -host "$TOXIPROXY_HOST" -port "$TOXIPROXY_PORT" -proxy-metrics
}

toxiproxy_wait() {
    wait_until toxiproxy 30 "$TOXIPROXY_LOG" "$TOXIPROXY_PID" toxiproxy-server toxiproxy_ready ||
        die "Toxiproxy did not come up; see $TOXIPROXY_LOG"
}

toxiproxy_stop() { stop_daemon toxiproxy "$TOXIPROXY_PID" toxiproxy-server 10; }

# --- shared -------------------------------------------------------------------

# foreign_listener NAME: when NAME's own instance is not running but something
# listens on one of its ports, print that host:port. Such a listener is
# somebody else's: typically a system MariaDB started by apt or an init script,
# or the services of another checkout (another P2M_CACHE_DIR).
foreign_listener() {
    local args
    case $1 in
        pulsar) pulsar_running && return 1
            args=("$PULSAR_HOST" "$PULSAR_PORT" "$PULSAR_WEB_HOST" "$PULSAR_WEB_PORT"
                "$PULSAR_TLS_HOST" "$PULSAR_TLS_PORT" "$PULSAR_WEB_TLS_HOST" "$PULSAR_WEB_TLS_PORT") ;;
        mariadb) mariadb_running && return 1
            args=("$MYSQL_HOST" "$MYSQL_PORT") ;;
        pushgateway) pushgw_running && return 1
            args=("$PUSHGW_HOST" "$PUSHGW_PORT") ;;
        toxiproxy) toxiproxy_running && return 1
            args=("$TOXIPROXY_HOST" "$TOXIPROXY_PORT") ;;
    esac
    set -- "${args[@]}"
    while (($# >= 2)); do
        if port_open "$1" "$2"; then echo "$1:$2"; return 0; fi
        shift 2
    done
    return 1
}

# Refuse to start anything while a port we need is held by another process:
# say so, rather than fight over the port (or, worse, run the tests against
# somebody else's server).
refuse_foreign_listeners() {
    local name addr errors=0
    for name in pulsar mariadb pushgateway toxiproxy; do
        addr=$(foreign_listener "$name") || continue
        log "ERROR: $addr is in use by another process ($(port_owner "${addr##*:}")), not by the $name instance that scripts/services.sh manages in $CACHE."
        case $name in
            pulsar) log "  Stop it, or set PULSAR_URL/PULSAR_ADMIN_URL/PULSAR_TLS_URL/PULSAR_ADMIN_TLS_URL to other ports." ;;
            mariadb) log "  If that is the system MariaDB, stop it (e.g. 'mariadb-admin shutdown' as root," \
                "or 'service mariadb stop'); or set MYSQL_URL to another port." ;;
            pushgateway) log "  Stop it (Debian's prometheus-pushgateway service?), or set PUSHGATEWAY_URL to another port." ;;
            toxiproxy) log "  Stop it, or set TOXIPROXY_URL to another port." ;;
        esac
        errors=1
    done
    ((errors == 0)) || exit 1
}

# service_state NAME: one status line; returns 1 unless the service is ready.
service_state() {
    local name=$1 running ready pidfile where log addr
    case $name in
        pulsar) running=pulsar_running ready=pulsar_ready pidfile=$PULSAR_PID log=$PULSAR_LOG
            where="$PULSAR_URL  $PULSAR_TLS_URL  admin $PULSAR_ADMIN_URL  $PULSAR_ADMIN_TLS_URL" ;;
        mariadb) running=mariadb_running ready=mariadb_ready pidfile=$MARIADB_PID log=$MARIADB_LOG
            where="$MYSQL_URL  socket $MARIADB_SOCK" ;;
        pushgateway) running=pushgw_running ready=pushgw_ready pidfile=$PUSHGW_PID log=$PUSHGW_LOG
            where=$PUSHGATEWAY_URL ;;
        toxiproxy) running=toxiproxy_running ready=toxiproxy_ready pidfile=$TOXIPROXY_PID log=$TOXIPROXY_LOG
            where=$TOXIPROXY_URL ;;
    esac
    if $running; then
        if $ready; then
            printf '%-12s ready      pid %-7s %s\n' "$name" "$(<"$pidfile")" "$where"
            return 0
        fi
        printf '%-12s NOT READY  pid %-7s %s  (log: %s)\n' "$name" "$(<"$pidfile")" "$where" "$log"
    elif addr=$(foreign_listener "$name"); then
        printf '%-12s FOREIGN    %-11s %s  (%s is held by another process: %s)\n' \
            "$name" "" "$where" "$addr" "$(port_owner "${addr##*:}")"
    else
        printf '%-12s STOPPED    %-11s %s  (log: %s)\n' "$name" "" "$where" "$log"
    fi
    return 1
}

print_status() {
    local rc=0 s
    for s in pulsar mariadb pushgateway toxiproxy; do service_state "$s" || rc=1; done
    return $rc
}

# --- commands -----------------------------------------------------------------

cmd_up() {
    local t0=$SECONDS
    take_lock "$CACHE/.services.lock"
    ensure_packages
    refuse_foreign_listeners
    ensure_pulsar_installed
    ensure_toxiproxy_installed
    # Start everything first, then wait: Pulsar's startup (5 s on the dev
    # machine, up to 90 s on slow ones) overlaps with MariaDB's.
    pulsar_start
    mariadb_start
    pushgw_start
    toxiproxy_start
    mariadb_wait
    mariadb_bootstrap
    pushgw_wait
    toxiproxy_wait
    pulsar_wait
    print_status
    log "services up in $((SECONDS - t0))s; logs in $LOGS"
    print_env
}

cmd_down() {
    local t0=$SECONDS pids=() p
    take_lock "$CACHE/.services.lock"
    # In parallel: Pulsar's clean shutdown dominates and the others need not
    # wait for it.
    pushgw_stop & pids+=($!)
    toxiproxy_stop & pids+=($!)
    mariadb_stop & pids+=($!)
    pulsar_stop & pids+=($!)
    for p in "${pids[@]}"; do wait "$p"; done
    log "services stopped in $((SECONDS - t0))s (data kept in $CACHE)"
}

# Stops one service (the fault-injection tests restart MariaDB or Pulsar under a run);
# `up` starts it again.
cmd_stop_one() {
    take_lock "$CACHE/.services.lock"
    case ${1:-} in
        pulsar) pulsar_stop ;;
        mariadb) mariadb_stop ;;
        pushgateway) pushgw_stop ;;
        toxiproxy) toxiproxy_stop ;;
        *) die "usage: $0 stop pulsar|mariadb|pushgateway|toxiproxy" ;;
    esac
}

cmd_status() {
    local rc=0
    print_status || rc=$?
    print_env
    return $rc
}

main() {
    parse_urls
    case ${1:-} in
        up) cmd_up ;;
        down) cmd_down ;;
        stop) cmd_stop_one "${2:-}" ;;
        status) cmd_status ;;
        env) print_env ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
