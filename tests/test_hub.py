"""A class on a real JupyterHub (docs/teaching.md), end to end, on 127.0.0.1 only.

Opt-in (about a minute and a half on 2 cores, more than the suite's budget): ``make hub-test``, which
installs the ``hub`` extra and configurable-http-proxy (npm, into .venv/node) and sets
CONVCOURSE_HUB_TEST=1.  Everything lives in the test's own temporary folder: the hub's database,
cookie secret and configuration, the dummy authenticator (one shared password) and the simple local
spawner, whose learners' servers run as the hub's own user (root here) with their home folders
under ``home/<user>``.

The test creates three learners through the hub's REST API (an admin service token), gets a token
for each, starts their servers, hands out exercise set 01 through each server's contents API (what
an nbgitpuller link does), has each learner run it cell by cell in a kernel of their own server
(the kernels REST API and its websocket) and save it: alice and carol with the solution's code,
bob untouched.  Then it copies the home folders, grades them with ``python -m utils.grade home
--gradebook`` and checks one gradebook row per learner.  It stops every server and the hub, and
checks that no process it started is left.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHP = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
LEARNERS = ("alice", "bob", "carol")
SOLVERS = {"alice", "carol"}
START_TIMEOUT_S = 120
CELL_TIMEOUT_S = 120

pytestmark = [
    pytest.mark.skipif(os.environ.get("CONVCOURSE_HUB_TEST") != "1",
                       reason="opt-in (about 90 s): run make hub-test"),
    pytest.mark.skipif(not CHP.exists(), reason="configurable-http-proxy is missing (make hub-test installs it)"),
]
requests = pytest.importorskip("requests")
websocket = pytest.importorskip("websocket")
pytest.importorskip("jupyterhub", reason="the hub extra is not installed (make hub-test installs it)")

EXERCISE = sorted((ROOT / "exercises").glob("ex01_*.ipynb"))
SOLUTION = sorted((ROOT / "solutions").glob("ex01_*.ipynb"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{work}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = set({learners!r})
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{work}/home/{{username}}"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root", "--ServerApp.ip=127.0.0.1"]
c.Spawner.environment = {{"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "JUPYTER_RUNTIME_DIR": "{work}/runtime"}}
c.Spawner.start_timeout = {start_timeout}
c.Spawner.http_timeout = {start_timeout}
c.JupyterHub.services = [{{"name": "course-admin", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "course-admin", "services": ["course-admin"],
                             "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]}}]
"""


