"""`airflow dags test` of the example DAG against the real Pulsar and MariaDB."""

import json

from conftest import REPO, Database, parse_summary, produce

DAG_ID = "pulsar2mysql_example"


def example_home(airflow_home, topic):
    """A dags folder holding the example as a user would have edited it: their topic, no
    retries (a failing test should fail now, not in minutes) and a short timeout."""
    home = airflow_home("pulsar2mysql_example.py")
    path = home.dags / "pulsar2mysql_example.py"
    text = path.read_text()
    text = text.replace('TOPIC = "persistent://public/default/test"', f"TOPIC = {topic!r}")
    text = text.replace(
        "default_args=DEFAULT_TASK_ARGS,",
        'default_args={**DEFAULT_TASK_ARGS, "retries": 0, "execution_timeout": __import__("datetime").timedelta(seconds=90)},',
    )
    assert topic in text and '"retries": 0' in text
    path.write_text(text)
    return home


def test_window_moves_into_mysql_and_summary_in_xcom(airflow_home, db: Database, topic):
    home = example_home(airflow_home, topic)
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri()
    produce(topic, 30, start=0)  # before the window
    start, end = produce(topic, 100, start=100)
    produce(topic, 30, start=1000)  # after the window

    out = home.dags_test(DAG_ID, conf={"from": start, "to": end})

    assert home.task_states(DAG_ID) == ["success"], out.stdout[-6000:] + out.stderr[-3000:]
    assert db.rows() == [(i, f"msg-{i}") for i in range(100, 200)]
    summary = parse_summary(home.xcom(DAG_ID, "sync"))
    assert summary["outcome"] in ("success", "completed", "ok") or summary["exit_code"] == 0, summary
    assert summary["rows_written"] == 100 and summary["exit_code"] == 0
    assert summary["range"]["from"] == str(start) and summary["range"]["to"] == str(end)
    # The password reached the runner (it connected as a password-protected user) but appears
    # in neither the task log, the command output nor anything Airflow stored.
    for text in (out.stdout, out.stderr, home.logs_text(), home.stored_text()):
        assert db.password not in text
    assert "--mysql-password" not in out.stdout + home.logs_text()

    # Re-running the same window (an Airflow retry or clear) writes nothing twice.
    home.dags_test(DAG_ID, conf={"from": start, "to": end})
    assert len(db.rows()) == 100


def test_wrong_password_fails_the_task(airflow_home, db: Database, topic):
    home = example_home(airflow_home, topic)
    wrong = "wrong-" + db.password
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = db.conn_uri(password=wrong)
    start, end = produce(topic, 10)

    out = home.dags_test(DAG_ID, conf={"from": start, "to": end}, timeout=180)

    assert home.task_states(DAG_ID) == ["failed"], out.stdout[-6000:]
    logs = home.logs_text() + out.stdout + out.stderr
    assert "exit code 4" in logs or '"exit_code":4' in logs, logs[-4000:]
    assert wrong not in logs and wrong not in home.stored_text()
    assert db.rows() == []
    assert json.dumps(wrong) not in home.stored_text()


def _tls_connection(db: Database, extra: dict) -> str:
    """The MySQL Connection as Airflow's JSON form, with a TLS extra."""
    uri = db.conn_uri()
    rest = uri.split("://", 1)[1]
    login, rest = rest.split("@", 1)
    hostport, schema = rest.split("/", 1)
    host, port = hostport.rsplit(":", 1)
    return json.dumps({
        "conn_type": "mysql", "host": host, "port": int(port), "schema": schema,
        "login": db.user, "password": db.password, "extra": extra,
    })


def test_tls_from_the_connection_extra(airflow_home, db: Database, topic):
    """The Connection's TLS extra reaches the runner: a verified connection to the local
    MariaDB (its certificate is from the local CA) syncs."""
    import os

    ca = os.environ.get("PULSAR_TLS_CA_FILE") or str(REPO / ".cache" / "secrets" / "ca.cert.pem")
    home = example_home(airflow_home, topic)
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = _tls_connection(
        db, {"ssl_mode": "VERIFY_IDENTITY", "ssl": {"ca": ca}}
    )
    start, end = produce(topic, 20, start=0)
    out = home.dags_test(DAG_ID, conf={"from": start, "to": end})
    assert home.task_states(DAG_ID) == ["success"], out.stdout[-6000:] + out.stderr[-3000:]
    assert len(db.rows()) == 20


def test_an_untrusted_certificate_fails_the_task_as_configuration(airflow_home, db: Database, topic):
    """A CA in the Connection's extra that did not sign the server's certificate: exit 2."""
    home = example_home(airflow_home, topic)
    start, end = produce(topic, 5, start=0)
    home.env["AIRFLOW_CONN_PULSAR2MYSQL_MYSQL"] = _tls_connection(
        db, {"ssl_mode": "VERIFY_CA", "ssl_ca": "/etc/ssl/certs/ca-certificates.crt"}
    )
    out = home.dags_test(DAG_ID, conf={"from": start, "to": end}, timeout=180)
    assert home.task_states(DAG_ID) == ["failed"], out.stdout[-6000:]
    logs = home.logs_text() + out.stdout + out.stderr
    assert "exit code 2" in logs or '"exit_code":2' in logs, logs[-4000:]
