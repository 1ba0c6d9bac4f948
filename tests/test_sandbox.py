"""The grading sandbox (utils.grade.sandbox) against submissions written by a learner who knows Linux.

Each hostile submission is the fixture solution (tests/fixtures) whose ``add_one`` returns the
right answer ONLY when its escape works (otherwise ``x``, a wrong answer), or whose kernel cell
tries to change something outside its sandbox.  One sandboxed grading run (module fixture, short
limits) covers them all: every escape must end as ``failed`` (not passed, not a grader fault).
A second, small run with ``--unsafe-no-sandbox`` proves that the harmless ones do work without
the sandbox, so that these tests can fail.  Skipped where bubblewrap does not work.
"""
from __future__ import annotations

import csv
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest

from utils.grade import sandbox, serialize
from utils.grade.limits import remove_tree

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SOLVED = FIXTURES / "solutions" / "ex01_fixture.ipynb"
TOKEN = uuid.uuid4().hex[:12]            # marks this run's hostile processes and files
MEMORY_GB = 1

pytestmark = pytest.mark.skipif(sandbox.check_bwrap() is not None, reason=f"no sandbox: {sandbox.check_bwrap()}")


def cell_with_id(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def hostile(escape: str | None = None, cell: str | None = None, kernel_sum: str | None = None):
    """The fixture solution; ``escape`` is a function body that returns True when the escape
    worked (add_one is right only then); ``cell`` is inserted as a cell after the imports."""
    nb = nbformat.read(SOLVED, as_version=4)
    if escape is not None:
        body = "\n".join("        " + line for line in escape.strip().split("\n"))
        cell_with_id(nb, "add_one").source = (
            f"def add_one(x):\n    def escaped():\n{body}\n    try:\n        ok = escaped()\n"
            "    except Exception:\n        ok = False\n    return x + 1 if ok else x")
    if kernel_sum is not None:
        cell_with_id(nb, "kernel_sum").source = kernel_sum
    if cell is not None:
        nb.cells.insert(2, nbformat.v4.new_code_cell(cell))
    return nb


def crafted_reply(payload: str) -> str:
    """An escape that writes a hand-made reply frame on every descriptor it can (the runner's pipe).
    ``os.write`` by a name built at run time: the grader's tripwire (utils.grade.integrity) refuses the
    plain spelling before anything runs, and these escapes test what comes after it, the decoding."""
    return (f"import base64, io, numpy, os, struct\ndata = {payload}\nframe = struct.pack('<Q', len(data)) + data\n"
            "for fd in range(3, 12):\n    try:\n        getattr(os, 'wri' + 'te')(fd, frame)\n"
            "    except OSError:\n        pass\nreturn True")


DAEMON_CODE = (f"import os, sys, time  # daemon-{TOKEN}\n"
               "if os.fork():\n    os._exit(0)\nos.setsid()\nif os.fork():\n    os._exit(0)\n"
               "t0 = time.time()\nwhile time.time() - t0 < 20:\n    for out in OUTS:\n        try:\n"
               "            open(out + '/grades.csv', 'a').write('x,ex01,add_one_test,2,2,passed\\n')\n"
               "        except OSError:\n            pass\n    time.sleep(0.2)\n")
DAEMON = ("import subprocess, sys\n"
          f"subprocess.Popen([sys.executable, '-c', {DAEMON_CODE!r}, 'daemon-{TOKEN}'], start_new_session=True)\n")

NETWORK = """
import socket
hits = 0
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(2)
    s.connect(ABSTRACT); hits += 1
except OSError:
    pass
try:
    socket.create_connection(('127.0.0.1', PORT), timeout=2); hits += 1
except OSError:
    pass
return hits > 0
"""

# Two submissions graded at the same time (the first two of the class, --jobs 2) try to meet.
PEER_LISTEN = """
import socket, time
servers = [socket.create_server(('127.0.0.1', PEERPORT))]
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); u.bind(PEERNAME); u.listen(); servers.append(u)
for s in servers:
    s.settimeout(0.1)
end = time.time() + 10
while time.time() < end:
    for s in servers:
        try:
            s.accept(); return True
        except OSError:
            pass
return False
"""
PEER_CONNECT = """
import socket, time
end = time.time() + 10
while time.time() < end:
    for family, address in ((socket.AF_INET, ('127.0.0.1', PEERPORT)), (socket.AF_UNIX, PEERNAME)):
        try:
            socket.socket(family, socket.SOCK_STREAM).connect(address); return True
        except OSError:
            pass
    time.sleep(0.1)
return False
"""

# The system calls go through ctypes, which the grader refuses to load in its runner
# (utils.grade.integrity): they are tried in the notebook's kernel, the runner tries the commands.
ROOT_CALLS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
wins.append(libc.unshare(0x10000000 | 0x00020000) == 0)          # CLONE_NEWUSER | CLONE_NEWNS
wins.append(libc.mount(b'/tmp', os.getcwd().encode(), None, 4096, None) == 0)   # MS_BIND
wins.append(libc.chroot(b'/tmp') == 0)
fd = os.open('/proc/1/ns/mnt', os.O_RDONLY)
wins.append(libc.setns(fd, 0) == 0)
wins.append(libc.ptrace(16, 1, None, None) == 0)                 # PTRACE_ATTACH to pid 1
"""
ROOT_POWERS = """
import os, subprocess
wins = []
wins.append(subprocess.run(['mount', '--bind', '/tmp', os.getcwd()], capture_output=True).returncode == 0)
wins.append(subprocess.run(['unshare', '-rm', 'true'], capture_output=True).returncode == 0)
try:
    os.setuid(0); wins.append(True)
except OSError:
    pass
return any(wins)
"""

MEMORY_SPLIT = f"""
import subprocess, sys
chunk = {MEMORY_GB * 2**30 // 4 + 64 * 2**20}
code = 'import time; b = bytearray(%d); b[::4096] = bytes(len(b[::4096])); time.sleep(2); print(1)' % chunk
ps = [subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE) for _ in range(4)]
return [p.communicate()[0].strip() for p in ps] == [b'1'] * 4
"""

FORK_BOMB = """
import subprocess
started = []
for _ in range(150):
    try:
        started.append(subprocess.Popen(['sleep', '3']))
    except OSError:
        break
for p in started:
    p.kill()
return len(started) >= 150
"""

FILL_DISK = """
import os
written = 0
for folder in ('/tmp', os.path.expanduser('~'), '/dev/shm'):
    try:
        with open(os.path.join(folder, 'fill'), 'wb') as f:
            for _ in range(40):
                f.write(b'x' * 2**22); written += 2**22
    except OSError:
        pass
return written >= 400 * 2**20
"""

PLANT = """
import os, pathlib, utils
planted = 0
for target in [pathlib.Path(utils.__file__).parent / '__pycache__' / 'checks.cpython-311.pyc',
               pathlib.Path(utils.__file__).parent / 'grade' / 'planted.py']:
    try:
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(b'planted'); planted += 1
    except OSError:
        pass
try:
    open(pathlib.Path(utils.__file__).parent / 'grade' / 'serialize.py', 'a').write('#'); planted += 1
except OSError:
    pass
return planted > 0
"""

GRADED = """
import os, sys, pathlib
words = ('grade', 'pytest', 'convcourse', 'solution')
seen = ' '.join(sys.argv) + open('/proc/self/cmdline', 'rb').read().decode(errors='replace')
seen += ' '.join(os.environ) + ' ' + os.getcwd() + ' ' + str(getattr(sys.modules['__main__'], '__file__', ''))
seen += ' '.join(name for name in sys.modules if name.startswith('utils'))
return any(w in seen.lower() for w in words)
"""

SUBMISSIONS = {
    "aa_peer_listen": hostile(PEER_LISTEN),
    "aa_peer_connect": hostile(PEER_CONNECT),
    "read_solutions": hostile("""
import pathlib, utils
root = pathlib.Path(utils.__file__).parent.parent
return any((root / d).exists() for d in ('solutions', 'tests', 'exercises'))"""),
    "proc_walk": hostile("""
import os
for pid in os.listdir('/proc'):
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()
        cwd = os.readlink(f'/proc/{pid}/cwd')
    except OSError:
        continue
    if b'solutions' in cmd or b'utils.grade ' in cmd.replace(b'\\0', b' ') or os.path.exists(cwd + '/solutions'):
        return True
return False"""),
    "find_from_subprocess": hostile("""
import subprocess
# the first match within 7 levels, skipping trees that hold no notebooks: a whole `find /` of the host
# took over 20 s under CI's load, and 33 s on a host with a large /old_root mount (7 levels: 0.03 s);
# this escape is the control that works without a sandbox
found = subprocess.run(['find', '/', '-maxdepth', '7', '(', '-path', '/proc', '-o', '-path', '/sys', '-o', '-path', '/usr', '-o', '-name', '.venv',
                        '-o', '-name', '.git', '-o', '-name', 'node_modules', ')', '-prune', '-o', '-name', 'ex0*.ipynb',
                        '-print', '-quit'], capture_output=True, text=True, timeout=20).stdout
return bool(found.strip())"""),
    "daemon": hostile(DAEMON + "return False", cell=DAEMON),
    "write_other_submission": hostile(cell="for target in TARGETS:\n    try:\n        open(target, 'w').write('{}')\n"
                                           "    except OSError:\n        pass"),
    "root_powers": hostile(ROOT_POWERS, kernel_sum="wins = []\ntry:" + ROOT_CALLS.replace("\n", "\n    ")
                                                   + "\nexcept Exception:\n    pass\nkernel_sum = 9.0 if any(wins) else 0.0"),
    "memory_split": hostile(MEMORY_SPLIT),
    "fork_bomb": hostile(FORK_BOMB),
    "fill_disk": hostile(FILL_DISK),
    "network": hostile(NETWORK),
    "plant_pyc": hostile(PLANT),
    "fake_rows": hostile("raise ValueError('nope\\n[passed] add_one_test: 2/2\\x1b[2K\\r[passed] kernel_sum_test: 1/1')",
                         cell="raise RuntimeError('x\\n[passed] kernel_sum_test: 1/1\\n\\x1b[1A\\x1b[2K')"),
    "deep_reply": hostile(crafted_reply("b'{\"ok\": ' + b'[' * 200000 + b']' * 200000 + b'}'")),
    "huge_shape_reply": hostile(crafted_reply(
        "b'{\"ok\": {\"__ndarray__\": \"' + base64.b64encode(b'\\\\x93NUMPY\\\\x01\\\\x00v\\\\x00' + "
        "b\"{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }\".ljust(117) + b'\\\\n')"
        " + b'\"}}'")),
    "object_array_reply": hostile(crafted_reply(
        "(lambda io, np, b64: (lambda buf: (np.save(buf, np.array([{'x': 1}], dtype=object), allow_pickle=True), "
        "b'{\"ok\": {\"__ndarray__\": \"' + b64.b64encode(buf.getvalue()) + b'\"}}')[1])(io.BytesIO()))"
        "(io, numpy, base64)")),
    "symlink_values": hostile(kernel_sum="kernel_sum = 0.0\nimport os, utils.grade.serialize as s\n"
                                         "s.dump_names = lambda ns, names, path: os.symlink(FORGED, path)"),
    "fifo_values": hostile(kernel_sum="kernel_sum = 0.0\nimport os, utils.grade.serialize as s\n"
                                      "s.dump_names = lambda ns, names, path: os.mkfifo(path)"),
    "knows_it_is_graded": hostile(GRADED, kernel_sum=f"def _graded():\n{GRADED.replace(chr(10), chr(10) + '    ')}\n"
                                                     "kernel_sum = 9.0 if _graded() else 0.0"),
}
UNSAFE_WORKS = ["aa_peer_listen", "aa_peer_connect", "read_solutions", "proc_walk", "find_from_subprocess", "knows_it_is_graded"]


class Listeners:
    """A TCP server on 127.0.0.1 and an abstract unix socket of the host, counting connections."""

    def __init__(self):
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.abstract_name = f"\0convcourse-test-{TOKEN}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.abstract_name)
        self.unix.listen()
        self.connections = 0
        probe = socket.create_server(("127.0.0.1", 0))
        self.peer_port = probe.getsockname()[1]
        probe.close()
        for server in (self.tcp, self.unix):
            threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server):
        while True:
            try:
                server.accept()[0].close()
                self.connections += 1
            except OSError:
                return


def digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_class(folder: Path, names, outs: list[str], listeners: Listeners, forged: Path) -> None:
    folder.mkdir(parents=True)
    targets = [str(folder / "read_solutions.ipynb"), str(folder / "planted.ipynb"), f"/tmp/escape-{TOKEN}"]
    for name in names:
        nb = nbformat.from_dict(SUBMISSIONS[name])
        for cell in nb.cells:
            for key, value in (("PEERPORT", str(listeners.peer_port)), ("PEERNAME", repr(f"\0convcourse-peer-{TOKEN}")),
                               ("OUTS", repr(outs)), ("ABSTRACT", repr(listeners.abstract_name)),
                               ("PORT", str(listeners.port)), ("FORGED", repr(str(forged))), ("TARGETS", repr(targets))):
                cell.source = cell.source.replace(key, value)
        (folder / f"{name}.ipynb").write_text(nbformat.writes(nb))


def grade(folder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "utils.grade", str(folder), "--out", str(out), "--jobs", "2",
                           "--timeout", "20", "--memory", str(MEMORY_GB), "--solutions", str(FIXTURES / "solutions"),
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)


def hostile_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(TOKEN in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def rows_of(out: Path, folder: Path) -> dict[str, dict[str, dict]]:
    by_file: dict[str, dict[str, dict]] = {}
    for row in csv.DictReader((out / "grades.csv").open()):
        by_file.setdefault(Path(row["submission"]).stem, {})[row["question"]] = row
    return by_file


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("sandbox")
    folder, out, unsafe_folder, unsafe_out = base / "class", base / "out", base / "unsafe", base / "unsafe-out"
    listeners = Listeners()
    forged = base / "forged.json"
    forged.write_text('{"kernel_sum": {"value": 9.0}}')
    write_class(folder, SUBMISSIONS, [str(out), str(unsafe_out)], listeners, forged)
    utils_before = digests(ROOT / "utils")
    before = digests(folder)
    result = grade(folder, out)
    ended = time.monotonic()
    left_at_exit = hostile_processes()
    csv_at_exit = (out / "grades.csv").read_bytes()
    write_class(unsafe_folder, UNSAFE_WORKS, [], listeners, forged)
    unsafe = grade(unsafe_folder, unsafe_out, "--unsafe-no-sandbox")
    time.sleep(max(0.0, 3 - (time.monotonic() - ended)))     # a daemon would have written by now
    feedback = {p.name.split(".ipynb")[0].split("_class_")[-1]: p.read_text() for p in (out / "feedback").iterdir()}
    return dict(result=result, rows=rows_of(out, folder), feedback=feedback, before=before, after=digests(folder),
                csv_at_exit=csv_at_exit, csv_later=(out / "grades.csv").read_bytes(), left_at_exit=left_at_exit,
                left_later=hostile_processes(), utils_before=utils_before, utils_after=digests(ROOT / "utils"),
                unsafe=unsafe, unsafe_rows=rows_of(unsafe_out, unsafe_folder), listeners=listeners, folder=folder)


def feedback_of(run, name: str) -> str:
    return next(text for key, text in run["feedback"].items() if key.endswith(name))


def test_grading_succeeds(run):
    assert run["result"].returncode == 0, run["result"].stderr
    assert set(run["rows"]) == set(SUBMISSIONS)


@pytest.mark.parametrize("name", [n for n in SUBMISSIONS if n not in ("write_other_submission", "fake_rows",
                                                                     "symlink_values", "fifo_values")])
def test_every_escape_fails(run, name):
    rows = run["rows"][name]
    if name == "root_powers":                    # the system calls are tried in the kernel
        assert rows["kernel_sum_test"]["status"] == "failed", rows
    assert rows["add_one_test"]["status"] in {"failed", "error"}, rows
    if name not in ("deep_reply", "huge_shape_reply", "object_array_reply"):
        assert rows["add_one_test"]["status"] == "failed", rows     # the escape failed cleanly: x, not x + 1
    assert float(rows["add_one_test"]["points"]) == 0


def test_the_harmless_escapes_work_without_the_sandbox(run):
    assert run["unsafe"].returncode == 0, run["unsafe"].stderr
    for name in UNSAFE_WORKS:
        assert run["unsafe_rows"][name]["add_one_test"]["status"] == "passed", name


def test_no_learner_process_outlives_the_run_and_grades_stay(run):
    assert run["left_at_exit"] == [] and run["left_later"] == []
    assert run["csv_at_exit"] == run["csv_later"]
    assert b"x,ex01" not in run["csv_later"]


def test_submissions_utils_and_host_are_unchanged(run):
    assert run["before"] == run["after"]
    # (Other files of utils may be edited by maintainers meanwhile: compare what PLANT targets.)
    planted = [p for p in run["utils_after"] if "planted" in p or p.endswith("checks.cpython-311.pyc")]
    assert planted == [] and all(run["utils_after"].get(p) == d for p, d in run["utils_before"].items()
                                 if p.endswith("grade/serialize.py"))
    assert not Path(f"/tmp/escape-{TOKEN}").exists()
    assert run["rows"]["write_other_submission"]["add_one_test"]["status"] == "passed"   # it was graded


def test_no_connection_reached_the_host(run):
    assert run["listeners"].connections == 0


def test_limits_are_named_in_the_feedback(run):
    assert "LIMIT" in feedback_of(run, "memory_split") and "memory" in feedback_of(run, "memory_split")
    assert "LIMIT" in feedback_of(run, "fork_bomb") and "processes" in feedback_of(run, "fork_bomb")


def test_printed_text_cannot_imitate_grader_lines(run):
    for name in ("fake_rows",):
        text = feedback_of(run, name)
        assert "\x1b" not in text and "\r" not in text
        margin = [line for line in text.splitlines() if line.startswith("[")]
        assert len(margin) == len(run["rows"][name]), margin          # one line at the margin per row
        assert not any(line.startswith("[passed] add_one_test") for line in margin)
    assert run["rows"]["fake_rows"]["add_one_test"]["points"] == "0"


def test_values_are_read_from_regular_files_only(run):
    for name in ("symlink_values", "fifo_values"):
        assert run["rows"][name]["kernel_sum_test"]["status"] == "error", name
        assert run["rows"][name]["add_one_test"]["status"] == "passed", name


# ---------------------------------------------------------------- the pieces

def test_cleanup_never_deletes_through_a_mount(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("x")
    scratch = tmp_path / "scratch"
    (scratch / "mnt").mkdir(parents=True)
    (scratch / "link").symlink_to(precious)
    if subprocess.run(["mount", "--bind", str(precious), str(scratch / "mnt")], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (not root)")
    try:
        assert remove_tree(str(scratch)) == [str(scratch / "mnt")]
        assert (precious / "keep").exists() and not (scratch / "link").exists()
    finally:
        subprocess.run(["umount", str(scratch / "mnt")])
    assert remove_tree(str(scratch)) == [] and not scratch.exists()


@pytest.mark.parametrize("make", ["symlink", "fifo"])
def test_read_regular_file_refuses_symlinks_and_fifos(tmp_path, make):
    target = tmp_path / "real.json"
    target.write_text("{}")
    path = tmp_path / "values.json"
    path.symlink_to(target) if make == "symlink" else os.mkfifo(path)
    with pytest.raises((ValueError, OSError)):
        serialize.read_regular_file(str(path), seconds=1)


def test_decoding_refuses_deep_huge_and_many():
    with pytest.raises(ValueError):
        serialize.loads(b"[" * 100000 + b"]" * 100000)
    with pytest.raises(ValueError, match="deeper"):
        serialize.loads(b"[" * (serialize.MAX_DEPTH + 2) + b"]" * (serialize.MAX_DEPTH + 2))
    with pytest.raises(ValueError, match="items"):
        serialize.loads(b"[" + b"0," * serialize.MAX_ITEMS + b"0]")


def test_missing_bubblewrap_refuses_to_grade(tmp_path, monkeypatch):
    from utils.grade import __main__ as cli
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    (tmp_path / "a.ipynb").write_text(nbformat.writes(nbformat.read(SOLVED, as_version=4)))
    code = cli.main([str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out"), "--solutions", str(FIXTURES / "solutions")])
    assert code == 2 and not (tmp_path / "out").exists()


def test_remove_cgroup_retries_kills_what_is_listed_and_reports_failure(tmp_path):
    """The one rmdir-retry loop of Group.close and remove_groups_of, on plain folders: gone or missing
    is success, a folder that stays busy is reported after its attempts, and ``kill`` ends what it lists."""
    empty, missing, busy = tmp_path / "empty", tmp_path / "missing", tmp_path / "busy"
    empty.mkdir()
    busy.mkdir()
    assert sandbox.remove_cgroup(empty) and not empty.exists()
    assert sandbox.remove_cgroup(missing)
    child = subprocess.Popen(["sleep", "60"])
    (busy / "cgroup.procs").write_text(f"{child.pid}\n")
    started = time.monotonic()
    assert not sandbox.remove_cgroup(busy, attempts=3, kill=True)      # the file keeps it from going
    assert child.wait(timeout=10) == -9 and time.monotonic() - started >= 0.04
    assert busy.exists()


def _sandbox_sleeping(group: sandbox.Group) -> subprocess.Popen:
    """A sandbox of ``group`` whose command sleeps; returns once it is attached (and recorded)."""
    command = group.launcher(sandbox.bwrap_command(["/bin/sleep", "60"]))
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    group.attach(process.pid)
    return process


def test_ending_one_run_never_kills_another_runs_sandbox_with_a_reused_namespace_inode(tmp_path):
    """The kernel gives a new namespace the lowest free inode, so a sandbox of grading run B can
    get the PID-namespace inode of a sandbox run A already ended (40 ``unshare --pid`` in a row here
    all had the same one).  Run A's final sweep (end_all) must still leave B's sandbox alone.  (A
    clean CI run lost an honest learner's runner this way: BrokenPipeError on its next call, while
    two grading runs shared the machine.)  Which inode comes next depends on every other namespace
    made meanwhile, so A's record is given B's inode here, as a reuse would."""
    registry_a, registry_b = tmp_path / "a", tmp_path / "b"
    registry_a.mkdir()
    registry_b.mkdir()
    group_a = sandbox.Group(2**30, 2**20, str(registry_a))
    first = _sandbox_sleeping(group_a)
    group_a.close()
    first.wait(timeout=10)
    group_b = sandbox.Group(2**30, 2**20, str(registry_b))
    try:
        second = _sandbox_sleeping(group_b)
        (record_a,), (record_b,) = (os.listdir(r) for r in (registry_a, registry_b))
        inode_b, rest_a = record_b.split("-")[0], record_a.split("-", 1)[1]
        os.rename(registry_a / record_a, registry_a / f"{inode_b}-{rest_a}")     # A's dead init, B's inode
        assert sandbox.namespace_processes(str(registry_a)) == []
        assert sandbox.end_all(str(registry_a)) == 0
        time.sleep(0.2)
        assert second.poll() is None, "run A's sweep killed run B's sandbox"
        assert len(sandbox.namespace_processes(str(registry_b))) >= 1     # B's own sweep still finds it
        assert sandbox.end_all(str(registry_b)) >= 1
    finally:
        group_b.close()
    assert second.wait(timeout=10) != 0


def test_a_group_never_signals_a_reused_pid(monkeypatch):
    """Group.end kills its sandboxes' inits by process (pid and start time), not by pid: a pid a dead
    sandbox had may already be another process's."""
    group = sandbox.Group(2**30, 2**20, None)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        impostor = psutil.Process(stranger.pid)
        # what a recorded init looks like once its pid is reused: the same pid, another start time
        monkeypatch.setattr(impostor, "_ident", (impostor.pid, impostor.create_time() - 100.0))
        group.inits.append(impostor)
        group.bwraps.append(impostor)
        group.end(seconds=0.5)
        assert stranger.poll() is None, "Group.end killed a process that only shares a recorded pid"
    finally:
        group.close()
        stranger.kill()
        stranger.wait()


# A notebook cell that replaces every socket of its kernel's runtime folder by a symlink to ``SENTINEL``
# (a socket of the host), then closes the kernel's own shell and control sockets, so that the grader's
# side loses its connection.  A reconnect would look the path up again from the grader's root, where the
# absolute link names the host's socket: before the fix, hundreds of connections a second reached it.
SWAP_SOCKETS = """
import glob, os
for path in glob.glob('/run/user/65534/jupyter/kernel-*'):
    os.unlink(path)
    os.symlink(SENTINEL, path)
kernel = get_ipython().kernel
for stream in (kernel.shell_stream, kernel.control_stream):
    stream.socket.close(linger=0)
"""


def test_a_kernel_that_swaps_its_sockets_for_links_never_makes_the_grader_connect_elsewhere(tmp_path):
    from utils.grade.kernel import KernelLimits, run_notebook
    sentinel = tmp_path / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sentinel))
    listener.listen(16)
    listener.settimeout(0.2)
    connections, done = [], threading.Event()

    def count():
        while not done.is_set():
            try:
                connections.append(listener.accept()[0])
            except OSError:
                pass
    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    cells = [SWAP_SOCKETS.replace("SENTINEL", repr(str(sentinel))), "value = 1"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    saved = sandbox.enabled
    sandbox.enabled = True
    sandbox.begin_submission(2**30, 2**20)
    try:
        report = run_notebook(nb, [0, 1], ["value"], tmp_path, KernelLimits(cell_seconds=5))
        time.sleep(1)                       # any reconnect would come within its 0.1 s interval
    finally:
        sandbox.end_submission()
        sandbox.enabled = saved
        done.set()
        counter.join()
        listener.close()
    assert connections == [], f"the grader connected {len(connections)} times to the socket the links name"
    assert report.values == {} and report.stopped      # the learner broke its own kernel: no values
