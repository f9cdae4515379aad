"""A group's task DAG taking everything from InLong Manager at run time: the Manager is a local
HTTP server answering exactly as the recorded real Manager did (inlong_manager.ManagerReplay,
tests/data/inlong-manager), the runner, Pulsar and MariaDB are real.

The story: the Manager registers a group through dag_creator (twice, as it does at approval);
an interval runs with nothing written by hand (no group file, no MySQL Connection); the group
is edited in InLong (new table) and the next interval follows; a Manager that is down or
refuses the credentials fails the task clearly; the Manager's delete habit ends green; the
group is unregistered.
"""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest

import pulsar2mysql_inlong as inlong
from conftest import PULSAR_URL, MYSQL, Database, mysql, now_ms, produce, unique
from inlong_manager import ManagerReplay, recorded, recorded_stream

ADMIN_URL = os.environ.get("PULSAR_ADMIN_URL", "http://127.0.0.1:8080")


@pytest.fixture
def manager():
    replay = ManagerReplay(password="manager-" + unique("pw"))
    yield replay
    replay.stop()


def conn_of(replay: ManagerReplay, password: str | None = None):
    return SimpleNamespace(host="127.0.0.1", port=replay.port, login=replay.username,
                           password=replay.password if password is None else password)


def stream_for(group: str, topic: str, db: Database, table: str = "sink_table") -> dict:
    return recorded_stream(
        group, topic=topic.removeprefix("persistent://"), service_url=PULSAR_URL, admin_url=ADMIN_URL,
        jdbc_url=f"jdbc:mysql://{MYSQL.hostname}:{MYSQL.port or 3306}/{db.name}",
        user=db.user, password=db.password, table=table,
    )


# --- the Manager client, against the replay --------------------------------------------------


def test_the_recorded_answer_lists_one_stream_sink_pair(manager):
    answer = recorded("20-cfg-stream-listAll.json")
    group = answer["request"]["body"]["inlongGroupId"]
    manager.groups[group] = answer["response"]["data"]["list"]
    streams = inlong.list_streams(group, conn=conn_of(manager))
    assert inlong.stream_sinks(streams, group) == [{"stream": group, "sink": "mysql_sink"}]
    request = manager.requests[-1]
    # As InLong's own task DAG calls the Manager: credentials as query parameters, a tenant.
    assert request["path"] == "/inlong/manager/api/stream/listAll"
    assert request["params"] == {"username": "admin", "password": manager.password}
    assert request["headers"].get("tenant") == "public"
    assert request["body"]["inlongGroupId"] == group
    doc, env = inlong.take_secrets(inlong.stream_dataflow(streams[0], group))
    assert env == {"PULSAR2MYSQL_MYSQL_PASSWORD": "<redacted>"}
    assert "password" not in json.dumps(doc["streams"][0]["nodes"][1])


def test_every_page_and_every_sink_becomes_a_pair(manager):
    group = "grp-pages"
    streams = []
    for i in range(3):
        s = recorded_stream(group, topic=f"public/default/t{i}", service_url=PULSAR_URL, admin_url=ADMIN_URL,
                            jdbc_url="jdbc:mysql://h:3306/db", user="u", password="p", stream_id=f"s{i}")
        streams.append(s)
    # The third stream writes two MySQL sinks.
    flow = json.loads(streams[2]["extList"][0]["keyValue"])
    extra = dict(flow["streams"][0]["nodes"][1], id="mysql_archive", tableName="archive")
    flow["streams"][0]["nodes"].append(extra)
    flow["streams"][0]["relations"][0]["outputs"].append("mysql_archive")
    streams[2]["extList"][0]["keyValue"] = json.dumps(flow)
    manager.groups[group] = streams
    old = inlong.MANAGER_PAGE_SIZE
    inlong.MANAGER_PAGE_SIZE = 2
    try:
        listed = inlong.list_streams(group, conn=conn_of(manager))
    finally:
        inlong.MANAGER_PAGE_SIZE = old
    assert [r["body"]["pageNum"] for r in manager.requests] == [1, 2]
    assert inlong.stream_sinks(listed, group) == [
        {"stream": "s0", "sink": "mysql_sink"}, {"stream": "s1", "sink": "mysql_sink"},
        {"stream": "s2", "sink": "mysql_sink"}, {"stream": "s2", "sink": "mysql_archive"}]
    assert len({inlong.pair_job_id(group, p["stream"], p["sink"])
                for p in inlong.stream_sinks(listed, group)}) == 4


