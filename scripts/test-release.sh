#!/usr/bin/env bash
# The release artifacts, tested (part of `make test`): runs scripts/release.sh into a
# scratch dir, then
#   - the tarball: its files, and its binary's --version (version and this commit);
#   - the sources: `git archive` wrote the commit into .git-commit (what build.rs reads
#     without .git);
#   - the .deb: its control fields; unpacked with `dpkg -x` into a scratch root and run; and
#     installed for real with `dpkg -i` as root inside a throw-away container of the base
#     image (so the machine's own /usr is never touched), its binary run there;
#   - the image: non-root user, entry point, CA certificates; the seed scenario through it
#     (`podman run --network host` against the local services): 10,000 records produced,
#     run, and the table holds exactly ids 0..9999 with names msg-<id>, once each; a second
#     run writes nothing.
# The test packages the debug build `make test` already has (P2M_RELEASE_PROFILE=dev): the
# packaging is what is tested, not the optimiser; `make release` uses the release profile.
#   P2M_RELEASE_PROFILE [dev]   P2M_SEED_PRODUCER [target/debug/examples/seed_producer]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$P2M_REPO_DIR"
eval "$(scripts/services.sh env)"

started=$SECONDS
passed=0
failed=0
has() { grep -q -- "$2" <<<"$1"; } # has TEXT PATTERN
check() { # check NAME CMD...: one assertion
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
    fi
}

profile=${P2M_RELEASE_PROFILE:-dev}
case $profile in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac
producer=${P2M_SEED_PRODUCER:-$P2M_REPO_DIR/target/$profile_dir/examples/seed_producer}
[[ -x $producer ]] || cargo build --quiet --profile "$profile" --example seed_producer
[[ -x $producer ]] || producer=$P2M_REPO_DIR/target/$profile_dir/examples/seed_producer

scratch=$(mktemp -d "${TMPDIR:-/tmp}/p2m-release-test.XXXXXX")
db=p2m_release_$$_$RANDOM
topic=persistent://public/default/p2m_release_$$_$RANDOM
mysql_cli() {
    url_parse "$MYSQL_URL"
    MYSQL_PWD=$URL_PASS mariadb --protocol=tcp -h "$URL_HOST" -P "$URL_PORT" -u "${URL_USER:-root}" "$@"
}
cleanup() {
    rm -rf "$scratch"
    mysql_cli -e "DROP DATABASE IF EXISTS \`$db\`" 2>/dev/null || true
    curl -s -o /dev/null -X DELETE "$PULSAR_ADMIN_URL/admin/v2/persistent/public/default/${topic##*/}?force=true" || true
}
trap cleanup EXIT

dist=$scratch/dist
P2M_DIST_DIR=$dist P2M_RELEASE_PROFILE=$profile P2M_RELEASE_IMAGE=1 P2M_RELEASE_SAVE_IMAGE=0 \
    scripts/release.sh
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
want_version="pulsar2mysql $version (commit $commit)"
echo "== release artifacts ($version, commit $commit)"

# ---- tarball ---------------------------------------------------------------------------------
tarball=$(ls "$dist"/pulsar2mysql-"$version"-*-linux-gnu.tar.gz)
mkdir "$scratch/tar"
tar -C "$scratch/tar" -xzf "$tarball"
root=$scratch/tar/pulsar2mysql-$version
check "tarball: binary --version names the version and commit" \
    test "$("$root/bin/pulsar2mysql" --version)" = "$want_version"
check "tarball: binary is stripped (no symbol table)" sh -c "! readelf -S '$root/bin/pulsar2mysql' | grep -q '\.symtab'"
for f in share/pulsar2mysql/airflow/dags/pulsar2mysql_airflow.py share/pulsar2mysql/airflow/dags/pulsar2mysql_example.py \
         share/pulsar2mysql/airflow/dags/dag_creator.py share/pulsar2mysql/pulsar2mysql.example.toml README.md; do
    check "tarball: $f" test -s "$root/$f"
done

# ---- sources ---------------------------------------------------------------------------------
if [[ $commit != unknown ]]; then
    archived=$(tar -xzOf "$dist/pulsar2mysql-$version-src.tar.gz" "pulsar2mysql-$version/.git-commit" | tr -d '\n')
    check "sources: .git-commit holds the commit ($archived)" test "${archived:0:12}" = "$commit"
