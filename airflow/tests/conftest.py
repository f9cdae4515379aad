"""Fixtures for the DAG tests: a private AIRFLOW_HOME per test (its own sqlite DB and dags
folder), a private MySQL database and Pulsar topic per test, and the real runner binary.

Needs the services of scripts/services.sh (PULSAR_URL, MYSQL_URL) and PULSAR2MYSQL_BIN /
P2M_SEED_PRODUCER (airflow/run-tests.sh sets both).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

import pytest

HERE = Path(__file__).resolve().parent
DAGS_SRC = HERE.parent / "dags"
REPO = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
HELPERS = ("pulsar2mysql_airflow.py", "pulsar2mysql_inlong.py")
# Read without importing airflow (which reads its config, hence AIRFLOW_HOME, when imported).
AIRFLOW_MAJOR = int(version("apache-airflow").split(".")[0])

sys.path.insert(0, str(DAGS_SRC))  # as the DAG processor does for the dags folder

# In-process Airflow (DagBag in test_dagbag.py) gets a throw-away home too, never ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="p2m-airflow-home-")
atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

MYSQL = urlparse(os.environ.get("MYSQL_URL", "mysql://root@127.0.0.1:3306/pulsar2mysql"))
PULSAR_URL = os.environ.get("PULSAR_URL", "pulsar://127.0.0.1:6650")
RUNNER = os.environ.get("PULSAR2MYSQL_BIN", str(REPO / "target/release/pulsar2mysql"))
PRODUCER = os.environ.get("P2M_SEED_PRODUCER", str(REPO / "target/release/examples/seed_producer"))


def unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- MySQL -----------------------------------------------------------------------------------


def mysql(sql: str, database: str | None = None) -> list[list[str]]:
    """Runs SQL as the admin account of MYSQL_URL with the mysql client; rows as strings."""
    cmd = ["mysql", "-h", MYSQL.hostname or "127.0.0.1", "-P", str(MYSQL.port or 3306),
           "-u", MYSQL.username or "root", "--batch", "--skip-column-names"]
    if database:
        cmd.append(database)
    env = dict(os.environ, MYSQL_PWD=MYSQL.password or "")
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"mysql failed: {out.stderr.strip()}\n{sql}")
    return [line.split("\t") for line in out.stdout.splitlines()]


class Database:
    """A fresh database with the seed's sink_table and a password-protected user for it."""

    def __init__(self):
        self.name = unique("p2m_af")
        self.user = self.name[-30:]
        self.password = "pw-" + uuid.uuid4().hex
        mysql(
            f"CREATE DATABASE `{self.name}`;"
            f"CREATE TABLE `{self.name}`.sink_table (id INT AUTO_INCREMENT PRIMARY KEY,"
            " name VARCHAR(255) NOT NULL, create_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP);"
            f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}';"
            f"CREATE USER '{self.user}'@'localhost' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL ON `{self.name}`.* TO '{self.user}'@'%';"
            f"GRANT ALL ON `{self.name}`.* TO '{self.user}'@'localhost';"
        )

    def conn_uri(self, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"mysql://{self.user}:{pw}@{MYSQL.hostname}:{MYSQL.port or 3306}/{self.name}"

    def rows(self) -> list[tuple[int, str]]:
        return [(int(i), n) for i, n in mysql("SELECT id, name FROM sink_table ORDER BY id", self.name)]

    def drop(self):
        mysql(
            f"DROP DATABASE IF EXISTS `{self.name}`;"
            f"DROP USER IF EXISTS '{self.user}'@'%';"
            f"DROP USER IF EXISTS '{self.user}'@'localhost';"
        )


@pytest.fixture
def db():
    database = Database()
    yield database
    database.drop()


# --- Pulsar ----------------------------------------------------------------------------------


@pytest.fixture
def topic() -> str:
    return f"persistent://public/default/{unique('p2m_af')}"


def produce(topic: str, count: int, start: int = 0) -> tuple[int, int]:
    """Writes records ``i|msg-i``; returns epoch ms just before and just after publishing."""
    before = now_ms()
    subprocess.run(
        [PRODUCER, "--url", PULSAR_URL, "--topic", topic, "--count", str(count), "--start", str(start)],
        check=True, timeout=120, capture_output=True,
    )
    time.sleep(0.05)
    return before, now_ms() + 1


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILLs the session a test started (start_new_session=True): its process group and
    every process group its children opened inside that session (Airflow 2's scheduler runs
    its DagFileProcessorManager in a group of its own, with its environment overwritten by
    setproctitle, so neither the group nor kill_processes_using would find it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp session ...: comm may hold spaces, split after ')'
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == proc.pid and int(stat.parent.name) != os.getpid():
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def kill_processes_using(path: Path) -> None:
    """SIGKILLs what a test started indirectly (tasks the scheduler spawned in their own
    sessions): only processes whose command line names the test's private directory."""
    needle = str(path).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if needle in (proc / "cmdline").read_bytes() or needle in (proc / "environ").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


# --- Airflow ---------------------------------------------------------------------------------


class AirflowHome:
    """A private AIRFLOW_HOME: its own sqlite DB, dags folder, logs and group config folder."""

    def __init__(self, root: Path, dag_files=()):
        self.root = root
        self.home = root / "home"
        self.dags = root / "dags"
        self.groups = root / "groups"
        for d in (self.home, self.dags, self.groups):
            d.mkdir(parents=True)
        for name in (*HELPERS, *dag_files):
            shutil.copy(DAGS_SRC / name, self.dags / name)
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__PULSAR2MYSQL__GROUP_CONFIG_DIR": str(self.groups),
            "PULSAR2MYSQL_BIN": RUNNER,
            "PULSAR2MYSQL_PULSAR_URL": PULSAR_URL,
        }
        if AIRFLOW_MAJOR == 2:
            # dag_cleaner waits this long after removing a file; `dags test` runs no DAG
            # processor, so there is no parse in flight to wait for (tests that start a
            # scheduler set their own).
            self.env["AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT"] = "2"
        self.outputs: list[str] = []  # of `dags test` runs, which log tasks to stdout
        self.airflow("db", "migrate", timeout=300)

    def airflow(self, *args, timeout=300, check=True) -> subprocess.CompletedProcess:
        """Runs the airflow CLI; on timeout kills its whole process group (the runner too)."""
        proc = subprocess.Popen([str(VENV_BIN / "airflow"), *args], env=self.env, cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            stdout, stderr = proc.communicate()
            raise AssertionError(f"`airflow {' '.join(args)}` did not finish in {timeout}s:\n"
                                 f"{stdout[-4000:]}\n{stderr[-4000:]}") from None
        finally:
            kill_group(proc)  # nothing of it may outlive the test
        out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        if check and out.returncode != 0:
            raise AssertionError(f"`airflow {' '.join(args)}` exited {out.returncode}:\n"
                                 f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
        return out

    def dags_test(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None,
                  timeout=300) -> subprocess.CompletedProcess:
        args = ["dags", "test", dag_id]
        if logical_date:
            args.append(logical_date)
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        out = self.airflow(*args, timeout=timeout, check=False)
        self.outputs.append(out.stdout + out.stderr)
        return out

    def query(self, sql: str, *params):
        with sqlite3.connect(self.home / "airflow.db") as c:
            return c.execute(sql, params).fetchall()

    def task_states(self, dag_id: str) -> list[str]:
        return [s for (s,) in self.query("SELECT state FROM task_instance WHERE dag_id = ?", dag_id)]

    def xcom(self, dag_id: str, task_id: str):
        rows = self.query("SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'",
                          dag_id, task_id)
        assert rows, f"no XCom return_value for {dag_id}.{task_id}"
        value = rows[-1][0]
        value = json.loads(value) if isinstance(value, (str, bytes)) else value
        return value

    def logs_text(self) -> str:
        """Task logs: log files and the output of `dags test` runs."""
        files = (p.read_text(errors="replace") for p in (self.home / "logs").rglob("*") if p.is_file())
        return "\n".join([*files, *self.outputs])

    def stored_text(self) -> str:
        """Everything Airflow stored about runs (rendered fields included), as text."""
        with sqlite3.connect(self.home / "airflow.db") as c:
            return "\n".join(repr(r) for t in ("rendered_task_instance_fields", "xcom", "task_instance")
                             for r in c.execute(f"SELECT * FROM {t}"))


@pytest.fixture
def airflow_home(tmp_path):
    def make(*dag_files) -> AirflowHome:
        return AirflowHome(tmp_path, dag_files)

    yield make
    kill_processes_using(tmp_path)


def parse_summary(value) -> dict:
    """The runner's summary from an XCom value (BashOperator pushes the last stdout line)."""
    summary = json.loads(value) if isinstance(value, str) else value
    assert isinstance(summary, dict), f"XCom is not the runner's JSON summary: {value!r}"
    for key in ("job_id", "topic", "table", "range", "records_read", "rows_written", "outcome", "exit_code"):
        assert key in summary, f"summary lacks {key}: {summary}"
    return summary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float, logs=lambda: ""):
    """Polls check() until it returns something truthy; fails with `what` and the logs."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, OSError) as e:
            last = e
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{logs()}")