def test_a_manager_down_or_refusing_fails_clearly_without_the_password(manager):
    group = "grp-errors"
    with pytest.raises(inlong.ManagerError) as refused:
        inlong.list_streams(group, conn=conn_of(manager, password="wrong-secret"))
    text = str(refused.value)
    assert "refused the Connection's login and password (HTTP 403" in text and "wrong-secret" not in text
    with pytest.raises(inlong.ManagerError) as empty:
        inlong.list_streams(group, conn=conn_of(manager))
    assert "lists no stream for group 'grp-errors'" in str(empty.value)
    port = manager.port
    manager.stop()
    with pytest.raises(inlong.ManagerError) as down:
        inlong.list_streams(group, conn=SimpleNamespace(host="127.0.0.1", port=port, login="admin",
                                                         password="secret-down"))
    text = str(down.value)
    assert f"InLong Manager at http://127.0.0.1:{port}" in text and "cannot be reached" in text
    assert "retried" in text and "secret-down" not in text
    manager.server = SimpleNamespace(shutdown=lambda: None, server_close=lambda: None)


def test_only_a_token_leaves_the_document():
    stream = recorded_stream("grp-t", topic="public/default/t", service_url=PULSAR_URL, admin_url=ADMIN_URL,
                             jdbc_url="jdbc:mysql://h:3306/db", user="u", password="pw-sink")
    flow = inlong.stream_dataflow(stream, "grp-t")
    source = flow["streams"][0]["nodes"][0]
    source.update(clientAuthPluginClassName=inlong.PULSAR_TOKEN_AUTH, clientAuthParams="token:jwt-1")
    doc, env = inlong.take_secrets(flow)
    assert env == {"PULSAR2MYSQL_MYSQL_PASSWORD": "pw-sink", "PULSAR2MYSQL_PULSAR_TOKEN": "jwt-1"}
    assert "jwt-1" not in json.dumps(doc) and "pw-sink" not in json.dumps(doc)
    assert source["clientAuthParams"] == "token:jwt-1", "the original document is left as it was"
    # Another auth plugin is no token: it stays, for the runner to refuse it by name.
    source.update(clientAuthPluginClassName="org.apache.pulsar.client.impl.auth.AuthenticationTls",
                  clientAuthParams="tlsCertFile:/c.pem,tlsKeyFile:/k.pem")
    doc, env = inlong.take_secrets(flow)
    assert "PULSAR2MYSQL_PULSAR_TOKEN" not in env
    assert doc["streams"][0]["nodes"][0]["clientAuthParams"] == "tlsCertFile:/c.pem,tlsKeyFile:/k.pem"


def test_a_stream_without_dataflow_or_mysql_sink_is_named():
    stream = recorded_stream("grp-x", topic="public/default/t", service_url=PULSAR_URL, admin_url=ADMIN_URL,
                             jdbc_url="jdbc:mysql://h:3306/db", user="u", password="p")
    bare = dict(stream, extList=[])
    with pytest.raises(inlong.ManagerError, match="has no dataflow yet"):
        inlong.stream_sinks([bare], "grp-x")
    flow = json.loads(stream["extList"][0]["keyValue"])
    flow["streams"][0]["nodes"][1]["type"] = "hiveLoad"
    hive = dict(stream, extList=[dict(stream["extList"][0], keyValue=json.dumps(flow))])
    with pytest.raises(inlong.ManagerError, match="no MySQL sink"):
        inlong.stream_sinks([hive], "grp-x")