fi

# ---- .deb ------------------------------------------------------------------------------------
deb=$(ls "$dist"/pulsar2mysql_"$version"-*_*.deb)
check "deb: package name and version" sh -c "dpkg-deb -f '$deb' Package Version | tr '\n' ' ' | grep -qx 'Package: pulsar2mysql Version: $version-1 '"
dpkg -x "$deb" "$scratch/root"
check "deb (dpkg -x): binary runs and names the version and commit" \
    test "$("$scratch/root/usr/bin/pulsar2mysql" --version)" = "$want_version"
check "deb (dpkg -x): DAGs and example config" test -s "$scratch/root/usr/share/pulsar2mysql/airflow/dags/pulsar2mysql_airflow.py" \
    -a -s "$scratch/root/usr/share/pulsar2mysql/pulsar2mysql.example.toml"
check "deb (dpkg -x): the example config parses (only the connection may fail)" sh -c \
    "'$scratch/root/usr/bin/pulsar2mysql' check --config '$scratch/root/usr/share/pulsar2mysql/pulsar2mysql.example.toml' \
       --mysql-url 'mysql://nobody@127.0.0.1:1/x' --retry-budget-secs 1 2>/dev/null | tail -n1 | grep -vq config_error"
eval "$(scripts/podman.sh env)"
base=${P2M_BASE_IMAGE:-localhost/debian:bookworm-slim}
installed=$(podman run --rm --network none -v "$dist:/dist:ro" "$base" sh -c \
    'dpkg -i /dist/*.deb >/dev/null && pulsar2mysql --version && ls /usr/share/pulsar2mysql/airflow/dags | wc -l' 2>&1) || true
check "deb (dpkg -i as root in a container): installs, binary on PATH runs" \
    test "$(head -n1 <<<"$installed")" = "$want_version"
check "deb (dpkg -i): DAG files installed" test "$(tail -n1 <<<"$installed")" -ge 5

# ---- image: the seed scenario ----------------------------------------------------------------
image=$P2M_IMAGE
check "image: non-root user" test "$(podman image inspect --format '{{.Config.User}}' "$image")" = "10001:10001"
check "image: the binary is the entry point" sh -c \
    "podman image inspect --format '{{json .Config.Entrypoint}}' '$image' | grep -q '/usr/local/bin/pulsar2mysql'"
check "image: --version" test "$(podman run --rm "$image" --version)" = "$want_version"
check "image: CA certificates" podman run --rm --entrypoint test "$image" -s /etc/ssl/certs/ca-certificates.crt
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1000000)) MB"

mysql_cli -e "CREATE DATABASE \`$db\`"
mysql_cli "$db" <sql/sink_table.sql
"$producer" --url "$PULSAR_URL" --topic "$topic" --count 10000 >/dev/null
mysql_url=${MYSQL_URL%/*}/$db
run_image() {
    podman run --rm --network host "$image" run --pulsar-url "$PULSAR_URL" \
        --pulsar-admin-url "$PULSAR_ADMIN_URL" --mysql-url "$mysql_url" --topic "$topic" \
        --table sink_table 2>"$scratch/run.log" | tail -n1
}
summary=$(run_image) || true
echo "summary: $summary"
check "image: the seed run succeeds" has "$summary" '"exit_code":0,'
check "image: the seed run wrote 10000 rows" has "$summary" '"rows_written":10000,'
rows=$(mysql_cli -N "$db" -e "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id), SUM(name <> CONCAT('msg-', id)) FROM sink_table")
check "image: the table holds ids 0..9999 once each, names msg-<id> ($rows)" test "$(tr -s '\t' ' ' <<<"$rows")" = "10000 10000 0 9999 0"
again=$(run_image) || true
check "image: a second run of the same range writes nothing" has "$again" '"rows_written":0,'
[[ $failed == 0 ]] || tail -n 30 "$scratch/run.log" >&2

echo "release test: $((SECONDS - started))s"
echo "$passed passed, $failed failed"
((failed == 0))
