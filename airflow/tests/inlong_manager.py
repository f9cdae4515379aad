"""A stand-in for InLong Manager's Airflow schedule engine: sends Airflow exactly the requests an
unchanged Manager sends (its `manager-schedule` module: AirflowScheduleEngine and its client),
in the same order, and reacts to the answers the same way (any 2xx is success; anything else
is logged and the Manager goes on, never retrying).

What is reproduced, byte for byte:

* URL = ``base_url`` + path by plain string concatenation (a base URL ending in ``/`` gives
  ``//api/v1/...``);
* ``Authorization: Basic base64(user:password)`` on every call, and ``Content-Type:
  application/json; charset=utf-8`` on every call that has a body (the type of the JSON body the
  Manager's HTTP client attaches). The body-less GET and DELETE carry no Content-Type: with one,
  Airflow 2.10 answers the DELETE with 400 Bad Request (it tries to read the empty body as
  JSON), yet the Manager's DELETE is seen to delete the DAG (issue 12), so it has none;
* bodies as a default Jackson ``ObjectMapper`` writes them: compact (no spaces), fields in the
  Java classes' declaration order, null fields present, non-ASCII written as UTF-8;
* start-up: A ``GET /api/v1/connections/{id}``; B ``POST /api/v1/connections`` when A is not
  2xx; C ``PATCH /api/v1/dags/dag_cleaner`` then ``/dag_creator`` with ``{"is_paused":false}``;
  D ``PATCH /api/v1/dags?dag_id_pattern=inlong_offline_task_`` with ``{"is_paused":false}``;
* E register / update: ``POST /api/v1/dags/dag_creator/dagRuns`` with ``{"conf":{...}}``;
* F unregister: ``POST /api/v1/dags/dag_cleaner/dagRuns`` with the prefix added twice to the
  group id, then G right away ``DELETE /api/v1/dags/inlong_offline_task_<groupId>``.
"""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TASK_PREFIX = "inlong_offline_task_"
SUBMIT_PATH = "/inlong/manager/api/group/submitOfflineJob"


def jackson(value) -> bytes:
    """JSON as Jackson's default ObjectMapper writes it: compact, nulls kept, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dag_run_conf(group_id: str, start_time: int, end_time: int, *, cron_expr: str | None = None,
                 seconds_interval: str | None = None, connection_id: str = "inlong_connection",
                 boundary_type: str | None = "time", timezone: str | None = "Asia/Shanghai") -> dict:
    """The Manager's DAGRunConf, keys in its field order, null keys present."""
    return {
        "inlong_group_id": group_id,
        "start_time": start_time,
        "end_time": end_time,
        "boundary_type": boundary_type,
        "cron_expr": cron_expr,
        "seconds_interval": seconds_interval,
        "connection_id": connection_id,
        "timezone": timezone,
    }


@dataclass
class Call:
    label: str
    method: str
    url: str
    body: bytes | None
    status: int
    answer: str


@dataclass
class Manager:
    base_url: str  # schedule.engine.airflow.baseUrl, used as configured
    username: str
    password: str
    manager_host: str = "127.0.0.1"  # schedule.engine.inlong.manager.url, split
    manager_port: int = 8083
    manager_login: str = "admin"
    manager_password: str = "inlong"
    connection_id: str = "inlong_connection"
    creator_id: str = "dag_creator"
    cleaner_id: str = "dag_cleaner"
    calls: list[Call] = field(default_factory=list)

    def send(self, label: str, method: str, path: str, body=None,
             content_type_without_body: bool = False) -> Call:
        url = self.base_url + path  # plain concatenation, as the Manager does
        parts = urlsplit(url)
        target = url[len(f"{parts.scheme}://{parts.netloc}"):]
        data = None if body is None else jackson(body)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        content_type = "application/json; charset=utf-8"
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            conn.putheader("Authorization", f"Basic {token}")
            if data is not None:
                conn.putheader("Content-Type", content_type)
                conn.putheader("Content-Length", str(len(data)))
            elif content_type_without_body:
                conn.putheader("Content-Type", content_type)
            conn.endheaders(data)
            response = conn.getresponse()
            call = Call(label, method, url, data, response.status, response.read().decode(errors="replace"))
        finally:
            conn.close()
        self.calls.append(call)  # the Manager logs a non-2xx answer and goes on
        return call

    # --- start-up (AirflowScheduleEngine.start) ------------------------------------------------

    def start(self) -> list[Call]:
        first = len(self.calls)
        a = self.send("A", "GET", f"/api/v1/connections/{self.connection_id}")
        if not 200 <= a.status < 300:
            self.send("B", "POST", "/api/v1/connections", {
                "connection_id": self.connection_id,
                "conn_type": "HTTP",
                "description": "",
                "host": self.manager_host,
                "login": self.manager_login,
                "schema": SUBMIT_PATH,
                "port": self.manager_port,
                "password": self.manager_password,
                "extra": "",
            })
        for dag_id in (self.cleaner_id, self.creator_id):
            self.send("C", "PATCH", f"/api/v1/dags/{dag_id}", {"is_paused": False})
        self.send("D", "PATCH", f"/api/v1/dags?dag_id_pattern={TASK_PREFIX}", {"is_paused": False})
        return self.calls[first:]

    # --- group operations ------------------------------------------------------------------------

    def register(self, conf: dict) -> Call:
        """Register and update send the same request."""
        return self.send("E", "POST", f"/api/v1/dags/{self.creator_id}/dagRuns", {"conf": conf})

    def unregister(self, group_id: str) -> tuple[Call, Call]:
        conf = dag_run_conf(TASK_PREFIX + TASK_PREFIX + group_id, 0, 0, boundary_type=None,
                            connection_id=None, timezone=None)
        f = self.send("F", "POST", f"/api/v1/dags/{self.cleaner_id}/dagRuns", {"conf": conf})
        g = self.send("G", "DELETE", f"/api/v1/dags/{TASK_PREFIX}{group_id}")  # without waiting
        return f, g