@pytest.mark.parametrize("code, retried", [(2, False), (5, False), (3, True), (4, True)])
def test_a_pair_fails_at_once_where_a_retry_cannot_help(monkeypatch, code, retried):
    """As every sync task (pulsar2mysql_airflow.NO_RETRY_EXIT_CODES): exit 2 (configuration) and
    5 (the bad-record limit) fail the pair's task at once; the others are Airflow's to retry.
    The runner's exit is stubbed here (the real one is run by the tests above)."""
    from airflow.exceptions import AirflowFailException

    group = unique("il").replace("_", "-")
    stream = recorded_stream(group, topic="public/default/t", service_url=PULSAR_URL, admin_url=ADMIN_URL,
                             jdbc_url="jdbc:mysql://127.0.0.1:3306/db", user="u", password="pw")
    monkeypatch.setattr(inlong, "list_streams", lambda *a, **k: [stream])
    monkeypatch.setattr(inlong, "window", lambda spec, context: ("1000", "2000"))
    monkeypatch.setattr(inlong, "run_runner", lambda doc, env, log=print: (code, None))
    spec = {"group_id": group}
    pair = {"stream": group, "sink": "mysql_sink"}
    if retried:
        with pytest.raises(RuntimeError, match=f"exit code {code}"):
            inlong.sync_pair(spec, pair, {}, log=lambda _: None)
    else:
        with pytest.raises(AirflowFailException, match="retry"):
            inlong.sync_pair(spec, pair, {}, log=lambda _: None)


def test_the_later_registration_wins_and_the_delete_echo_changes_nothing(tmp_path):
    """The recorded dag_creator runs: two registrations half a second apart at approval, then
    the delete's echo with start_time == end_time."""
    runs = recorded("airflow-dag_creator-runs.json")["dag_runs"]
    first, second, echo = (r["conf"] for r in runs)
    when = [int(time.mktime(time.strptime(r["logical_date"][:19], "%Y-%m-%dT%H:%M:%S")) * 1000) for r in runs]
    when[1] += 500  # the two triggers are half a second apart (same second above)
    spec1, spec2 = inlong.spec_from_conf(first), inlong.spec_from_conf(second)
    # Executed out of order: the later trigger first, then the earlier one.
    assert inlong.register(spec2, when[1], tmp_path) is not None
    assert inlong.register(spec1, when[0], tmp_path) is None
    path = inlong.task_file(tmp_path, first["inlong_group_id"])
    assert inlong.read_spec(path)["start_time"] == second["start_time"]
    # In order, the later one replaces the earlier one.
    assert inlong.register(spec1, when[0], tmp_path / "b") is not None
    assert inlong.register(spec2, when[1], tmp_path / "b") is not None
    assert inlong.read_spec(inlong.task_file(tmp_path / "b", first["inlong_group_id"]))["start_time"] == second["start_time"]
    with pytest.raises(inlong.DeleteEcho, match="stays registered"):
        inlong.spec_from_conf(echo)


# --- the whole chain under `airflow dags test` -------------------------------------------------


def creator_runs(home, confs_and_dates):
    for conf, logical in confs_and_dates:
        out = home.dags_test("dag_creator", conf=conf, logical_date=logical)
        assert out.returncode == 0 or "skipped" in out.stdout + out.stderr, out.stdout[-3000:]


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}+00:00"