class Hub:
    """A JupyterHub started in ``work``; ``api(method, path, token, **kw)`` calls its REST API."""

    def __init__(self, work: Path):
        self.work, self.port = work, free_port()
        self.admin_token = secrets.token_hex(32)
        self.password = secrets.token_hex(8)
        (work / "home").mkdir(parents=True)
        (work / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
            port=self.port, hub_port=free_port(), proxy_api_port=free_port(), chp=str(CHP), work=work,
            password=self.password, learners=list(LEARNERS), python=sys.executable, token=self.admin_token,
            start_timeout=START_TIMEOUT_S))
        self.log = open(work / "jupyterhub.log", "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT), CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(32))
        self.process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(work / "jupyterhub_config.py")],
                                        cwd=work, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, token: str, **kwargs):
        response = requests.request(method, f"{self.base}/hub/api{path}", timeout=30,
                                    headers={"Authorization": f"token {token}"}, **kwargs)
        assert response.status_code < 400, (method, path, response.status_code, response.text[:500])
        return response.json() if response.content else None

    def login(self, name: str) -> None:
        """Log ``name`` in through the hub's login form (dummy authenticator): the hub page answers."""
        session = requests.Session()
        session.get(f"{self.base}/hub/login", timeout=30)
        response = session.post(f"{self.base}/hub/login?next=/hub/home", timeout=30,
                                data={"username": name, "password": self.password,
                                      "_xsrf": session.cookies.get("_xsrf", "")}, allow_redirects=False)
        assert response.status_code == 302, (name, response.status_code, response.text[:300])
        assert session.get(f"{self.base}/hub/api/user", timeout=30).json()["name"] == name
        session.close()

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_text()
            try:
                if requests.get(f"{self.base}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError("the hub did not answer:\n" + self.log_text())

    def log_text(self) -> str:
        self.log.flush()
        return (self.work / "jupyterhub.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class LearnerServer:
    """One learner's single-user server, reached through the hub's proxy with the learner's token."""

    def __init__(self, hub: Hub, name: str, token: str):
        self.hub, self.name, self.token = hub, name, token
        self.url = f"{hub.base}/user/{name}"

    def call(self, method: str, path: str, **kwargs):
        response = requests.request(method, f"{self.url}/api{path}", timeout=60,
                                    headers={"Authorization": f"token {self.token}"}, **kwargs)
        assert response.status_code < 400, (self.name, method, path, response.status_code, response.text[:500])
        return response.json() if response.content else None

    def put_notebook(self, path: str, nb) -> None:
        self.call("PUT", "/contents/exercises", json={"type": "directory"})
        self.call("PUT", f"/contents/{path}", json={"type": "notebook", "format": "json", "content": nb})

    def run_notebook(self, path: str) -> None:
        """Open ``path`` from the server, run every code cell in a new kernel, save the outputs."""
        nb = nbformat.from_dict(self.call("GET", f"/contents/{path}")["content"])
        kernel = self.call("POST", "/kernels", json={"name": "python3", "path": path})
        ws_url = f"{self.url.replace('http://', 'ws://')}/api/kernels/{kernel['id']}/channels"
        connection = websocket.create_connection(ws_url, header=[f"Authorization: token {self.token}"],
                                                 timeout=CELL_TIMEOUT_S)
        try:
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = execute(connection, cell.source)
        finally:
            connection.close()
            self.call("DELETE", f"/kernels/{kernel['id']}")
        self.call("PUT", f"/contents/{path}", json={"type": "notebook", "format": "json", "content": nb})


def execute(connection, code: str) -> tuple[list, int | None]:
    """Send one execute_request on the kernel's websocket; collect its outputs until idle."""
    msg_id = uuid.uuid4().hex
    connection.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "learner", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": False}}))
    outputs, count, deadline = [], None, time.monotonic() + CELL_TIMEOUT_S
    while time.monotonic() < deadline:
        message = json.loads(connection.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "status" and content["execution_state"] == "idle":
            return outputs, count
        if kind == "execute_input":
            count = content.get("execution_count")
        elif kind == "stream":
            outputs.append(nbformat.v4.new_output("stream", name=content["name"], text=content["text"]))
        elif kind in ("display_data", "execute_result"):
            extra = {"execution_count": content["execution_count"]} if kind == "execute_result" else {}
            outputs.append(nbformat.v4.new_output(kind, data=content["data"], metadata=content.get("metadata", {}), **extra))
        elif kind == "error":
            outputs.append(nbformat.v4.new_output("error", ename=content["ename"], evalue=content["evalue"],
                                                  traceback=content["traceback"]))
    raise AssertionError(f"a cell did not finish within {CELL_TIMEOUT_S} s")


def learner_work(name: str):
    """What a learner hands in: the exercise, with the solution's code when the learner solved it."""
    exercise = nbformat.read(EXERCISE[0], as_version=4)
    if name not in SOLVERS:
        return exercise
    solution = nbformat.read(SOLUTION[0], as_version=4)
    solved = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in solution.cells}
    for cell in exercise.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in solved:
            cell.source = solved[grade_id]
    return exercise


def memory_by_role(hub_pid: int) -> dict[str, float]:
    """Resident memory in MiB of the hub, the proxy and (on average) one learner's server."""
    servers, proxy = [], 0.0
    for pid in descendants_of(hub_pid):
        try:
            process = psutil.Process(pid)
            command, rss = " ".join(process.cmdline()), process.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
        if "singleuser" in command:
            servers.append(rss)
        elif "configurable-http-proxy" in command:
            proxy += rss
    return {"hub": psutil.Process(hub_pid).memory_info().rss / 2**20, "proxy": proxy,
            "one server": sum(servers) / max(len(servers), 1)}


def descendants_of(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


@pytest.mark.skipif(not EXERCISE or not SOLUTION, reason="exercise set 01 is missing")
def test_three_learners_on_a_real_hub_are_graded_from_their_home_folders():
    work = Path(tempfile.mkdtemp(prefix="convcourse-hub-"))
    hub = Hub(work)
    started: set[int] = {hub.process.pid}
    timings = {}
    try:
        t0 = time.monotonic()
        hub.wait_until_up()
        timings["hub up"] = time.monotonic() - t0
        # The allowed learners exist in the hub's database; each logs in with the dummy password.
        assert {u["name"] for u in hub.api("GET", "/users", hub.admin_token)} >= set(LEARNERS)
        for name in LEARNERS:
            hub.login(name)
        tokens = {name: hub.api("POST", f"/users/{name}/tokens", hub.admin_token,
                                json={"note": "hub test", "expires_in": 3600})["token"] for name in LEARNERS}
        t0 = time.monotonic()
        for name in LEARNERS:
            hub.api("POST", f"/users/{name}/server", tokens[name])
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(hub.api("GET", f"/users/{n}", hub.admin_token)["servers"].get("", {}).get("ready")
                      for n in LEARNERS):
            assert time.monotonic() < deadline, "the learners' servers did not start:\n" + hub.log_text()
            time.sleep(0.5)
        timings["3 servers up"] = time.monotonic() - t0
        started |= descendants_of(hub.process.pid)
        servers = {name: LearnerServer(hub, name, tokens[name]) for name in LEARNERS}
        path = f"exercises/{EXERCISE[0].name}"
        t0 = time.monotonic()
        for name, server in servers.items():
            server.put_notebook(path, learner_work(name))
            server.run_notebook(path)
            started |= descendants_of(hub.process.pid)
        timings["3 notebooks run"] = time.monotonic() - t0
        rss = memory_by_role(hub.process.pid)
        # Each learner's file is in their home folder, saved by their own server.
        for name in LEARNERS:
            saved = nbformat.read(work / "home" / name / path, as_version=4)
            assert any(c.get("outputs") for c in saved.cells if c.cell_type == "code"), name
        for name in LEARNERS:
            hub.api("DELETE", f"/users/{name}/server", hub.admin_token)
    finally:
        hub.stop()
    print(f"\nhub test timings (s): { {k: round(v, 1) for k, v in timings.items()} }; RSS (MiB, kernels "
          f"stopped): { {k: round(v) for k, v in rss.items()} }; work folder {work}")
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in started):
        assert time.monotonic() < deadline, f"processes left: {[p for p in started if psutil.pid_exists(p)]}"
        time.sleep(0.5)

    # The instructor collects the home folders (e.g. rsync/cp from /home) and grades them.
    collected = work / "collected" / "home"
    shutil.copytree(work / "home", collected, ignore=shutil.ignore_patterns(".*"))
    out = work / "grades"
    result = subprocess.run([sys.executable, "-m", "utils.grade", str(collected), "--out", str(out),
                             "--gradebook", str(out / "gradebook.csv"), "--jobs", "2", "--timeout", "60"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    with (out / "gradebook.csv").open(newline="") as file:
        book = list(csv.reader(file))
    assert book[0][0] == "learner" and book[0][-1] == "total" and len(book[0]) == 3, book[0]
    scores = {row[0]: float(row[-1]) for row in book[1:]}
    assert set(scores) == set(LEARNERS), book
    assert scores["alice"] == scores["carol"] > scores["bob"], book
    with (out / "grades.csv").open() as file:
        rows = list(csv.DictReader(file))
    passed = {r["learner"] for r in rows if r["status"] == "passed"}
    assert passed == SOLVERS, [(r["learner"], r["question"], r["status"]) for r in rows]
