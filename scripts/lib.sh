# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it (`. "$(dirname "$0")/lib.sh"`);
# it only defines variables and functions, it runs nothing.

P2M_REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P2M_CACHE_DIR=${P2M_CACHE_DIR:-$P2M_REPO_DIR/.cache}
# Absolute, since services are started from other working directories.
P2M_CACHE_DIR=$(realpath -m "$P2M_CACHE_DIR")

# Where the local services listen. Every script uses the same defaults so that
# `eval "$(scripts/services.sh env)"` is optional for the common case.
: "${PULSAR_URL:=pulsar://127.0.0.1:6650}"
: "${PULSAR_ADMIN_URL:=http://127.0.0.1:8080}"
: "${PULSAR_TLS_URL:=pulsar+ssl://127.0.0.1:6651}"
: "${PULSAR_ADMIN_TLS_URL:=https://127.0.0.1:8443}"
: "${MYSQL_URL:=mysql://root@127.0.0.1:3306/pulsar2mysql}"
: "${PUSHGATEWAY_URL:=http://127.0.0.1:9091}"
: "${TOXIPROXY_URL:=http://127.0.0.1:8474}"

# Messages go to stderr so that stdout stays clean for machine-readable
# output (e.g. `services.sh env`).
log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die()  { log "ERROR: $*"; exit 1; }

# Run as root, via sudo when we are not root (CI images usually are root).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE...: apt-get update and install, without letting the packages' postinst
# scripts start their system services (without systemd they would, via invoke-rc.d, and hold
# the ports our own instances need): a policy-rc.d answering 101 ("action forbidden") stops
# that, as Docker images ship it. apt's output goes to stderr (stdout may be a script's
# machine-readable output). Dies naming the packages if apt-get fails.
apt_install() {
    local guard=/usr/sbin/policy-rc.d added=0 rc=0
    if [[ ! -e $guard ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$guard && chmod 755 $guard"
        added=1
    fi
    as_root apt-get update -q >&2 || rc=$?
    ((rc != 0)) || as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >&2 || rc=$?
    ((added == 0)) || as_root rm -f "$guard"
    ((rc == 0)) || die "apt-get failed (exit $rc) installing: $*"
}

# url_parse URL: sets URL_SCHEME URL_USER URL_PASS URL_HOST URL_PORT URL_PATH.
# URL_PORT falls back to the scheme's usual port when the URL has none.
url_parse() {
    local re='^([a-zA-Z][a-zA-Z0-9+.-]*)://(([^:@/]*)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?(/([^?]*))?'
    [[ $1 =~ $re ]] || die "cannot parse URL '$1'"
    URL_SCHEME=${BASH_REMATCH[1]}
    URL_USER=${BASH_REMATCH[3]}
    URL_PASS=${BASH_REMATCH[5]}
    URL_HOST=${BASH_REMATCH[6]}
    URL_PORT=${BASH_REMATCH[8]}
    URL_PATH=${BASH_REMATCH[10]}
    if [[ -z $URL_PORT ]]; then
        case $URL_SCHEME in
            http) URL_PORT=80 ;; https) URL_PORT=443 ;;
            pulsar) URL_PORT=6650 ;; pulsar+ssl) URL_PORT=6651 ;;
            mysql) URL_PORT=3306 ;;
            *) die "URL '$1' has no port" ;;
        esac
    fi
}

# port_open HOST PORT: true when something accepts TCP connections there.
# Uses bash's /dev/tcp so it needs no extra package.
port_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# port_owner PORT: best-effort description of the process listening on PORT.
port_owner() {
    command -v ss >/dev/null || { echo "unknown process"; return; }
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' | head -n1 || true
}

# pid_alive PIDFILE PATTERN: true when the pid in PIDFILE runs and its command
# line contains PATTERN (guards against a stale pid file whose pid got reused).
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# start_daemon PIDFILE LOGFILE CMD...: start CMD detached from this shell
# (own session, so Ctrl-C in the caller or the caller's exit does not kill it),
# appending its output to LOGFILE, and record its pid.
start_daemon() {
    local pidfile=$1 logfile=$2
    shift 2
    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    printf '\n===== %s starting: %s\n' "$(date -Is)" "$*" >>"$logfile"
    # 9>&-: the daemon must not inherit the lock of take_lock, or it would
    # hold the lock for as long as it runs.
    setsid nohup "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
}

# take_lock FILE: serialize scripts that start/stop services (e.g. two `up`s
# from parallel make targets must not both start a server). Holds the lock on
# fd 9 until the calling script exits; start_daemon keeps fd 9 out of daemons.
take_lock() {
    mkdir -p "$(dirname "$1")"
    exec 9>>"$1"
    flock -w 900 9 || die "timed out waiting for lock $1"
}

# stop_daemon NAME PIDFILE PATTERN TIMEOUT: SIGTERM, wait for a clean exit,
# SIGKILL only as a last resort (and say so, since it may leave dirty data).
stop_daemon() {
    local name=$1 pidfile=$2 pattern=$3 timeout=$4 pid i
    if ! pid_alive "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(<"$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name did not stop within ${timeout}s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    rm -f "$pidfile"
}

# wait_until NAME TIMEOUT LOGFILE PIDFILE PATTERN CHECK...: poll CHECK until it
# succeeds. Returns 1 (after showing the end of LOGFILE) if the process died
# or TIMEOUT seconds passed; the caller says what to do about it.
wait_until() {
    local name=$1 timeout=$2 logfile=$3 pidfile=$4 pattern=$5
    shift 5
    local deadline=$((SECONDS + timeout))
    until "$@"; do
        if ! pid_alive "$pidfile" "$pattern"; then
            tail -n 30 "$logfile" >&2 2>/dev/null || true
            log "ERROR: $name exited during startup"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$logfile" >&2 2>/dev/null || true
            log "ERROR: $name not ready after ${timeout}s"
            return 1
        fi
        sleep 0.5
    done
}

# Background jobs (scripts/test.sh, airflow/run-tests.sh): each in a session of its own, so
# that it can be stopped whole with what it started; its output in a log file. Jobs ignore
# Ctrl-C (bash gives background commands SIGINT ignored): the caller's trap stops them.
#   bg_start NAME LOGFILE CMD...   start CMD (a program; `bash -c` for shell code)
#   bg_wait NAME                   wait for it; its exit status
#   bg_stop_all                    SIGTERM every job still running (an EXIT trap)
declare -A P2M_BG_PID=()
bg_start() {
    local name=$1 logfile=$2
    shift 2
    setsid -w "$@" >"$logfile" 2>&1 </dev/null &
    P2M_BG_PID[$name]=$!
}
bg_wait() {
    local pid=${P2M_BG_PID[$1]:?no background job $1} rc=0
    wait "$pid" || rc=$?
    unset 'P2M_BG_PID[$1]'
    return "$rc"
}
bg_stop_all() {
    local name
    for name in "${!P2M_BG_PID[@]}"; do
        kill -TERM -- "-${P2M_BG_PID[$name]}" 2>/dev/null || true
    done
}