def test_a_group_syncs_from_the_manager_with_nothing_written_by_hand(airflow_home, manager, topic):
    home = airflow_home("dag_creator.py", "dag_cleaner.py")
    home.env["AIRFLOW_CONN_INLONG_CONNECTION"] = manager.connection_uri()
    # One quick retry, so that `dags test` (which waits out retry delays) sees it within seconds.
    home.env["AIRFLOW__PULSAR2MYSQL__TASK_RETRIES"] = "1"
    home.env["AIRFLOW__PULSAR2MYSQL__TASK_RETRY_DELAY_SECONDS"] = "1"
    db = Database()
    try:
        group = unique("il").replace("_", "-")
        dag_id = f"inlong_offline_task_{group}"
        manager.groups[group] = [stream_for(group, topic, db)]

        start, _ = produce(topic, 40)
        time.sleep(0.2)
        logical = now_ms()
        base = {"inlong_group_id": group, "end_time": start + 3_600_000, "boundary_type": "time",
                "connection_id": "inlong_connection", "cron_expr": None, "seconds_interval": "10",
                "timezone": "Asia/Shanghai"}
        # Approval: two triggers, the second with the start moved to "now"; then the delete echo.
        first = {**base, "start_time": start - 120_000}
        second = {**base, "start_time": start - 60_000}
        echo = {**base, "start_time": logical, "end_time": logical}
        creator_runs(home, [(first, iso(logical - 3000)), (second, iso(logical - 2500)),
                            (echo, iso(logical - 2000))])
        assert sorted(home.task_states("dag_creator")) == ["skipped", "success", "success"]
        assert "the group stays registered as it was" in home.logs_text()
        spec = inlong.read_spec(home.dags / f"{dag_id}.py")
        assert spec["start_time"] == second["start_time"] and spec["end_time"] == base["end_time"]

        # One interval: the window [logical - 60 s, logical) holds the 40 records.
        out = home.dags_test(dag_id, logical_date=iso(logical))
        states = sorted(home.task_states(dag_id))
        assert states == ["success", "success"], out.stdout[-6000:]
        assert db.rows() == [(i, f"msg-{i}") for i in range(40)]
        summary = home.xcom(dag_id, dag_id)
        summary = summary[0] if isinstance(summary, list) else summary
        assert summary["job_id"] == f"inlong_{group}.{group}.mysql_sink"
        assert summary["rows_written"] == 40 and summary["table"] == "sink_table"
        # seconds_interval 10 runs at the floor of a minute (pulsar2mysql_airflow.floor_interval).
        assert int(summary["range"]["to"]) - int(summary["range"]["from"]) == inlong.floor_interval(10) * 1000
        everything = home.logs_text() + home.stored_text()
        assert db.password not in everything and manager.password not in everything

        # Edit the group in InLong: a new table. The next interval writes there.
        mysql("CREATE TABLE sink_v2 LIKE sink_table", db.name)
        manager.groups[group] = [stream_for(group, topic, db, table="sink_v2")]
        produce(topic, 10, start=100)
        time.sleep(0.2)
        # The next interval, [logical, logical + 60 s): windows of one job follow each other
        # (one ending now would overlap the first and read its 40 records again).
        later = logical + inlong.floor_interval(10) * 1000
        out = home.dags_test(dag_id, logical_date=iso(later))
        assert "sink_v2" in out.stdout + out.stderr, out.stdout[-6000:]
        assert mysql("SELECT COUNT(*) FROM sink_v2", db.name) == [["10"]]
        assert db.rows() == [(i, f"msg-{i}") for i in range(40)]

        # An override file that disagrees with InLong: refused, naming both places, no retry.
        (home.groups / f"{group}.toml").write_text('table = "sink_table"\n')
        out = home.dags_test(dag_id, logical_date=iso(later + 20_000))
        text = out.stdout + out.stderr
        assert "--table 'sink_table' disagrees with the InLong dataflow's mysqlLoad node" in text, text[-6000:]
        (home.groups / f"{group}.toml").unlink()

        # The Manager down: the dataflow task fails, saying so, and is retried.
        manager.stop()
        out = home.dags_test(dag_id, logical_date=iso(later + 40_000))
        text = out.stdout + out.stderr
        down = f"InLong Manager at http://127.0.0.1:{manager.port} (Airflow Connection 'inlong_connection') cannot be reached"
        assert down in text, text[-6000:]
        tries = home.query("SELECT run_id, state, try_number FROM task_instance WHERE dag_id = ? "
                           "AND task_id = 'dataflow'", dag_id)
        assert [(s, n) for _, s, n in tries if s != "success"] == [("failed", 2)], tries  # a try, a retry
        manager.server = SimpleNamespace(shutdown=lambda: None, server_close=lambda: None)

        # Unregister, as the Manager does.
        home.dags_test("dag_cleaner", conf={"inlong_group_id": f"inlong_offline_task_{dag_id}"})
        assert not (home.dags / f"{dag_id}.py").exists()
    finally:
        db.drop()
