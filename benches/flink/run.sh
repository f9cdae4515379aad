#!/usr/bin/env bash
# Runs the Flink peer (one JVM: a local MiniCluster with the job in it). Arguments go to the
# Java main (pulsar2mysql.bench.FlinkPeer), e.g.
#   benches/flink/run.sh --config flink-inlong --pulsar-url pulsar://127.0.0.1:6650 \
#     --admin-url http://127.0.0.1:8080 --topic persistent://public/default/t \
#     --jdbc-url jdbc:mysql://127.0.0.1:3306/db --user root
# Heap: P2M_FLINK_HEAP (default 1g; the issue's bound is 2 GiB). Build first: benches/flink/build.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAR="${P2M_FLINK_JAR:-$HERE/target/flink-peer.jar}"
[[ -f "$JAR" ]] || { echo "no $JAR: run benches/flink/build.sh first" >&2; exit 2; }
# Flink 1.18 on Java 17 needs these (Flink's own env.java.opts.all for Java 17).
exec java -Xmx"${P2M_FLINK_HEAP:-1g}" -XX:+IgnoreUnrecognizedVMOptions \
    --add-exports=java.base/sun.net.util=ALL-UNNAMED \
    --add-exports=java.base/sun.net=ALL-UNNAMED \
    --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED \
    --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED \
    --add-opens=java.base/java.lang=ALL-UNNAMED \
    --add-opens=java.base/java.net=ALL-UNNAMED \
    --add-opens=java.base/java.io=ALL-UNNAMED \
    --add-opens=java.base/java.nio=ALL-UNNAMED \
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens=java.base/java.lang.reflect=ALL-UNNAMED \
    --add-opens=java.base/java.text=ALL-UNNAMED \
    --add-opens=java.base/java.time=ALL-UNNAMED \
    --add-opens=java.base/java.util=ALL-UNNAMED \
    --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
    --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED \
    --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED \
    -jar "$JAR" "$@"
