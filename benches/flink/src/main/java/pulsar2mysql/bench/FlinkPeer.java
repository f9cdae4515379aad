package pulsar2mysql.bench;

import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.jdbc.JdbcConnectionOptions;
import org.apache.flink.connector.jdbc.JdbcExecutionOptions;
import org.apache.flink.connector.jdbc.JdbcSink;
import org.apache.flink.connector.pulsar.source.PulsarSource;
import org.apache.flink.connector.pulsar.source.enumerator.cursor.StartCursor;
import org.apache.flink.connector.pulsar.source.enumerator.cursor.StopCursor;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The Flink peer of pulsar2mysql: the job Apache InLong runs for this sync, as a Flink 1.18 batch
 * job in a local MiniCluster. Reads a Pulsar topic from the earliest message to the last one that
 * exists at start (inclusive), splits {@code id|name} records and writes them with the Flink JDBC
 * sink into {@code sink_table (id, name)}.
 *
 * <pre>
 * java -jar flink-peer.jar --config flink-inlong|flink-tuned --pulsar-url pulsar://h:6650
 *      --admin-url http://h:8080 --topic persistent://public/default/t
 *      --jdbc-url jdbc:mysql://h:3306/db --user root [--password pw] [--table sink_table]
 *      [--sql-mode as-shipped] [--empty-partitions keep] [--rebalance false] [--source-parallelism N]
 * </pre>
 *
 * <ul>
 *   <li>{@code flink-inlong}: what InLong ships: flush at 100 rows or 1 s, 3 retries, parallelism 1,
 *       one INSERT per row (the driver's default).
 *   <li>{@code flink-tuned}: 5000-row batches, {@code rewriteBatchedStatements=true} (one multi-row
 *       INSERT per batch), parallelism 2 (records rebalanced to two JDBC writers).
 * </ul>
 *
 * The JDBC session gets {@code sql_mode='STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO'} (as the other
 * contenders) so that the seed's id 0 is stored as 0; {@code --sql-mode as-shipped} leaves the
 * server's sql_mode, as InLong does, to reproduce the failure on id 0.
 *
 * Empty partitions are left out of the source (admin API last message id): connector 4.1.0 ends a
 * partition only when it receives a message at or past the stop point, so an empty one would poll
 * forever.
 *
 * Prints one JSON line on stdout at the end: {"rows_written":N,"duration_ms":..,"outcome":"success"}.
 */
public final class FlinkPeer {

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = parse(argv);
        String config = need(a, "config");
        String pulsarUrl = need(a, "pulsar-url");
        String adminUrl = need(a, "admin-url");
        String topic = need(a, "topic");
        String jdbcUrl = need(a, "jdbc-url");
        String user = a.getOrDefault("user", "root");
        String password = a.getOrDefault("password", "");
        String table = a.getOrDefault("table", "sink_table");
        boolean asShipped = "as-shipped".equals(a.get("sql-mode"));
        // For the record only: with "keep", an empty partition makes connector 4.1.0 poll forever.
        boolean keepEmpty = "keep".equals(a.get("empty-partitions"));

        int parallelism;
        int batchRows;
        long flushIntervalMs;
        int maxRetries;
        boolean rewrite;
        switch (config) {
            case "flink-inlong":
                parallelism = 1; batchRows = 100; flushIntervalMs = 1000; maxRetries = 3; rewrite = false;
                break;
            case "flink-tuned":
                parallelism = 2; batchRows = 5000; flushIntervalMs = 0; maxRetries = 3; rewrite = true;
                break;
            default:
                throw new IllegalArgumentException("--config must be flink-inlong or flink-tuned, not " + config);
        }

        long t0 = System.nanoTime();
        boolean[] partitioned = new boolean[1];
        List<String> topics = nonEmptyPartitions(adminUrl, topic, keepEmpty, partitioned);
        if (topics.isEmpty()) {
            System.err.println("every partition of " + topic + " is empty: nothing to do");
            System.out.println("{\"rows_written\":0,\"duration_ms\":0,\"outcome\":\"success\"}");
            return;
        }

        StringBuilder url = new StringBuilder(jdbcUrl);
        url.append(jdbcUrl.contains("?") ? '&' : '?');
        url.append("useSSL=false&allowPublicKeyRetrieval=true");
        if (rewrite) {
            url.append("&rewriteBatchedStatements=true");
        }
        if (!asShipped) {
            url.append("&sessionVariables=").append(URLEncoder.encode(
                    "sql_mode='STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO'", StandardCharsets.UTF_8));
        }

        Configuration conf = new Configuration();
        conf.setString("execution.runtime-mode", "BATCH");
        // Source -> parse -> (rebalance) -> sink streams through, no blocking spill to disk in
        // between: pipelined exchanges, which the adaptive batch scheduler (1.18's default for
        // batch jobs) refuses; the default scheduler runs them.
        conf.setString("execution.batch-shuffle-mode", "ALL_EXCHANGES_PIPELINED");
        conf.setString("jobmanager.scheduler", "Default");
        conf.setString("restart-strategy.type", "none");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setRuntimeMode(RuntimeExecutionMode.BATCH);
        env.setParallelism(parallelism);

        PulsarSource<String> source = PulsarSource.builder()
                .setServiceUrl(pulsarUrl)
                .setAdminUrl(adminUrl)
                .setTopics(topics)
                .setSubscriptionName("flink-peer-" + UUID.randomUUID())
                .setStartCursor(StartCursor.earliest())
                .setBoundedStopCursor(StopCursor.latest())
                .setDeserializationSchema(new SimpleStringSchema())
                .build();

        // Connector 4.1.0 gives a non-partitioned topic (partition id -1) to reader
        // (hash(topic) % p - 1) % p, which is -1 for half of all topic names when p > 1: no reader
        // gets the split and the job "succeeds" having read nothing. A non-partitioned topic is
        // one split anyway: its source runs with parallelism 1 (--source-parallelism overrides,
        // to reproduce the loss).
        int sourceParallelism = Integer.parseInt(a.getOrDefault("source-parallelism",
                String.valueOf(partitioned[0] ? parallelism : 1)));
        DataStream<Tuple2<Integer, String>> rows = env
                .fromSource(source, WatermarkStrategy.noWatermarks(), "pulsar")
                .setParallelism(sourceParallelism)
                .map(FlinkPeer::split)
                .setParallelism(sourceParallelism)
                .returns(Types.TUPLE(Types.INT, Types.STRING))
                .name("split id|name");
        if (parallelism > 1 && !"false".equals(a.get("rebalance"))) {
            rows = rows.rebalance(); // a partition is one split: spread its records to every writer
        }
        rows.addSink(JdbcSink.sink(
                        "INSERT INTO " + table + " (id, name) VALUES (?, ?)",
                        (ps, r) -> {
                            ps.setInt(1, r.f0);
                            ps.setString(2, r.f1);
                        },
                        JdbcExecutionOptions.builder()
                                .withBatchSize(batchRows)
                                .withBatchIntervalMs(flushIntervalMs)
                                .withMaxRetries(maxRetries)
                                .build(),
                        new JdbcConnectionOptions.JdbcConnectionOptionsBuilder()
                                .withUrl(url.toString())
                                .withDriverName("com.mysql.cj.jdbc.Driver")
                                .withUsername(user)
                                .withPassword(password)
                                .build()))
                .name("jdbc " + table);

        JobExecutionResult result = env.execute("pulsar2mysql flink peer (" + config + ")");
        long ms = (System.nanoTime() - t0) / 1_000_000;
        System.out.println("{\"config\":\"" + config + "\",\"partitions_read\":" + topics.size()
                + ",\"source_parallelism\":" + sourceParallelism + ",\"writers\":" + parallelism
                + ",\"job_ms\":" + result.getNetRuntime() + ",\"duration_ms\":" + ms
                + ",\"outcome\":\"success\"}");
    }

    static Tuple2<Integer, String> split(String record) {
        int bar = record.indexOf('|');
        if (bar < 0) {
            throw new IllegalArgumentException("not an id|name record: " + record);
        }
        return Tuple2.of(Integer.parseInt(record.substring(0, bar).trim()), record.substring(bar + 1));
    }

    private static final Pattern PARTITIONS = Pattern.compile("\"partitions\"\\s*:\\s*(\\d+)");
    private static final Pattern ENTRY_ID = Pattern.compile("\"entryId\"\\s*:\\s*(-?\\d+)");

    /** The topic's partitions (or the topic itself) that hold at least one message. */
    static List<String> nonEmptyPartitions(String adminUrl, String topic, boolean keepEmpty, boolean[] partitioned)
            throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        String path = topic.replaceFirst("^persistent://", "");
        Matcher m = PARTITIONS.matcher(get(http, adminUrl + "/admin/v2/persistent/" + path + "/partitions"));
        int n = m.find() ? Integer.parseInt(m.group(1)) : 0;
        partitioned[0] = n > 0;
        List<String> all = new ArrayList<>();
        if (n == 0) {
            all.add(topic);
        } else {
            for (int i = 0; i < n; i++) {
                all.add(topic + "-partition-" + i);
            }
        }
        List<String> nonEmpty = new ArrayList<>();
        for (String t : all) {
            String body = get(http, adminUrl + "/admin/v2/persistent/"
                    + t.replaceFirst("^persistent://", "") + "/lastMessageId");
            Matcher e = ENTRY_ID.matcher(body);
            if (keepEmpty || (e.find() && Long.parseLong(e.group(1)) >= 0)) {
                nonEmpty.add(t);
            } else {
                System.err.println("skipping empty partition " + t + " (last message id " + body + ")");
            }
        }
        return nonEmpty;
    }

    private static String get(HttpClient http, String url) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url))
                .timeout(Duration.ofSeconds(30)).GET().build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new IllegalStateException("GET " + url + ": HTTP " + r.statusCode() + " " + r.body());
        }
        return r.body();
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> a = new LinkedHashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
            }
            a.put(argv[i].substring(2), argv[++i]);
        }
        return a;
    }

    private static String need(Map<String, String> a, String k) {
        String v = a.get(k);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + k);
        }
        return v;
    }
}