# --- InLong Manager's REST API, replayed ----------------------------------------------------------
#
# A real Manager cannot run in CI (its artifacts are not on Maven Central). ManagerReplay answers
# the one call the group's task DAG makes, POST /inlong/manager/api/stream/listAll, exactly as the
# real Manager answered it (tests/data/inlong-manager/20-cfg-stream-listAll.json, recorded from
# apache/inlong a6c7a6a670c3), and without credentials exactly as 28-cfg-no-credentials.json.
# The recorded stream is re-pointed at a test's topic, table and account with recorded_stream().

import copy
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "data" / "inlong-manager"


def recorded(name: str) -> dict:
    return json.loads((RECORDED / name).read_text())


def recorded_stream(group_id: str, *, topic: str, service_url: str, admin_url: str, jdbc_url: str,
                    user: str, password: str, table: str = "sink_table", stream_id: str | None = None) -> dict:
    """The recorded listAll stream entry, renamed to ``group_id`` and pointed at a test's topic
    (``tenant/namespace/name``), Pulsar, JDBC URL (with the database), account and table. Only
    values change: every key, the dataflow's shape and the Manager's habits stay as recorded."""
    stream = copy.deepcopy(recorded("20-cfg-stream-listAll.json")["response"]["data"]["list"][0])
    old_group = stream["inlongGroupId"]
    sid = stream_id or group_id
    flow = json.loads(stream["extList"][0]["keyValue"])
    flow["groupId"] = group_id
    flow["streams"][0]["streamId"] = sid
    for node in flow["streams"][0]["nodes"]:
        if node["type"] == "pulsarExtract":
            node.update(topic=topic, serviceUrl=service_url, adminUrl=admin_url)
        elif node["type"] == "mysqlLoad":
            node.update(url=jdbc_url, username=user, password=password, tableName=table)
    for item in [stream, *stream["fieldList"], *stream["extList"], *stream["sourceList"], *stream["sinkList"]]:
        if item.get("inlongGroupId") == old_group:
            item["inlongGroupId"] = group_id
        if "inlongStreamId" in item and item["inlongStreamId"] == old_group:
            item["inlongStreamId"] = sid
    stream.update(name=sid, mqResource=sid)
    stream["extList"][0]["keyValue"] = json.dumps(flow, separators=(",", ":"))
    tenant, namespace, name = topic.split("/")
    stream["sourceList"][0].update(pulsarTenant=tenant, namespace=namespace, topic=name,
                                   serviceUrl=service_url, adminUrl=admin_url)
    stream["sinkList"][0].update(jdbcUrl=jdbc_url.rsplit("/", 1)[0], username=user, password=password,
                                 databaseName=jdbc_url.rsplit("/", 1)[1], tableName=table)
    return stream


class ManagerReplay:
    """A local HTTP server answering ``stream/listAll`` as the recorded Manager did.

    ``groups[group_id]`` is the list of stream entries to answer with (edit it to "edit the group
    in InLong"). Without ``username``/``password`` query parameters (or with wrong ones) it answers
    the recorded 403; every request is kept in ``requests`` (path, query, headers, body)."""

    def __init__(self, username: str = "admin", password: str = "inlong"):
        self.username, self.password = username, password
        self.groups: dict[str, list[dict]] = {}
        self.requests: list[dict] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                path, _, query = self.path.partition("?")
                params = {k: v[0] for k, v in parse_qs(query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                replay.requests.append({"path": path, "params": params, "body": body,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                if (params.get("username"), params.get("password")) != (replay.username, replay.password):
                    answer = dict(recorded("28-cfg-no-credentials.json")["response"], path=path)
                    return self.send(403, answer)
                if path != "/inlong/manager/api/stream/listAll":
                    return self.send(404, {"status": 404, "error": "Not Found", "path": path})
                streams = replay.groups.get(body.get("inlongGroupId"), [])
                page, size = int(body.get("pageNum") or 1), int(body.get("pageSize") or 10)
                chosen = streams[(page - 1) * size: page * size]
                answer = copy.deepcopy(recorded("20-cfg-stream-listAll.json")["response"])
                answer["data"].update(list=chosen, total=len(streams), pageSize=size, pageNum=page)
                self.send(200, answer)

            def send(self, status: int, answer: dict):
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def connection_uri(self, password: str | None = None) -> str:
        """The ``inlong_connection`` as the Manager creates it (HTTP, host, port, login, password)."""
        from urllib.parse import quote

        pw = self.password if password is None else password
        return f"http://{quote(self.username)}:{quote(pw)}@127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
